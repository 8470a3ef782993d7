"""Where benchmark results go: ``bench/results/NAME.json`` (written atomically) and PNG plots,
each stamped with the machine it was measured on; ``spread`` summarises repeats."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """The CPU side of the machine, plus the GPU when one is visible to torch."""
    text = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def spread(values: list[float | None]) -> dict:
    """Median, min, max and the values of a repeated measurement (None: not reached)."""
    reached = [v for v in values if v is not None]
    summary = {"values": [None if v is None else round(v, 3) for v in values]}
    if reached:
        summary.update(
            median=round(statistics.median(reached), 3),
            min=round(min(reached), 3),
            max=round(max(reached), 3),
        )
    summary["reached"] = f"{len(reached)}/{len(values)}"
    return summary


def result_path(name: str, quick: bool, out: Path | None = None) -> Path:
    """``out``, else bench/results/NAME.json; quick runs go to bench/results/quick/ instead, so
    they never replace a full run's figures in the table."""
    return out or (RESULTS / "quick" if quick else RESULTS) / f"{name}.json"


def write_result(name: str, result: dict, out: Path | None = None) -> Path:
    path = result_path(name, bool(result.get("quick")), out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    partial.replace(path)
    return path


def plot_path(name: str, quick: bool, out: Path | None = None) -> Path:
    """The PNG beside the result JSON."""
    return result_path(name, quick, out).with_suffix(".png")
