"""Where cryotune keeps its work when not told: the workspace folder that every command, the
tracking server and the readers resolve alike."""

from __future__ import annotations

from pathlib import Path

DEFAULT_WORKSPACE = "cryotune-runs"


def workspace_root(root: str | Path | None = None) -> Path:
    """``root`` (``--workspace``), else ``./cryotune-runs``, as an absolute path."""
    return Path(root if root else DEFAULT_WORKSPACE).expanduser().resolve()
