"""Seed repeats for the report: the ``summary.json`` that ``cryotune train --seeds N --out DIR``
writes (``cryotune.train.repeats``), found under the folders given and matched to a best config.

A report looks in ``WORKSPACE/repeats/`` (any depth) and in every ``--repeats DIR``. A summary
counts for a cell when it trained the cell's best config: the same TrialConfig except the seed
and where it ran (data and cache folders, device, loader processes, the weights folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from cryotune.config import TrialConfig

SUMMARY_FILE = "summary.json"  # cryotune.train.repeats.SUMMARY_FILE, without importing torch
REPEATS_DIR = "repeats"
"""The workspace folder a report searches for seed repeats."""

WHERE_IT_RAN = frozenset({"seed", "data_root", "cache_dir", "device", "num_workers", "weights"})
"""TrialConfig fields that do not change what is trained (the weights compare by kind)."""


@dataclass(frozen=True)
class Repeats:
    """One ``cryotune train --seeds`` folder: its config and scores over the seeds."""

    folder: str
    config: TrialConfig
    seeds: tuple[int, ...]
    test_miou_mean: float | None
    test_miou_std: float | None
    val_miou_mean: float | None
    val_miou_std: float | None

    @property
    def key(self) -> tuple[str, str]:
        return self.config.dataset, self.config.model


def read_repeats(folders: list[Path]) -> tuple[list[Repeats], list[str]]:
    """Every summary under ``folders`` (missing folders are skipped), and one warning per file
    that cannot be read, naming it."""
    found: list[Repeats] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for folder in folders:
        for path in sorted(folder.rglob(SUMMARY_FILE)) if folder.is_dir() else []:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                found.append(_read(path))
            except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
                reason = str(exc).splitlines()[0]
                problems.append(f"{path}: not a `cryotune train --seeds` summary ({reason})")
    return found, problems


def _read(path: Path) -> Repeats:
    data = json.loads(path.read_text())
    return Repeats(
        folder=str(path.parent),
        config=TrialConfig.model_validate(data["config"]),
        seeds=tuple(int(run["seed"]) for run in data["runs"] if run.get("test_miou") is not None),
        test_miou_mean=data.get("test_miou_mean"),
        test_miou_std=data.get("test_miou_std"),
        val_miou_mean=data.get("val_miou_mean"),
        val_miou_std=data.get("val_miou_std"),
    )


def differences(best: TrialConfig, repeats: TrialConfig) -> list[str]:
    """What the repeats trained differently from ``best``, as ``field a -> b``; empty when they
    trained the same config."""
    left, right = best.model_dump(), repeats.model_dump()
    found = [
        f"{name} {left[name]} -> {right[name]}"
        for name in left
        if name not in WHERE_IT_RAN and left[name] != right[name]
    ]
    if (best.weights == "random") != (repeats.weights == "random"):
        found.append(f"weights {best.weights} -> {repeats.weights}")
    return found
