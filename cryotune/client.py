"""The Python API: what the ``cryotune`` commands do, as functions returning typed answers.

``cryotune sweep``, ``status`` and ``best`` are thin layers over ``run_sweep``, ``status`` and
``best``; a notebook or script calls the same functions (re-exported as ``cryotune.run_sweep``,
``cryotune.status``, ...), starts a sweep in the background with ``start_sweep``, turns any answer
into a pandas DataFrame with ``to_frame`` and loads a best trial as a model with
``load_best_model``. Answers are the query layer's pydantic models (``cryotune.query.models``),
the same the HTTP API serves; readers take ``workspace`` (default ./cryotune-runs) or
``tracking_uri`` (an MLflow store alone), as the commands' flags do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from pydantic import BaseModel, Field

from cryotune.documents.record import PairRecord, UnreadableRecord
from cryotune.errors import UsageError
from cryotune.query.models import BestRecord, Leaderboard, SweepDetail, SweepState, SweepSummary
from cryotune.sweep.driver import SweepOutcome, SweepRequest

if TYPE_CHECKING:
    from cryotune.background import SweepHandle


class SweepResult(BaseModel):
    """How a sweep ended: its pairs' records and what it has to say (``cryotune sweep --json``)."""

    name: str
    location: str = Field(description="the sweep folder")
    state: Literal["finished", "interrupted"]
    seconds: float | None = Field(None, description="wall time of this run of the driver")
    records: list[PairRecord | UnreadableRecord] = Field(
        description="the best-config record of every pair that finished"
    )
    skipped: list[str] = Field([], description="pairs left out: the model reads no view of it")
    unfinished: list[str] = Field([], description="pairs without a record; --resume continues")
    notes: list[str] = Field([], description="what the driver said at the end")

    @property
    def ok(self) -> bool:
        """Every pair finished with a complete trial (the command's exit code 0)."""
        complete = [r for r in self.records if isinstance(r, PairRecord) and r.complete]
        return not self.unfinished and len(complete) == len(self.records)

    @classmethod
    def of(cls, outcome: SweepOutcome) -> SweepResult:
        return cls(
            name=outcome.name,
            location=str(outcome.dir),
            state="interrupted" if outcome.unfinished else "finished",
            seconds=outcome.seconds,
            records=outcome.records,
            skipped=outcome.skipped,
            unfinished=outcome.unfinished,
            notes=outcome.notes,
        )


SETTINGS = tuple(f.name for f in fields(SweepRequest) if f.name != "datasets")
"""The keyword settings of ``run_sweep`` and ``start_sweep``: ``cryotune sweep``'s flags."""


def sweep_request(datasets: str | Sequence[str], **settings) -> SweepRequest:
    """The ``cryotune sweep`` command line these arguments make; unknown settings are refused
    by name."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UsageError(
            f"unknown sweep setting {unknown[0]!r}; valid: {', '.join(SETTINGS)} "
            "(the flags of `cryotune sweep`)"
        )
    values = dict(settings)
    if isinstance(values.get("models"), str):
        values["models"] = [m.strip() for m in values["models"].split(",") if m.strip()]
    if isinstance(values.get("data_root"), str | Path):
        values["data_root"] = [values["data_root"]]
    if values.get("data_root") is not None:
        values["data_root"] = [str(root) for root in values["data_root"]]
    for key in ("config", "workspace", "storage"):
        if isinstance(values.get(key), Path):
            values[key] = str(values[key])
    names = [datasets] if isinstance(datasets, str) else list(datasets)
    return SweepRequest(datasets=names, **values)


def run_sweep(datasets: str | Sequence[str], **settings) -> SweepResult:
    """Run a sweep to its end in this process (what ``cryotune sweep`` does) and say how it
    ended. ``settings`` are the command's flags by name (``config="sweeps/smoke.yaml"``,
    ``models=["unet"]``, ``data_root="data"``, ``resume=True``, ...).

    The driver starts an embedded Ray cluster in this process; from a notebook,
    ``start_sweep(...).result()`` runs it in a process of its own instead.
    """
    from cryotune.sweep.driver import run_sweep as drive

    return SweepResult.of(drive(sweep_request(datasets, **settings)))


def start_sweep(
    datasets: str | Sequence[str], *, log: str | Path | None = None, **settings
) -> SweepHandle:
    """Start ``cryotune sweep`` in its own process and return its handle once the driver runs (a
    bad setting raises here, with the command's message); its output goes to ``log`` (default
    ``WORKSPACE/NAME/sweep.log``)."""
    from cryotune.background import start

    return start(sweep_request(datasets, **settings), log)


def _query(workspace: str | Path | None, tracking_uri: str | None):
    from cryotune.query.service import open_query

    return open_query(workspace, tracking_uri)


def sweeps(
    state: SweepState | None = None,
    *,
    workspace: str | Path | None = None,
    tracking_uri: str | None = None,
) -> list[SweepSummary]:
    """Every sweep (in ``state``): name, state, datasets, models, trial counts, times."""
    return _query(workspace, tracking_uri).sweeps(state)


@overload
def status(
    name: str, *, workspace: str | Path | None = None, tracking_uri: str | None = None
) -> SweepDetail: ...


@overload
def status(
    name: None = None, *, workspace: str | Path | None = None, tracking_uri: str | None = None
) -> list[SweepDetail]: ...


def status(name=None, *, workspace=None, tracking_uri=None):
    """Where sweep ``name`` stands, per pair (every sweep's, as a list, without a name); live
    while the sweep runs."""
    query = _query(workspace, tracking_uri)
    return query.sweep(name) if name is not None else query.sweep_details()


@overload
def best(
    dataset: str,
    model: str,
    *,
    workspace: str | Path | None = None,
    tracking_uri: str | None = None,
) -> BestRecord: ...


@overload
def best(
    dataset: str,
    model: None = None,
    *,
    workspace: str | Path | None = None,
    tracking_uri: str | None = None,
) -> list[BestRecord]: ...


def best(dataset, model=None, *, workspace=None, tracking_uri=None):
    """The best record of ``model`` on ``dataset`` over every sweep, or each model's, best
    first (with the ``cryotune train`` command repeating it)."""
    from cryotune.data.datasets import get_dataset

    get_dataset(dataset)
    query = _query(workspace, tracking_uri)
    return query.best(dataset, model) if model is not None else query.best_records(dataset)


def unreadable_records(
    dataset: str, *, workspace: str | Path | None = None, tracking_uri: str | None = None
) -> list[str]:
    """Record files of ``dataset`` that cannot be read, each with what is wrong."""
    return _query(workspace, tracking_uri).unreadable(dataset)


def leaderboard(
    dataset: str, *, workspace: str | Path | None = None, tracking_uri: str | None = None
) -> Leaderboard:
    """Each model's best on ``dataset`` beside the Cryo-Bench paper's frozen mIoU."""
    from cryotune.data.datasets import get_dataset

    get_dataset(dataset)
    return _query(workspace, tracking_uri).leaderboard(dataset)
