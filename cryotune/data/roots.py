"""Where a dataset lives: ``--data-root``, else ``$CRYOTUNE_DATA/<key>``, else a per-user folder."""

from __future__ import annotations

import os
from pathlib import Path

from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.errors import DataError

DATA_ENV = "CRYOTUNE_DATA"


def default_data_dir() -> Path:
    """The per-user data folder: ``$XDG_CACHE_HOME/cryotune/data`` (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cryotune" / "data"


def candidate_roots(key: str, data_root: str | Path | None) -> list[Path]:
    """The folders tried for ``key``, in order: the explicit root alone, else env then default."""
    if data_root is not None:
        return [Path(data_root).expanduser()]
    env = os.environ.get(DATA_ENV)
    candidates = [Path(env).expanduser() / key] if env else []
    return [*candidates, default_data_dir() / key]


def _has_layout(spec: DatasetSpec, folder: Path) -> bool:
    return any(spec.layout.image_folder(folder, split).is_dir() for split in spec.layout.splits)


def _dataset_folder(spec: DatasetSpec, folder: Path) -> Path:
    """``folder`` itself, or the archive's inner folder holding the layout (GLD's ``GLNet``)."""
    if not _has_layout(spec, folder):
        for inner in spec.layout.nested:
            if _has_layout(spec, folder / inner):
                return folder / inner
    return folder


def find_root(key: str, data_root: str | Path | None = None) -> Path | None:
    """The first candidate folder that holds ``key``'s layout, or None."""
    spec = get_dataset(key)
    for folder in candidate_roots(key, data_root):
        if folder.is_dir():
            found = _dataset_folder(spec, folder)
            if _has_layout(spec, found):
                return found
    return None


def resolve_root(key: str, data_root: str | Path | None = None) -> Path:
    """The dataset folder to use; raises DataError naming every path tried.

    An existing folder is returned even when its layout is wrong, so that ``data check`` can
    say exactly what is missing.
    """
    spec = get_dataset(key)
    tried = candidate_roots(key, data_root)
    for folder in tried:
        if folder.is_dir():
            return _dataset_folder(spec, folder)
    hint = (
        f"give the dataset folder (--data-root, or --root for data check) or set ${DATA_ENV} "
        f"to a folder holding {key}/"
        if data_root is None
        else "check the path"
    )
    raise DataError(
        f"no data for dataset '{key}': tried {', '.join(str(p) for p in tried)} "
        f"(not a folder); {hint}"
    )
