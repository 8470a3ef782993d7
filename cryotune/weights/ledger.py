"""The weights folder's own record of what was fetched: each file's sha256, where it came from and
where its checksum came from, so a later `cryotune weights list` can tell a verified file from a
changed one without a published value, and without hashing gigabytes again while the file's size
and modification time are those recorded."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryotune.errors import WeightsError
from cryotune.models.weights import file_sha256

LEDGER_NAME = "cryotune-weights.json"
LEDGER_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One stored file: ``sha256`` of the file as stored; ``source_sha256`` of the release it
    came from (different when it was converted); ``sha256_from``: ``hub`` (the Hub published it),
    ``official`` (cryotune's registry) or ``recorded`` (first fetch, nothing published)."""

    model: str
    sha256: str
    size: int
    mtime_ns: int
    source: str
    sha256_from: str
    source_sha256: str
    converted: str | None = None
    fetched: str = ""


class Ledger:
    """``DIR/cryotune-weights.json``: entries by file name; written whole and atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LEDGER_NAME
        self.entries: dict[str, Entry] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self.entries = {name: Entry(**e) for name, e in data["files"].items()}
            except (ValueError, KeyError, TypeError) as exc:
                raise WeightsError(
                    f"weights record {self.path} is unreadable ({exc}); move it away and run "
                    "`cryotune weights fetch` again to record the files afresh"
                ) from None

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def digest(self, name: str, path: Path) -> str:
        """The file's sha256: the recorded one while size and mtime are unchanged, else hashed."""
        entry = self.entries.get(name)
        stat = path.stat()
        if entry and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return entry.sha256
        return file_sha256(path)

    def record(self, name: str, path: Path, **fields: object) -> Entry:
        stat = path.stat()
        entry = Entry(
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            fetched=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **fields,
        )
        self.entries[name] = entry
        self._write()
        return entry

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {
            "version": LEDGER_VERSION,
            "files": {name: asdict(e) for name, e in sorted(self.entries.items())},
        }
        tmp = self.path.with_name(f".{LEDGER_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        os.replace(tmp, self.path)
