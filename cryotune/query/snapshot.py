"""A source whose answers a server keeps for a moment and refreshes in the background.

``cryotune serve`` answers many readers (dashboards polling, scripts in a loop) from a source
that costs round trips to read: an MLflow server, or study databases that a running sweep keeps
busy on the same cores. Reading the source per request puts its latency, seconds while a sweep
saturates the machine, on every reader. A ``Snapshot`` answers from what it read within
``max_age_s``; an older answer is still given, at most ``stale_s`` more, while one background
read replaces it; older still, or never read, and the request reads the source itself. So a
reader sees data at most ``max_age_s + stale_s`` (plus one read) old, and a polled read costs
a dictionary lookup. Failed reads are not kept: the next request tries again and sees the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryotune.documents.record import PairRecord, UnreadableRecord
from cryotune.query.models import SweepDetail, SweepSummary

DEFAULT_MAX_AGE_S = 2.0
DEFAULT_STALE_S = 30.0
MAX_ENTRIES = 1024
"""Answers kept at most (least recently used go first): keys come from request paths."""

log = logging.getLogger(__name__)


@dataclass
class _Answer:
    value: Any
    read_at: float
    refreshing: bool = False


class Snapshot:
    """``source`` (a ``cryotune.query.service.Source``) read at most once per ``max_age_s``
    for each distinct question."""

    def __init__(
        self,
        source,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        stale_s: float = DEFAULT_STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_age_s < 0 or stale_s < 0:
            raise ValueError("max_age_s and stale_s must be >= 0")
        self.source = source
        self.kind = source.kind
        self.max_age_s = max_age_s
        self.stale_s = stale_s
        self._clock = clock
        self._answers: OrderedDict[Hashable, _Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryotune-snapshot")

    @property
    def where(self) -> str:
        return self.source.where

    @property
    def repeats_dir(self) -> Path | None:
        return self.source.repeats_dir

    def sweep_names(self) -> list[str]:
        return self._answer(("sweep_names",), self.source.sweep_names)

    def sweeps(self) -> list[SweepDetail]:
        return self._answer(("sweeps",), self.source.sweeps)

    def summaries(self, names: list[str]) -> list[SweepSummary]:
        return self._answer(("summaries", *names), lambda: self.source.summaries(names))

    def sweep(self, name: str) -> SweepDetail:
        return self._answer(("sweep", name), lambda: self.source.sweep(name))

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]:
        return self._answer(("records", dataset), lambda: self.source.records(dataset))

    def age_s(self) -> float | None:
        """How old the oldest answer kept is (None: none kept)."""
        with self._lock:
            oldest = min((a.read_at for a in self._answers.values()), default=None)
        return None if oldest is None else self._clock() - oldest

    def close(self) -> None:
        self._refresher.shutdown(wait=False, cancel_futures=True)

    def _answer(self, key: Hashable, read: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None:
                self._answers.move_to_end(key)
                age = now - kept.read_at
                if age <= self.max_age_s:
                    return kept.value
                if age <= self.max_age_s + self.stale_s:
                    if not kept.refreshing:
                        kept.refreshing = True
                        self._refresher.submit(self._refresh, key, read)
                    return kept.value
        return self._keep(key, read, now)

    def _keep(self, key: Hashable, read: Callable[[], Any], started: float) -> Any:
        value = read()
        with self._lock:
            kept = self._answers.get(key)
            if kept is None or kept.read_at <= started:
                self._answers[key] = _Answer(value, started)
                self._answers.move_to_end(key)
            while len(self._answers) > MAX_ENTRIES:
                self._answers.popitem(last=False)
        return value

    def _refresh(self, key: Hashable, read: Callable[[], Any]) -> None:
        try:
            self._keep(key, read, self._clock())
        except Exception as exc:  # the next request past the stale window reads and reports it
            log.warning("refreshing %s from %s failed: %s", key[0], self.source.where, exc)
            with self._lock:
                kept = self._answers.get(key)
                if kept is not None:
                    kept.refreshing = False
