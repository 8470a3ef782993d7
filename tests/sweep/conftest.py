"""Fixtures for the sweep tests: tiny synthetic GLID, CaFFe and SICD (the CLI fixtures are
shared).

Sweeps run through the real ``cryotune`` command (a real embedded Ray cluster, real Optuna
storage, the real trainer), one CPU thread per trial, never a GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("sweep-data")
    for key in ("glid", "caffe", "sicd"):
        write_synthetic(key, root / key, tiles=4, size=48, seed=0)
    return root
