"""Where a sweep keeps everything it writes, under one workspace folder (``./cryotune-runs``).

::

    WORKSPACE/
      cache/                 decoded tile cache, shared by every sweep
      NAME/
        sweep.json           the resolved plan (spec, pairs, flags): what --resume continues
        driver.lock          held by the driver for its whole life (``SweepWorkspace.driver_lock``)
        driver.json          host, pid and start of the driver holding driver.lock
        live.json            every pair's status as the running driver last saw it (``live_status``)
        optuna.db            one Optuna study per pair, named NAME/DATASET/MODEL
        tune/                the Ray Tune experiment (restored by --resume); STORAGE/NAME instead
                             with --storage (cryotune.sweep.storage)
        trials/TRIAL_ID/     last.pt, best.pt, result.json, error.txt of one trial
        records/DATASET__MODEL.json   the best-config record of a finished pair
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryotune.errors import UsageError
from cryotune.files import LockBusy, file_lock, lock_is_held, replacing, write_json_atomic
from cryotune.locations import workspace_root

if TYPE_CHECKING:
    from cryotune.documents.plan import SweepPlanDocument

TUNE_EXPERIMENT = "tune"
SWEEP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_NAME = re.compile(SWEEP_NAME_PATTERN)
DRIVER_WAIT_S = 2.0
# The sweeps this process drives: probing their lock would find our own hold.
_DRIVING: set[Path] = set()


def check_sweep_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (a folder name), "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class SweepWorkspace:
    """The paths of one sweep; nothing is created until ``create``."""

    root: Path
    name: str

    @classmethod
    def at(cls, root: str | Path | None, name: str) -> SweepWorkspace:
        return cls(workspace_root(root), check_sweep_name(name))

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def plan_file(self) -> Path:
        return self.dir / "sweep.json"

    @property
    def driver_file(self) -> Path:
        return self.dir / "driver.json"

    @property
    def driver_lock_file(self) -> Path:
        return self.dir / "driver.lock"

    @property
    def live_file(self) -> Path:
        return self.dir / "live.json"

    @property
    def optuna_file(self) -> Path:
        return self.dir / "optuna.db"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.optuna_file}"

    def storage_url(self, given: str | None) -> str:
        """The study storage: a URL the spec gives (a cluster database), else the workspace's."""
        return given or self.optuna_url

    @property
    def tune_dir(self) -> Path:
        return self.dir / TUNE_EXPERIMENT

    @property
    def trials_dir(self) -> Path:
        return self.dir / "trials"

    @property
    def records_dir(self) -> Path:
        return self.dir / "records"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def exists(self) -> bool:
        return self.plan_file.exists()

    def record_path(self, dataset: str, model: str) -> Path:
        return self.records_dir / f"{dataset}__{model}.json"

    def create(self, plan: SweepPlanDocument) -> None:
        for folder in (self.dir, self.trials_dir, self.records_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._create_optuna_db()
        plan.write(self.plan_file)

    def _create_optuna_db(self) -> None:
        """Create the study database with its tables under a temporary name, then move it in
        place: a reader (``cryotune status``) never sees it half made, and never races the
        driver to create the tables."""
        import optuna

        if self.optuna_file.exists():
            return
        with replacing(self.optuna_file) as temp:
            storage = optuna.storages.RDBStorage(f"sqlite:///{temp}")
            storage.engine.dispose()

    def read_plan(self) -> SweepPlanDocument:
        from cryotune.documents.plan import SweepPlanDocument

        try:
            return SweepPlanDocument.read(self.plan_file)
        except FileNotFoundError:
            raise UsageError(
                f"no sweep '{self.name}' in {self.root} (no {self.plan_file.name}); "
                "`cryotune status --workspace DIR` lists the sweeps of a workspace"
            ) from None

    @contextlib.contextmanager
    def driver_lock(self) -> Iterator[None]:
        """Hold the sweep's driver lock for the block: a second driver of the same sweep, on any
        host sharing the folder (where its filesystem honours ``flock``), is refused instead of
        racing this one; a killed driver's lock dies with it.

        The lock is waited for a moment (``DRIVER_WAIT_S``), so a reader probing it
        (``driver_owner``) at the same instant cannot make the driver fail.
        """
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.driver_lock_file, timeout=DRIVER_WAIT_S))
            except LockBusy:
                raise self._second_driver(self._recorded_driver()) from None
            write_json_atomic(
                self.driver_file,
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                },
                fsync=False,
            )
            _DRIVING.add(self.dir)
            try:
                yield
            finally:
                _DRIVING.discard(self.dir)
                self.driver_file.unlink(missing_ok=True)

    def _second_driver(self, owner: dict) -> UsageError:
        holder = (
            f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('started')})"
            if owner
            else "a driver that is starting"
        )
        return UsageError(
            f"sweep '{self.name}' is being run by {holder}; wait for it or stop it: "
            "a second --resume would race it"
        )

    def driver_owner(self) -> dict | None:
        """The driver running this sweep in another process, on any host sharing the folder: its
        ``driver.json`` (empty while it is starting), or None when no one holds the driver lock.

        None for this process's own driver; also None where the lock cannot be probed (a reader
        without write access to the folder), as nothing then says the sweep is running.
        """
        if self.dir in _DRIVING:
            return None
        try:
            held = lock_is_held(self.driver_lock_file)
        except OSError:
            return None
        return self._recorded_driver() if held else None

    def _recorded_driver(self) -> dict:
        try:
            return json.loads(self.driver_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}


def list_sweeps(root: str | Path | None) -> list[SweepWorkspace]:
    base = workspace_root(root)
    if not base.is_dir():
        return []
    return [
        SweepWorkspace(base, d.name)
        for d in sorted(base.iterdir())
        if (d / "sweep.json").is_file() and _NAME.match(d.name)
    ]
