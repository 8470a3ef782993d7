"""Synthetic datasets in each real layout, written once per test session and copied on demand."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cryotune.data.synth import write_synthetic

TILES = 4
SIZE = 32


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``synth_root(key)``: a read-only-by-convention synthetic dataset shared by tests."""
    roots: dict[str, Path] = {}

    def make(key: str) -> Path:
        if key not in roots:
            roots[key] = write_synthetic(
                key, tmp_path_factory.mktemp("synth") / key, tiles=TILES, size=SIZE, seed=1
            )
        return roots[key]

    return make


@pytest.fixture
def synth_copy(synth_root: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """``synth_copy(key)``: a private copy a test may damage."""

    def make(key: str) -> Path:
        return Path(shutil.copytree(synth_root(key), tmp_path / key))

    return make
