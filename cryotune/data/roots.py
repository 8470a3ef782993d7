"""Where a dataset lives: ``--data-root``, else ``$CRYOTUNE_DATA/<key>``, else a per-user folder.

``--data-root`` means the same in every command: a folder holding ``KEY/`` dataset folders
(given once), or ``KEY=DIR`` naming one dataset's folder (repeatable). A dataset's own folder
given as ``DIR`` also works, since ``DIR`` is used itself when ``DIR/KEY`` holds no dataset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.errors import DataError, UsageError

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
        f"give --data-root DIR (holding {key}/) or {key}=DIR, or set ${DATA_ENV} to a folder "
        f"holding {key}/"
        if data_root is None
        else "check the path"
    )
    raise DataError(
        f"no data for dataset '{key}': tried {', '.join(str(p) for p in tried)} "
        f"(not a folder); {hint}"
    )


@dataclass(frozen=True)
class DataRoots:
    """The ``--data-root`` values of one command: one DIR holding KEY/ folders, KEY=DIR pairs."""

    parent: str | None = None
    by_key: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, values: Sequence[str] | None, keys: Sequence[str], role: str = "a dataset here"
    ) -> DataRoots:
        """Split the values; a KEY outside ``keys`` (what the command reads, named by ``role``)
        or a second DIR is a usage error rather than a folder silently unused."""
        by_key: dict[str, str] = {}
        parents: list[str] = []
        for item in values or []:
            key, sep, folder = item.partition("=")
            if not sep or "/" in key or os.sep in key:  # a path holding "=" is a DIR
                parents.append(item)
            elif key not in keys:
                raise UsageError(f"--data-root {item}: '{key}' is not {role} ({', '.join(keys)})")
            else:
                by_key[key] = folder
        if len(parents) > 1:
            raise UsageError("--data-root DIR may be given once; use KEY=DIR for several datasets")
        return cls(parents[0] if parents else None, by_key)

    def folder(self, key: str) -> str | None:
        """The folder given for ``key``: its KEY=DIR, else DIR/KEY when that holds the dataset,
        else DIR itself (a dataset's own folder); None when no flag names one."""
        if key in self.by_key:
            return self.by_key[key]
        if self.parent is None:
            return None
        inner = Path(self.parent) / key
        return str(inner) if find_root(key, inner) is not None else self.parent
