"""Every pair's status as the running driver last saw it, in one file beside the plan.

A reader of a running sweep (``cryotune status``, the API) would otherwise read every unfinished
pair's study: at 100 pairs that was a second of SQL a read. The driver already keeps these rows
for its progress display; it writes them here every few seconds when one changed, so a reader
opens one file. Only a live driver's file is believed (``SweepWorkspace.driver_owner``): after a
crash the studies are read as before, and a new driver removes the old file when it starts.
The driver's heartbeat carries the same file to its MLflow sweep run (``LIVE_ARTIFACT``), for
readers of the tracking store alone.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, fields
from pathlib import Path

from cryotune.files import write_json_atomic
from cryotune.sweep.status import PairStatus

_STAMPS = ("first_start", "last_change")


def write_live_status(path: Path, rows: list[PairStatus]) -> None:
    """Replace ``path`` with ``rows`` at once: a reader sees the old file or the new one."""
    document = {
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "pairs": [_row_json(row) for row in rows],
    }
    write_json_atomic(path, document, fsync=False)


def read_live_status(path: Path) -> dict[str, PairStatus] | None:
    """The rows by pair key; None where the file is missing or unreadable (read the studies)."""
    try:
        return parse_live_status(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def parse_live_status(document: object) -> dict[str, PairStatus] | None:
    """A live status document's rows by pair key, in the plan's order; None where it holds
    none (a driver that has not written it yet) or not readably."""
    try:
        return {row["key"]: _row(row) for row in document["pairs"]}
    except (KeyError, TypeError, ValueError):
        return None


def _row_json(row: PairStatus) -> dict:
    out = asdict(row)
    for name in _STAMPS:
        if out[name] is not None:
            out[name] = out[name].isoformat()
    return out


def _row(data: dict) -> PairStatus:
    known = {f.name for f in fields(PairStatus)}
    values = {k: v for k, v in data.items() if k in known}
    for name in _STAMPS:
        if values.get(name) is not None:
            values[name] = dt.datetime.fromisoformat(values[name])
    return PairStatus(**values)
