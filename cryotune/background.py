"""A sweep running in the background: ``cryotune sweep`` in a process of its own, and a handle.

The driver owns an embedded Ray cluster, signal handlers and environment settings, so it runs
as the real command (``python -m cryotune.cli sweep ... --json``), not in the caller's process:
a notebook stays responsive, and a kernel restart does not stop the sweep. The handle reads
progress through the query layer over the workspace (live while the sweep runs, from any
process), waits for the end, reads the result the command prints, and stops the sweep as Ctrl-C
would (``--resume`` continues it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

from cryotune.errors import CryotuneError, UsageError
from cryotune.query.models import SweepDetail
from cryotune.sweep.driver import SweepRequest, default_name, resolve_spec
from cryotune.sweep.workspace import SweepWorkspace

POLL_S = 0.2
STOP_WAIT_S = 60.0
LOG_FILE = "sweep.log"


def sweep_arguments(request: SweepRequest) -> list[str]:
    """``cryotune sweep``'s arguments for ``request`` (each field is the flag of its name)."""
    args = list(request.datasets)
    for field in fields(SweepRequest):
        value = getattr(request, field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name == "datasets" or value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif field.name == "models":
            args += [flag, ",".join(value)]
        elif isinstance(value, list):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def _tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last ``lines`` of ``path`` written after byte ``since``."""
    try:
        with path.open("rb") as text:
            text.seek(since)
            tail = text.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(tail.splitlines()[-lines:])


class SweepHandle:
    """A sweep started by ``cryotune.start_sweep``: ``progress()``, ``done``, ``wait()``,
    ``result()``, ``stop()``; its output is in ``log``."""

    def __init__(
        self, process: subprocess.Popen, workspace: SweepWorkspace, log: Path, result_file: Path
    ):
        self.process = process
        self.workspace = workspace
        self.log = log
        self._result_file = result_file
        self._stopped = False
        self._result = None

    @property
    def name(self) -> str:
        return self.workspace.name

    @property
    def dir(self) -> Path:
        return self.workspace.dir

    @property
    def done(self) -> bool:
        return self.process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def __repr__(self) -> str:
        state = "running" if not self.done else f"ended with code {self.returncode}"
        return f"<SweepHandle {self.name}: {state}, pid {self.process.pid}, log {self.log}>"

    def progress(self) -> SweepDetail:
        """Per pair: trials done, complete, pruned, failed and running, best val mIoU so far
        and where it was reached (the study, read now)."""
        from cryotune.query.service import open_query

        return open_query(self.workspace.root).sweep(self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the sweep to end (at most ``timeout`` seconds); True when it has."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def result(self, timeout: float | None = None):
        """Wait for the end and say how the sweep ended (a ``SweepResult``); CryotuneError with
        the end of its log when the command failed."""
        from cryotune.client import SweepResult

        if not self.wait(timeout):
            raise TimeoutError(f"sweep {self.name} still runs after {timeout} s")
        if self._result is not None:
            return self._result
        text = self._result_file.read_text() if self._result_file.exists() else ""
        self._result_file.unlink(missing_ok=True)
        if text.strip():
            self._result = SweepResult.model_validate_json(text)
        elif self._stopped and self.workspace.exists():
            self._result = self._result_from_workspace()
        if self._result is not None:
            return self._result
        raise CryotuneError(
            f"sweep {self.name} ended with code {self.returncode} and no result; the end of its "
            f"log ({self.log}):\n{_tail(self.log)}"
        )

    def _result_from_workspace(self):
        """The result of a sweep stopped before it could print one, from what it wrote."""
        from cryotune.client import SweepResult
        from cryotune.documents.record import read_record

        plan = self.workspace.read_plan()
        paths = {p.key: self.workspace.record_path(p.dataset, p.model) for p in plan.pair_plans}
        return SweepResult(
            name=self.name,
            location=str(self.dir),
            state="interrupted",
            records=[read_record(path) for path in paths.values() if path.exists()],
            skipped=list(plan.skipped),
            unfinished=[key for key, path in paths.items() if not path.exists()],
            notes=[f"stopped; continue with resume=True (--resume); log: {self.log}"],
        )

    def stop(self, timeout: float = STOP_WAIT_S):
        """Stop the sweep as Ctrl-C would (SIGINT: trials end, the studies and records stay,
        ``resume=True`` continues it); killed if it has not ended after ``timeout`` seconds.
        Returns its result."""
        self._stopped = True
        if not self.done:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            if not self.wait(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.result()


def start(request: SweepRequest, log: str | Path | None = None) -> SweepHandle:
    """Start ``cryotune sweep`` for ``request``; returns once its driver holds the sweep (or
    raises what the command printed when it refused to start)."""
    name = request.name or default_name(resolve_spec(request), request.datasets)
    workspace = SweepWorkspace.at(request.workspace, name)
    request = replace(request, name=name, workspace=str(workspace.root))
    fresh = not workspace.dir.exists()
    workspace.dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log).expanduser().resolve() if log is not None else workspace.dir / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    since = log_path.stat().st_size if log_path.exists() else 0
    handle_fd, result_name = tempfile.mkstemp(prefix=f"cryotune-{name}-", suffix=".json")
    os.close(handle_fd)
    result_file = Path(result_name)
    command = [sys.executable, "-m", "cryotune.cli", "sweep", *sweep_arguments(request), "--json"]
    with log_path.open("a") as log_out, result_file.open("w") as result_out:
        process = subprocess.Popen(
            command,
            stdout=result_out,
            stderr=log_out,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    handle = SweepHandle(process, workspace, log_path, result_file)
    while workspace.driver_owner() is None:
        if process.poll() is not None:
            if result_file.read_text().strip():
                return handle  # it ended between two looks (a finished sweep resumed)
            said = _tail(log_path, 50, since)
            errors = [ln for ln in said.splitlines() if "cryotune: error:" in ln]
            reason = errors[-1].split("cryotune: error: ", 1)[1] if errors else said
            error = UsageError if process.returncode == UsageError.exit_code else CryotuneError
            if fresh and log is None:  # refused before it made anything: leave no folder
                shutil.rmtree(workspace.dir, ignore_errors=True)
            result_file.unlink(missing_ok=True)
            raise error(f"sweep {name} did not start: {reason}")
        time.sleep(POLL_S)
    return handle
