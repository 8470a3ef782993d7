"""Shared fixtures for the trainer tests: tiny synthetic GLID data, one tile cache, a U-Net config."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryotune.config import TrialConfig


@pytest.fixture(scope="session")
def glid_root(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    return write_synthetic(
        "glid", tmp_path_factory.mktemp("data") / "glid", tiles=4, size=32, seed=0
    )


@pytest.fixture(scope="session")
def tile_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def unet_config(glid_root, tile_cache):
    """Builds a seconds-long U-Net trial on the tiny GLID data; tests set epochs, steps, seed."""

    def make(**fields) -> TrialConfig:
        fields = {"val_every": 1, **fields}
        return TrialConfig(
            dataset="glid",
            model="unet",
            data_root=str(glid_root),
            cache_dir=str(tile_cache),
            batch_size=2,
            lr=1e-3,
            crop_size=16,
            device="cpu",
            **fields,
        )

    return make
