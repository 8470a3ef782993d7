"""Shared fixtures for the trainer tests: tiny synthetic GLID data and one tile cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def glid_root(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    return write_synthetic(
        "glid", tmp_path_factory.mktemp("data") / "glid", tiles=4, size=32, seed=0
    )


@pytest.fixture(scope="session")
def tile_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")
