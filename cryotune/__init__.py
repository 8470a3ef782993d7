"""cryotune: tune learning rate and finetuning depth of geospatial foundation models on Cryo-Bench.

The Python API (``cryotune.client``), for notebooks and scripts::

    import cryotune

    handle = cryotune.start_sweep("glid", config="sweeps/smoke.yaml", data_root="data")
    handle.progress()                      # live per-pair counts and best val mIoU
    result = handle.result()               # or cryotune.run_sweep(...) to block here
    cryotune.to_frame(cryotune.best("glid"))
    model = cryotune.load_best_model("glid")

Its names are imported on first use, so ``import cryotune`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "run_sweep": "cryotune.client",
    "start_sweep": "cryotune.client",
    "sweeps": "cryotune.client",
    "status": "cryotune.client",
    "best": "cryotune.client",
    "leaderboard": "cryotune.client",
    "unreadable_records": "cryotune.client",
    "SweepResult": "cryotune.client",
    "SweepHandle": "cryotune.background",
    "to_frame": "cryotune.frames",
    "load_best_model": "cryotune.inference",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cryotune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
