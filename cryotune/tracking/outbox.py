"""A run's logging operations, spooled in a folder and delivered to MLflow in order.

Why tracking survives a tracking server outage: nothing is sent to MLflow directly. Each
operation (create the run, log params, metrics, tags, an artifact, set the status) is first
appended as one JSON line to ``mlflow-outbox.jsonl`` in the run's folder (a trial folder, or the
sweep's ``mlflow/`` folder), then delivered in order; ``mlflow-outbox.delivered`` counts the lines
delivered. Delivery stops at the first failure and leaves the rest for later; after a failure,
delivery is not tried again for ``retry_after_s`` (unless forced), so a dead server costs a
training loop one fast failed request every few seconds at most. Only a store that is away or
overloaded pauses delivery (``transient``); an operation failing for any other reason, refused
by MLflow or hitting a bug, is skipped with a WARNING naming it, so it never blocks the run's
later logs. A lock file serialises the
driver and a worker appending to or delivering the same outbox.

A training loop hands delivery to a ``Courier`` (one background thread per process), so it does
not wait for the tracking store, except when it spools while the courier holds the same outbox's
lock file to deliver it.

Re-delivering is harmless, so a crash between delivering and counting loses nothing: the run is
found by its key tags before it is created (and its id cached in ``mlflow-run-id``), params are
re-logged with the same values, metrics carry the timestamp they were spooled with (MLflow keys
them by key, step and timestamp), tags and artifacts are overwritten with the same content.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryotune.files import LockBusy, file_lock, write_text_atomic

SPOOL_FILE = "mlflow-outbox.jsonl"
DELIVERED_FILE = "mlflow-outbox.delivered"
RUN_ID_FILE = "mlflow-run-id"
LOCK_FILE = ".mlflow-outbox.lock"
RETRY_AFTER_S = 5.0

_FILTERABLE = re.compile(r"^[A-Za-z0-9._/: -]*$")

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class SkippedOperation(Exception):
    """An operation that can never be delivered (its file is gone, its run is unknown)."""


def run_filter(match: dict[str, str]) -> str:
    """An MLflow filter over the tags whose values need no quoting; the rest are checked after."""
    return " and ".join(
        f"tags.`{key}` = '{value}'" for key, value in match.items() if _FILTERABLE.match(value)
    )


def find_run(client, experiment_id: str, match: dict[str, str]) -> str | None:
    """The active run of the experiment carrying every tag of ``match``, if any."""
    runs = client.search_runs([experiment_id], filter_string=run_filter(match), max_results=50)
    for run in runs:
        if all(run.data.tags.get(key) == value for key, value in match.items()):
            return run.info.run_id
    return None


def _create(client, run_id: str | None, op: dict) -> str:
    if run_id is not None:
        return run_id
    found = find_run(client, op["experiment_id"], op["match"])
    if found is not None:
        return found
    run = client.create_run(
        op["experiment_id"], start_time=op["ts"], tags=op["tags"], run_name=op["run_name"]
    )
    return run.info.run_id


def _params(client, run_id: str, op: dict) -> str:
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in op["params"].items()])
    return run_id


def _metrics(client, run_id: str, op: dict) -> str:
    from mlflow.entities import Metric

    metrics = [
        Metric(key, float(value), op["ts"], int(op.get("step", 0)))
        for key, value in op["metrics"].items()
        if value is not None
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    return run_id


def _tags(client, run_id: str, op: dict) -> str:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in op["tags"].items()])
    return run_id


def _status(client, run_id: str, op: dict) -> str:
    if op["status"] == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=op["status"], end_time=op["ts"])
    return run_id


def _artifact(client, run_id: str, op: dict) -> str:
    if not Path(op["file"]).is_file():
        raise SkippedOperation(f"{op['file']} is gone")
    client.log_artifact(run_id, op["file"], op.get("dir"))
    return run_id


def _table(client, run_id: str, op: dict) -> str:
    """A JSON table in ``mlflow.log_table``'s format, replaced as a plain artifact: log_table
    would append rows, and replacing would mean rewriting MLflow's internal artifact tag."""
    return _artifact(client, run_id, op)


OPERATIONS: dict[str, Callable] = {
    "create": _create,
    "params": _params,
    "metrics": _metrics,
    "tags": _tags,
    "status": _status,
    "artifact": _artifact,
    "table": _table,
}


def transient(exc: Exception) -> bool:
    """Whether delivery may succeed later as it is: the store is away (a connection error, a
    locked or unreachable database) or overloaded (5xx, 429). Anything else, a refused
    operation or a bug, will not change by retrying."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, OSError | OperationalError):
        return True
    if isinstance(exc, MlflowException):
        status = exc.get_http_status_code()
        return status >= 500 or status == 429
    return False


class Outbox:
    """The spooled operations of one MLflow run, in ``folder``."""

    def __init__(self, folder: str | Path, retry_after_s: float = RETRY_AFTER_S):
        self.folder = Path(folder)
        self.retry_after_s = retry_after_s
        self.last_error: str | None = None
        self._retry_at = 0.0

    @property
    def spool_file(self) -> Path:
        return self.folder / SPOOL_FILE

    @property
    def delivered_file(self) -> Path:
        return self.folder / DELIVERED_FILE

    @property
    def run_id_file(self) -> Path:
        return self.folder / RUN_ID_FILE

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(file_lock(self.folder / LOCK_FILE, None if wait else 0))
            except LockBusy:
                yield False
                return
            yield True

    def append(self, kind: str, **fields) -> None:
        """Spool one operation (see OPERATIONS) stamped with the time it happened."""
        if kind not in OPERATIONS:
            raise ValueError(f"unknown outbox operation {kind!r}; valid: {', '.join(OPERATIONS)}")
        line = json.dumps({"kind": kind, "ts": now_ms(), **fields}).encode() + b"\n"
        with self._locked(), self.spool_file.open("a+b") as spool:
            spool.seek(0, os.SEEK_END)
            if spool.tell():
                spool.seek(-1, os.SEEK_END)
                if spool.read(1) != b"\n":  # a line cut short by a killed writer
                    spool.write(b"\n")
            spool.write(line)

    def operations(self) -> list[dict]:
        """Every complete spooled line; an unreadable one is kept as ``{"kind": "corrupt"}``."""
        try:
            text = self.spool_file.read_text()
        except FileNotFoundError:
            return []
        ops = []
        for line in text.split("\n")[:-1]:
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError:
                ops.append({"kind": "corrupt", "line": line[:200]})
        return ops

    def last(self, kind: str) -> dict | None:
        """The last spooled operation of ``kind`` (delivered or not), None if there is none."""
        found = [op for op in self.operations() if op.get("kind") == kind]
        return found[-1] if found else None

    def has_operations(self) -> bool:
        return self.spool_file.exists() and self.spool_file.stat().st_size > 0

    def delivered(self) -> int:
        try:
            return int(self.delivered_file.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def pending(self) -> int:
        return max(0, len(self.operations()) - self.delivered())

    def run_id(self) -> str | None:
        try:
            return self.run_id_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def deliver(self, client, force: bool = False, wait: bool = True) -> bool:
        """Send pending operations in order; True when none is left.

        Unforced, nothing is tried within ``retry_after_s`` of a failure. ``wait=False`` gives
        up at once when another process holds the outbox (it is delivering it).
        """
        if not force and time.monotonic() < self._retry_at:
            return False
        with self._locked(wait) as held:
            if not held:
                return False
            ops = self.operations()
            done = self.delivered()
            run_id = self.run_id()
            for index in range(done, len(ops)):
                op = ops[index]
                try:
                    run_id = self._apply(client, run_id, op)
                except Exception as exc:
                    if transient(exc):
                        self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                        self._retry_at = time.monotonic() + self.retry_after_s
                        log.info("MLflow delivery from %s paused: %s", self.folder, self.last_error)
                        return False
                    log.warning(
                        "MLflow: skipped operation %s (#%d) of %s: %s: %s",
                        op.get("kind"),
                        index,
                        self.folder,
                        type(exc).__name__,
                        exc,
                    )
                write_text_atomic(self.delivered_file, str(index + 1), fsync=False)
            self._retry_at = 0.0
            self.last_error = None
            return True

    def _apply(self, client, run_id: str | None, op: dict) -> str | None:
        kind = op.get("kind")
        if kind not in OPERATIONS:
            raise SkippedOperation(f"unknown operation {op}")
        if kind != "create" and run_id is None:
            raise SkippedOperation("no run was created before it")
        new_id = OPERATIONS[kind](client, run_id, op)
        if new_id != run_id:
            write_text_atomic(self.run_id_file, new_id, fsync=False)
        return new_id


class Courier:
    """Delivers outboxes on one background thread, so that whoever logs only spools.

    Against a local sqlite store a trial's operations took 0.1-0.3 s here, all of it between two
    trials when the trial waits for its deliveries. Posts of an outbox that wait together are
    delivered once (forced if any was). What the thread has not delivered when its process ends
    stays in the outbox for the next ``deliver`` (the driver forces every trial's at the pair's
    end).
    """

    def __init__(self) -> None:
        self._posted: dict[Path, tuple[Outbox, object, bool]] = {}
        self._busy = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def post(self, outbox: Outbox, client, force: bool = False) -> None:
        with self._cond:
            waiting = self._posted.get(outbox.folder)
            self._posted[outbox.folder] = (outbox, client, force or bool(waiting and waiting[2]))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cryotune-mlflow-courier", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._posted)
                folder = next(iter(self._posted))
                outbox, client, force = self._posted.pop(folder)
                self._busy = True
            try:
                outbox.deliver(client, force=force)
            except Exception:
                log.exception("MLflow delivery from %s failed", outbox.folder)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything posted so far was delivered or tried; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._posted and not self._busy, timeout)
