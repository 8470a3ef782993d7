"""The sweep's progress display, a Tune callback reading each pair's study.

On a terminal a table (per pair: trials done/complete/pruned/failed/running, best val mIoU,
elapsed) is redrawn in place every few seconds. Otherwise (a log file, CI) one line is printed
when a trial ends, so the log says what happened without repeating itself. It only shows:
records are written by the searcher (``FinishPairs``).

Each pair's row is read from its study again only when one of its trials started, reported or
ended since the last draw (a running pair's elapsed time grows, so it is read every draw): with
100 pairs, reading every study for every draw or trial end cost the driver more than the trials.
"""

from __future__ import annotations

import sys
import time

import optuna
from ray.tune import Callback

from cryotune.sweep.status import STATUS_HEADERS, status_rows, summarize_study
from cryotune.sweep.storage import study_storage
from cryotune.table import format_table

REDRAW_S = 2.0


class SweepProgress(Callback):
    def __init__(self, pairs: list[dict], storage_url: str, searcher):
        self._pairs = pairs
        self._storage_url = storage_url
        self._searcher = searcher
        self._studies: dict[str, optuna.Study] = {}
        self._rows: dict[str, dict] = {}
        self._stale: set[str] = {p["key"] for p in pairs}
        self._last_draw = 0.0
        self._drawn_lines = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_studies"] = {}
        state["_rows"] = {}
        state["_stale"] = {p["key"] for p in self._pairs}
        state["_drawn_lines"] = 0
        return state

    def _study(self, name: str) -> optuna.Study | None:
        if name not in self._studies:
            storage = study_storage(self._storage_url)
            if name not in optuna.get_all_study_names(storage):
                return None
            self._studies[name] = optuna.load_study(study_name=name, storage=storage)
        return self._studies[name]

    def _pair_status(self, pair: dict) -> dict:
        """The pair's row, read from its study if something happened to it since last read."""
        key = pair["key"]
        recorded = self._searcher.is_recorded(key)
        if key in self._stale or self._rows.get(key, {}).get("finished") != recorded:
            row = summarize_study(
                self._study(pair["study_name"]),
                key,
                pair["study_name"],
                pair["trials"],
                recorded,
            ).to_dict()
            self._rows[key] = row
            if not row["running"]:
                self._stale.discard(key)
        return self._rows[key]

    def _status(self) -> list[dict]:
        return [self._pair_status(p) for p in self._pairs]

    def _touched(self, trial) -> None:
        self._stale.add(trial.config.get("pair"))

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        table = format_table(STATUS_HEADERS, status_rows(self._status()))
        out = sys.stdout
        if self._drawn_lines:
            out.write(f"\x1b[{self._drawn_lines}F\x1b[J")
        out.write(table + "\n")
        out.flush()
        self._drawn_lines = table.count("\n") + 1

    def _log_trial_end(self, trial, how: str) -> None:
        key = trial.config.get("pair", "?")
        number = trial.config.get("study_trial")
        last = trial.last_result or {}
        pair = next((p for p in self._pairs if p["key"] == key), None)
        status = self._pair_status(pair) if pair is not None else None
        detail = ""
        if "restart" not in how and last.get("val_miou") is not None:
            detail = f" at epoch {last['epoch']} (val mIoU {last['val_miou']:.2f})"
        summary = ""
        if status is not None:
            best = status["best_val_miou"]
            summary = (
                f" | {status['done']}/{status['budget']} done: {status['complete']} complete, "
                f"{status['pruned']} pruned, {status['failed']} failed, {status['running']} "
                f"running, best {'-' if best is None else f'{best:.2f}'}"
            )
        print(
            f"{time.strftime('%H:%M:%S')} {key} trial {number} {how}{detail}{summary}", flush=True
        )

    def _outcome(self, trial) -> str:
        """The trial's state in its study (a resumed trial the study had finished is not re-run)."""
        key, number = trial.config.get("pair"), trial.config.get("study_trial")
        pair = next((p for p in self._pairs if p["key"] == key), None)
        study = self._study(pair["study_name"]) if pair is not None else None
        if study is None or number is None:
            return "ended"
        state = study.get_trials(deepcopy=False)[number].state.name.lower()
        if state == "complete" and not (trial.last_result or {}).get("final"):
            return "complete (finished before the restart, not run again)"
        return state.replace("fail", "failed")

    def on_step_end(self, iteration, trials, **info) -> None:
        if sys.stdout.isatty():
            self._draw()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._touched(trial)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)
        if sys.stdout.isatty():
            self._draw(force=True)
        else:
            self._log_trial_end(trial, self._outcome(trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._touched(trial)
        if sys.stdout.isatty():
            self._draw(force=True)
        else:
            self._log_trial_end(trial, "failed")

    def on_experiment_end(self, trials, **info) -> None:
        if sys.stdout.isatty():
            self._draw(force=True)
