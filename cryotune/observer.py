"""What a sweep tells whoever watches it (MLflow tracking today), as plain data.

The sweep owns its studies and records; an observer sees only these values, so tracking needs
no Optuna study, Tune object or sweep module, and another observer (a dashboard, a message bus)
can be added without touching the sweep. Trial outcomes are spelled one way everywhere cryotune
names them: records, MLflow tags, the CLI and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from cryotune.documents.record import PairRecord, RecordIds

Outcome = Literal["complete", "pruned", "failed"]
COMPLETE, PRUNED, FAILED, RUNNING = "complete", "pruned", "failed", "running"
OUTCOMES: tuple[Outcome, ...] = (COMPLETE, PRUNED, FAILED)


@dataclass(frozen=True)
class BestTrial:
    """A pair's best complete trial so far: its study trial number and hyper-parameters."""

    number: int
    lr: float | None
    depth: int | None
    epoch: int | None = None


@dataclass(frozen=True)
class PairCounts:
    """A pair's trials by outcome, and its best validation mIoU and trial so far."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_val_miou: float | None = None
    best: BestTrial | None = None

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


@dataclass(frozen=True)
class TrialPoint:
    """One ended trial as the plots see it: complete ones at their score, pruned ones at the
    last epoch they reported."""

    number: int
    outcome: Outcome
    val_miou: float
    lr: float | None
    depth: int | None


@dataclass(frozen=True)
class EndedTrial:
    pair: str
    trial_id: str
    study_trial: int | None
    outcome: Outcome


@dataclass(frozen=True)
class PairEnd:
    """Everything about a finished pair an observer may show."""

    record: PairRecord
    counts: PairCounts
    points: tuple[TrialPoint, ...]
    trial_ids: tuple[str, ...]
    classes: tuple[str, ...]
    preview: str | None


class SweepObserver(Protocol):
    """Called by the sweep's driver as trials and pairs end; must not raise for an outage."""

    def trial_context(self, pair: str) -> dict | None:
        """JSON a trial carries to its worker to report on its own (None: nothing)."""

    def trial_ended(self, trial: EndedTrial, counts: PairCounts) -> None: ...

    def record_ids(self, pair: str, tune_trial_id: str | None) -> RecordIds:
        """The ids this observer gives the pair's runs, for the record to name them."""

    def pair_ending(self, end: PairEnd) -> None:
        """Before the record file is written (a driver killed in between resends it)."""

    def pair_recorded(self, pair: str, sweep_records: list[PairRecord]) -> None:
        """After the record file is written; ``sweep_records``: the sweep's readable records
        of every dataset, for leaderboards and the results report."""

    def record_changed(self, record: PairRecord, sweep_records: list[PairRecord]) -> None:
        """A record the sweep rewrote (ids known only now); ``sweep_records`` as above."""

    def reconcile(self, ended: list[EndedTrial], recorded: list[PairRecord]) -> int:
        """Close what a killed driver left open; how many things were closed."""

    def close(self, state: str, wait_s: float, refresh) -> list[str]:
        """The sweep ended (``finished`` / ``interrupted``); ``refresh()`` lets the sweep
        update its records with ids learned while closing. Notes for the user."""

    def where(self) -> str: ...
