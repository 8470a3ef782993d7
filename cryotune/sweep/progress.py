"""The sweep's progress display, a Tune callback reading each pair's study.

On a terminal a table (per pair: trials done/complete/pruned/failed/running, best val mIoU and
the trial and epoch that reached it, elapsed) is redrawn in place every few seconds
(``cryotune.terminal``). Otherwise (a log file, CI, a notebook) one line is printed when a trial
ends, so the log says what happened without repeating itself: the trial's best validation mIoU
and its epoch, then the pair's counts and best. It only shows: records are written by the
searcher (``FinishPairs``).

Each pair's row is read from its study again only when one of its trials started, reported or
ended since the last draw (a running pair's elapsed time grows, so it is read every draw): with
100 pairs, reading every study for every draw or trial end cost the driver more than the trials.
The same rows go to the workspace's live status file (``cryotune.sweep.live_status``) every
2 s when one changed, for readers of the running sweep, without reads of their own: every study
is read once at the start, each trial's end is read by the line or table above, and what runs is
what Tune runs.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial
from ray.tune import Callback

from cryotune.sweep.live_status import write_live_status
from cryotune.sweep.status import (
    STATUS_HEADERS,
    PairStatus,
    best_where,
    status_rows,
    summarize_study,
    trial_best,
)
from cryotune.sweep.storage import study_storage
from cryotune.terminal import LiveTable

REDRAW_S = 2.0
TUNE_RUNNING = "RUNNING"  # a Tune trial's status while it trains


def trial_line(
    key: str, number: int | None, how: str, trial: FrozenTrial | None, pair: PairStatus | None
) -> str:
    """``glid/unet trial 0 complete: best val mIoU 40.65 at epoch 2 of 3 | 1/3 done: ...``"""
    line = f"{key} trial {number} {how}"
    value, epoch = trial_best(trial) if trial is not None else (None, None)
    if value is not None:
        last = max(trial.intermediate_values, default=None)
        of = f" of {last}" if last is not None and last != epoch else ""
        line += f": best val mIoU {value:.2f} at epoch {epoch}{of}"
    if pair is not None:
        best = "-" if pair.best_val_miou is None else f"{pair.best_val_miou:.2f}"
        where = best_where(pair.best_trial, pair.best_epoch)
        line += (
            f" | {pair.done}/{pair.budget} done: {pair.complete} complete, {pair.pruned} pruned, "
            f"{pair.failed} failed, {pair.running} running | pair best {best}"
            + ("" if pair.best_val_miou is None else f" ({where})")
        )
    return line


class SweepProgress(Callback):
    def __init__(
        self, pairs: list[dict], storage_url: str, searcher, live_file: Path | None = None
    ):
        self._pairs = pairs
        self._storage_url = storage_url
        self._searcher = searcher
        self._live_file = live_file
        self._studies: dict[str, optuna.Study] = {}
        self._rows: dict[str, PairStatus] = {}
        self._stale: set[str] = {p["key"] for p in pairs}
        self._last_draw = 0.0
        self._last_publish = 0.0
        self._published: list[PairStatus] | None = None
        self._table: LiveTable | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_studies"] = {}
        state["_rows"] = {}
        state["_stale"] = {p["key"] for p in self._pairs}
        state["_table"] = None
        state["_published"] = None
        return state

    @property
    def table(self) -> LiveTable:
        if self._table is None:
            self._table = LiveTable(STATUS_HEADERS, sys.stdout)
        return self._table

    def _study(self, name: str) -> optuna.Study | None:
        if name not in self._studies:
            storage = study_storage(self._storage_url)
            if name not in optuna.get_all_study_names(storage):
                return None
            self._studies[name] = optuna.load_study(study_name=name, storage=storage)
        return self._studies[name]

    def _pair_status(self, pair: dict) -> PairStatus:
        """The pair's row, read from its study if something happened to it since last read."""
        key = pair["key"]
        recorded = self._searcher.is_recorded(key)
        row = self._rows.get(key)
        if key in self._stale or row is None or row.finished != recorded:
            row = summarize_study(
                self._study(pair["study_name"]), key, pair["study_name"], pair["trials"], recorded
            )
            self._rows[key] = row
            if not row.running:
                self._stale.discard(key)
        return row

    def _status(self) -> list[PairStatus]:
        return [self._pair_status(p) for p in self._pairs]

    def _touched(self, trial) -> None:
        self._stale.add(trial.config.get("pair"))

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        self.table.show(status_rows([s.to_dict() for s in self._status()]))

    def _publish(self, trials, force: bool = False) -> None:
        """Write the rows as they stand to the live status file when one changed, every
        REDRAW_S at most; each pair's running trials are Tune's, which starts them."""
        now = time.monotonic()
        if self._live_file is None or not force and now - self._last_publish < REDRAW_S:
            return
        self._last_publish = now
        running = Counter(t.config.get("pair") for t in trials if t.status == TUNE_RUNNING)
        rows = [self._live_row(p, running[p["key"]]) for p in self._pairs]
        if rows != self._published:
            write_live_status(self._live_file, rows)
            self._published = rows

    def _live_row(self, pair: dict, running: int) -> PairStatus:
        row = self._rows.get(pair["key"]) or self._pair_status(pair)
        if row.running == running:
            return row
        stamp = dt.datetime.now(dt.timezone.utc)
        return replace(
            row, running=running, first_start=row.first_start or stamp, last_change=stamp
        )

    def _study_trial(self, trial) -> FrozenTrial | None:
        key, number = trial.config.get("pair"), trial.config.get("study_trial")
        pair = next((p for p in self._pairs if p["key"] == key), None)
        study = self._study(pair["study_name"]) if pair is not None else None
        if study is None or number is None:
            return None
        return study.get_trials(deepcopy=False)[number]

    def _log_trial_end(self, trial, how: str) -> None:
        key = trial.config.get("pair", "?")
        pair = next((p for p in self._pairs if p["key"] == key), None)
        status = self._pair_status(pair) if pair is not None else None
        line = trial_line(
            key, trial.config.get("study_trial"), how, self._study_trial(trial), status
        )
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    def _outcome(self, trial) -> str:
        """The trial's state in its study (a resumed trial the study had finished is not re-run)."""
        frozen = self._study_trial(trial)
        if frozen is None:
            return "ended"
        state = frozen.state.name.lower()
        if state == "complete" and not (trial.last_result or {}).get("final"):
            return "complete (finished before the restart, not run again)"
        return state.replace("fail", "failed")

    def on_step_end(self, iteration, trials, **info) -> None:
        if self.table.enabled:
            self._draw()
        self._publish(trials)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._touched(trial)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)
        if self.table.enabled:
            self._draw(force=True)
        else:
            self._log_trial_end(trial, self._outcome(trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)
        if self.table.enabled:
            self._draw(force=True)
        else:
            self._log_trial_end(trial, "failed")

    def on_experiment_end(self, trials, **info) -> None:
        self._publish(trials, force=True)
        if self.table.enabled:
            self._draw(force=True)
            self.table.stop()
