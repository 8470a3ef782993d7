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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping

from cryotune.errors import UsageError
from cryotune.tracking.names import TAG_HEARTBEAT, TAG_HEARTBEAT_S

HEARTBEAT_ENV = "CRYOTUNE_HEARTBEAT_S"
DEFAULT_INTERVAL_S = 30.0
STALE_BEATS = 3
"""Beats a reader waits for before it calls the driver gone (a busy driver may be late)."""

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
    the first beat is sent before the block starts."""

    def __init__(self, uri: str, run_id: str, interval: float | None = None):
        self.uri = uri
        self.run_id = run_id
        self.interval = interval_s() if interval is None else interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None

    def beat(self) -> bool:
        """Set the beat now; False (logged) when the store did not take it."""
        from mlflow.entities import RunTag

        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        tags = [
            RunTag(TAG_HEARTBEAT, f"{time.time():.3f}"),
            RunTag(TAG_HEARTBEAT_S, f"{self.interval:g}"),
        ]
        try:
            self._client.log_batch(self.run_id, tags=tags)
        except Exception as exc:  # an outage, or a store that refuses: skip this beat
            log.info("MLflow: heartbeat skipped: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="cryotune-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval)  # a beat stuck on the store is let go
