"""The driver's heartbeat on its sweep run, so a reader of MLflow alone can tell a dead driver.

A driver killed with SIGKILL (or whose machine died) never sets its sweep run's state to
``interrupted``. A workspace reader sees that from the driver lock; a reader of the tracking
store has only the store. So while the driver lives, a thread sets the tag ``cryotune.heartbeat``
(unix seconds) on the sweep run every interval, beside ``cryotune.heartbeat_s`` (the interval),
and a reader takes a sweep whose state says running but whose last beat is older than
``STALE_BEATS`` intervals as interrupted (``is_stale``).

Beats go to the store directly, not through the outbox: only the latest one means anything, and
spooling one every interval would grow the sweep run's outbox for as long as the sweep runs and
replay stale beats after an outage. A beat the store misses is skipped; the next one replaces it.
The reader compares the beat with its own clock, so clocks may differ by less than the slack.

The same thread carries the driver's live status file (``cryotune.sweep.live_status``) to the
sweep run as ``LIVE_ARTIFACT`` every ``LIVE_S`` when it changed, for the same reason: only the
latest matters. A reader of the store alone then reads a running sweep from the sweep run, not
from every pair run: at 100 pairs on a busy server that read took 1.7 s. Until the driver has
written the file, the artifact holds no rows, so an earlier driver's is never believed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cryotune.errors import UsageError
from cryotune.tracking.names import LIVE_ARTIFACT, TAG_HEARTBEAT, TAG_HEARTBEAT_S

HEARTBEAT_ENV = "CRYOTUNE_HEARTBEAT_S"
DEFAULT_INTERVAL_S = 30.0
STALE_BEATS = 3
"""Beats a reader waits for before it calls the driver gone (a busy driver may be late)."""
LIVE_S = 5.0
"""Seconds between uploads of a changed live status file."""

log = logging.getLogger(__name__)


def interval_s(environ: Mapping[str, str] = os.environ) -> float:
    """``$CRYOTUNE_HEARTBEAT_S``, else 30 s."""
    value = environ.get(HEARTBEAT_ENV)
    if not value:
        return DEFAULT_INTERVAL_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise UsageError(f"${HEARTBEAT_ENV}={value}: give the seconds between beats, above 0")
    return seconds


def is_stale(tags: dict[str, str], now: float | None = None) -> bool:
    """Whether a sweep run's last beat is older than ``STALE_BEATS`` of its intervals; False
    for a run without beats (written before cryotune had them: nothing to age)."""
    try:
        beat = float(tags[TAG_HEARTBEAT])
        interval = float(tags.get(TAG_HEARTBEAT_S) or DEFAULT_INTERVAL_S)
    except (KeyError, ValueError):
        return False
    return (time.time() if now is None else now) - beat > STALE_BEATS * interval


class Heartbeat:
    """Beats on ``run_id`` every ``interval`` seconds from a daemon thread while in its block;
    the first beat is sent before the block starts. With ``live_file``, that file goes to the
    run too (``LIVE_ARTIFACT``, with ``pair_run_ids``) when it changed, every ``live_s``."""

    def __init__(
        self,
        uri: str,
        run_id: str,
        interval: float | None = None,
        live_file: Path | None = None,
        pair_run_ids: Mapping[str, str] | None = None,
        live_s: float = LIVE_S,
    ):
        self.uri = uri
        self.run_id = run_id
        self.interval = interval_s() if interval is None else interval
        self.live_file = live_file
        self.pair_run_ids = dict(pair_run_ids or {})
        self.live_s = live_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self._uploaded: int | None = None  # the live file's mtime as last uploaded; -1: none

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def beat(self) -> bool:
        """Set the beat now; False (logged) when the store did not take it."""
        from mlflow.entities import RunTag

        tags = [
            RunTag(TAG_HEARTBEAT, f"{time.time():.3f}"),
            RunTag(TAG_HEARTBEAT_S, f"{self.interval:g}"),
        ]
        try:
            self.client.log_batch(self.run_id, tags=tags)
        except Exception as exc:  # an outage, or a store that refuses: skip this beat
            log.info("MLflow: heartbeat skipped: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def publish(self) -> bool:
        """Upload the live status file if it changed since the last upload (one without rows
        while there is no file); False when nothing went (unchanged, or the store refused)."""
        if self.live_file is None:
            return False
        try:
            stamp = self.live_file.stat().st_mtime_ns
        except OSError:
            stamp = -1
        if stamp == self._uploaded:
            return False
        try:
            document = json.loads(self.live_file.read_text()) if stamp != -1 else {"pairs": None}
        except (OSError, ValueError):
            stamp, document = -1, {"pairs": None}
        document["pair_run_ids"] = self.pair_run_ids
        try:
            self.client.log_dict(self.run_id, document, LIVE_ARTIFACT)
        except Exception as exc:  # as a beat: the next change is tried again
            log.info("MLflow: live status skipped: %s: %s", type(exc).__name__, exc)
            return False
        self._uploaded = stamp
        return True

    def _run(self) -> None:
        tick = min(self.interval, self.live_s) if self.live_file is not None else self.interval
        last_beat = time.monotonic()
        while not self._stop.wait(tick):
            self.publish()
            if time.monotonic() - last_beat >= self.interval - tick / 2:
                self.beat()
                last_beat = time.monotonic()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self.publish()
        self._thread = threading.Thread(target=self._run, name="cryotune-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval)  # a beat stuck on the store is let go
