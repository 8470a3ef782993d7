"""What the weights folder holds for each source: verified, unverified, a wrong hash, or nothing.

A file is verified when its sha256 equals the one the registry publishes or, failing that, the
one recorded when it was fetched (its provenance, the Hub's or a first fetch's, goes with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryotune.errors import UsageError
from cryotune.models.weights import RANDOM_WEIGHTS, find_weights, weights_dir
from cryotune.weights.ledger import Ledger
from cryotune.weights.sources import SOURCES, WeightsSource

STATUS_TEXT = {
    "verified": "present, verified",
    "unverified": "present, unverified",
    "wrong-hash": "wrong hash",
    "missing": "missing",
}


def resolve_folder(flag: str | None) -> Path:
    """The folder ``--weights DIR`` / ``$CRYOTUNE_WEIGHTS`` / the default name; it need not exist."""
    if flag == RANDOM_WEIGHTS:
        raise UsageError(
            f"--weights {RANDOM_WEIGHTS} means no checkpoints; `cryotune weights` needs a folder: "
            "pass --weights DIR, set $CRYOTUNE_WEIGHTS, or leave both out for the default"
        )
    return Path(flag).expanduser() if flag else weights_dir(None)


@dataclass(frozen=True)
class FileState:
    """One source's file in a folder: its name there (as the ledger records it), where it was
    found, its status and the checksums compared."""

    source: WeightsSource
    name: str
    path: Path | None
    status: str
    size: int | None = None
    sha256: str | None = None
    expected: str | None = None
    expected_from: str | None = None

    def to_dict(self) -> dict:
        return {
            **self.source.to_dict(),
            "status": self.status,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "sha256": self.sha256,
            "expected_sha256": self.expected,
            "expected_from": self.expected_from,
        }


def expected_sha256(source: WeightsSource, ledger: Ledger, name: str) -> tuple[str | None, str]:
    """The sha256 the stored file must have and where it comes from: the registry's (for a file
    stored as released), else the ledger's."""
    if source.sha256 and not source.convert:
        return source.sha256, "official"
    entry = ledger.get(name)
    if entry is not None and entry.model == source.model:
        return entry.sha256, entry.sha256_from
    return None, ""


def file_state(source: WeightsSource, folder: Path, ledger: Ledger) -> FileState:
    from cryotune.models.encoders import get_encoder_spec

    path = find_weights(get_encoder_spec(source.model), folder, source.variant)
    if path is None:
        return FileState(source, source.file, None, "missing")
    name = str(path.relative_to(folder))
    size = path.stat().st_size
    expected, origin = expected_sha256(source, ledger, name)
    if expected is None:
        return FileState(source, name, path, "unverified", size)
    digest = ledger.digest(name, path)
    status = "verified" if digest == expected else "wrong-hash"
    return FileState(source, name, path, status, size, digest, expected, origin)


def folder_states(folder: Path, sources: tuple[WeightsSource, ...] = SOURCES) -> list[FileState]:
    ledger = Ledger(folder)
    return [file_state(source, folder, ledger) for source in sources]


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
