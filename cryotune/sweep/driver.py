"""Runs a sweep: every (dataset, model) pair concurrently, on one Ray cluster, resumable.

Why one Tune experiment for all pairs rather than one ``Tuner`` per pair: on Ray 2.60, two
``Tuner.fit()`` calls in threads of one driver race on Tune's global trainable registry
(``RuntimeError: dictionary changed size during iteration`` in ``ray/tune/registry.py``, seen
here), Ray's docs advise against independent Tune jobs sharing a cluster, a global cap on
concurrent trials would need a budget shared across Tuners, and idle trial actors of one Tuner
hold slots another Tuner cannot reuse. So the sweep is a single experiment whose searcher
(``PairSearch``) keeps one OptunaSearch with its own durable study per pair (named
``SWEEP/DATASET/MODEL``, openable with optuna-dashboard) and whose scheduler (``PairScheduler``)
keeps one ASHA per pair. Tune's ``max_concurrent_trials`` is then the global cap, any free slot
goes to the pair furthest behind, and actors are reused across pairs. Restoring one experiment
with ``Tuner.restore`` restores every pair together.

``--resume`` after the driver is killed (SIGKILL included): Tune restores trial states and the
searcher from its last snapshot (taken every couple of seconds), the searcher reconciles itself
with the studies, the scheduler rebuilds ASHA's rungs from the studies, unfinished trials continue
from their last epoch's checkpoint in the workspace, and trials that had finished replay their
stored result instead of training again.

MLflow (``cryotune.tracking``): the tracking store is checked before anything is created or
computed; the sweep's runs are opened before the cluster starts and closed after it, and
``--resume`` first delivers whatever an earlier session could not log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cryotune
from cryotune.documents.plan import SweepPlanDocument
from cryotune.documents.record import PairRecord, UnreadableRecord, read_record
from cryotune.errors import UsageError
from cryotune.sweep.caches import build_caches
from cryotune.sweep.plan import (
    SweepPlan,
    git_commit,
    identity_differences,
    plan_sweep,
    view_notes,
)
from cryotune.sweep.records import PairRecorder
from cryotune.sweep.resources import TrialFootprint, detect_gpu_memory_gb, gpu_share
from cryotune.sweep.spec import SweepSpec, load_spec, with_overrides
from cryotune.sweep.storage import (
    ExperimentStorage,
    check_optuna_storage,
    check_storage,
    experiment_exists,
    masked_url,
    resolve_optuna_storage,
    resolve_storage,
)
from cryotune.sweep.workspace import SweepWorkspace
from cryotune.terminal import stop_all
from cryotune.tracking.heartbeat import Heartbeat
from cryotune.tracking.heartbeat import interval_s as heartbeat_interval_s
from cryotune.tracking.sweep import DEFAULT_WAIT_S, SweepTracker
from cryotune.tracking.uri import (
    CLIENT_ENVIRONMENT,
    check_reachable,
    client_environment,
    resolve_tracking_uri,
)

DRIVER_ENVIRONMENT = {
    # Tune's own console reporter; the sweep prints its own progress.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Tune's CSV, JSON and TensorBoard files of every result: the study, records and MLflow
    # hold them already, and writing them was 7% of the driver's CPU at 100 pairs.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


SNAPSHOT_S = 2.0
TRIALS_PER_SNAPSHOT_S = 100
"""Tune's experiment snapshot, which a killed driver's --resume restores, is taken every
SNAPSHOT_S seconds, or one second per TRIALS_PER_SNAPSHOT_S trials of the sweep when that is
longer: writing it costs time in proportion to the trials, so a fixed period made every trial
of a big sweep dearer (7% of the driver's CPU at 800 trials). A killed driver loses at most a
period of trial starts, which --resume runs again."""


def snapshot_period_s(trials: int) -> float:
    return max(SNAPSHOT_S, trials / TRIALS_PER_SNAPSHOT_S)


@contextlib.contextmanager
def driver_environment(trials: int) -> Iterator[None]:
    """DRIVER_ENVIRONMENT, CLIENT_ENVIRONMENT and the snapshot period while a sweep runs, each
    where the process has no value of its own; taken away after, so a notebook's own Ray Tune
    runs after a sweep keep Tune's defaults (its result files among them)."""
    wanted = {
        **DRIVER_ENVIRONMENT,
        **CLIENT_ENVIRONMENT,
        "TUNE_GLOBAL_CHECKPOINT_S": f"{snapshot_period_s(trials):g}",
    }
    added = {key: value for key, value in wanted.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


RAY_NOTICES = {
    # Printed on every start of an embedded cluster: Ray turned token authentication on, as it
    # does by default, and its only advice is to turn it off.
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled",
    # After Ctrl-C: "resume with Tuner.restore(...)"; a cryotune user resumes with --resume, which
    # the driver's own note says.
    "ray.tune.tune": "Experiment has been interrupted",
    # At the end: Tune's result grid looks for the per-trial CSV and JSON files that
    # TUNE_DISABLE_AUTO_CALLBACK_LOGGERS turns off, and lists every trial as a failure to read.
    "ray.tune.analysis.experiment_analysis": "Failed to fetch metrics for",
}
"""Ray's notices a cryotune user cannot act on: logger name -> start of the message."""


class _Notice(logging.Filter):
    """Drops one of Ray's notices; every other message of its logger passes.

    A logging filter rather than Ray's settings: ``RAY_AUTH_MODE=token`` silences the first too,
    but only when set before Ray is imported (set later it breaks the cluster's start), and a
    notebook may have imported Ray already.
    """

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_ray_notices() -> None:
    """Hide the notices of Ray a cryotune user cannot act on (idempotent)."""
    for name, start in RAY_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Notice) for f in logger.filters):
            logger.addFilter(_Notice(start))


@dataclass(frozen=True)
class SweepRequest:
    """The ``cryotune sweep`` command line, parsed: each field is the flag of its name."""

    datasets: list[str]
    config: str | None = None
    models: list[str] | None = None
    trials: int | None = None
    max_epochs: int | None = None
    label_fraction: float | None = None
    address: str | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    name: str | None = None
    workspace: str | None = None
    resume: bool = False
    seed: int | None = None
    data_root: list[str] | None = None
    weights: str | None = None
    num_cpus: int | None = None
    tracking_uri: str | None = None
    tracking_wait: float | None = None
    storage: str | None = None
    optuna_storage: str | None = None
    num_workers: int | None = None


@dataclass
class SweepOutcome:
    name: str
    dir: Path
    records: list[PairRecord | UnreadableRecord]
    skipped: list[str]
    seconds: float
    resumed: bool = False
    unfinished: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve_spec(request: SweepRequest) -> SweepSpec:
    spec = load_spec(request.config) if request.config else SweepSpec(name="default")
    return with_overrides(
        spec,
        **{
            "budget.trials": request.trials,
            "scheduler.max_epochs": request.max_epochs,
            "trial.label_fraction": request.label_fraction,
            "resources.gpu": request.gpus_per_trial,
            "resources.max_concurrent": request.max_concurrent,
            "trial.num_workers": request.num_workers,
            "sampler.seed": request.seed,
            "trial.seed": request.seed,
        },
    )


def default_name(spec: SweepSpec, datasets: list[str]) -> str:
    return "-".join([spec.name or "sweep", *dict.fromkeys(datasets)])


@contextlib.contextmanager
def ray_cluster(address: str | None, num_cpus: int | None, env: dict[str, str] | None = None):
    """An embedded single-machine cluster, or a connection to ``address`` (``auto``, ``ray://``).

    Workers of an embedded cluster inherit the driver's environment; those of a joined cluster
    get ``env`` through the job's runtime environment.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    quiet_ray_notices()
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
    else:
        ray.init(address=address, runtime_env={"env_vars": env or {}}, **common)
    try:
        yield
    finally:
        ray.shutdown()


class PairResources:
    """Tune's per-trial resource request, chosen by the trial's pair."""

    def __init__(self, by_pair: dict[str, dict[str, float]]):
        self.by_pair = by_pair

    def __call__(self, config: dict):
        from ray.tune import PlacementGroupFactory

        request = self.by_pair[config["pair"]]
        bundle = {"CPU": request["cpu"]}
        if request["gpu"]:
            bundle["GPU"] = request["gpu"]
        return PlacementGroupFactory([bundle])


def pair_resources(plan: SweepPlan, cluster_gpus: float) -> dict[str, dict[str, float]]:
    """CPUs and GPU share per pair: given in the spec or flags, else derived when GPUs exist."""
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import ENCODERS

    spec = plan.spec.resources
    derive = spec.gpu is None and cluster_gpus > 0
    memory = (spec.gpu_memory_gb or detect_gpu_memory_gb()) if derive else None
    out = {}
    for pair in plan.pairs:
        if not derive:
            gpu = spec.gpu or 0.0
        elif memory is None:
            gpu = 1.0
        else:
            encoder, dataset = ENCODERS[pair.model], get_dataset(pair.dataset)
            footprint = TrialFootprint.of(
                encoder,
                max_depth=pair.space.max_depth,
                batch_size=pair.base.batch_size,
                input_size=pair.base.crop_size or encoder.input_size_for(dataset),
                dataset=dataset,
            )
            gpu = gpu_share(footprint, memory)
        out[pair.key] = {"cpu": max(spec.cpu, float(pair.base.num_workers)), "gpu": gpu}
    return out


def check_fits(by_pair: dict[str, dict[str, float]], cluster: dict[str, float]) -> None:
    """Refuse trials the (embedded, fixed-size) cluster could never start."""
    for key, request in by_pair.items():
        for name, flag in (("cpu", "resources.cpu"), ("gpu", "--gpus-per-trial")):
            have = cluster.get(name.upper(), 0.0)
            if request[name] > have:
                raise UsageError(
                    f"{flag}: a {key} trial needs {request[name]:g} {name.upper()} but this "
                    f"machine's cluster has {have:g}; lower it or join a cluster with --address"
                )


def trial_dirname(trial) -> str:
    return trial.trial_id


def _make_trainable(resources: PairResources):
    from ray import tune

    from cryotune.sweep.trainable import sweep_trial

    def cryotune_trial(config: dict) -> None:
        sweep_trial(config)

    return tune.with_resources(cryotune_trial, resources)


def experiment_storage(workspace: SweepWorkspace, storage: str | None) -> ExperimentStorage:
    """The sweep's Tune experiment: ``STORAGE/NAME`` on shared storage, else ``NAME/tune``."""
    if storage is None:
        return ExperimentStorage(str(workspace.dir), workspace.tune_dir.name)
    return ExperimentStorage(storage, workspace.name)


def pair_recorder(
    plan: SweepPlan, workspace: SweepWorkspace, tracker: SweepTracker | None
) -> PairRecorder:
    spec = plan.spec
    return PairRecorder(
        workspace=workspace,
        storage_url=workspace.storage_url(spec.optuna_storage),
        sampler_seed=spec.sampler.seed,
        keep_checkpoints=spec.keep_checkpoints,
        git_commit=git_commit(),
        cryotune_version=cryotune.__version__,
        observer=tracker,
        tracking_uri=None if tracker is None else tracker.uri,
    )


def _build_tuner(
    plan: SweepPlan,
    workspace: SweepWorkspace,
    trainable,
    resume: bool,
    recorder: PairRecorder,
    experiment: ExperimentStorage | None = None,
):
    from ray import tune

    from cryotune.sweep.progress import SweepProgress
    from cryotune.sweep.scheduler import PairScheduler, PairStopping
    from cryotune.sweep.searcher import FinishPairs, PairSearch

    spec = plan.spec
    storage_url = recorder.storage_url
    searcher = PairSearch(plan, storage_url, str(workspace.trials_dir), recorder)
    if resume:
        searcher.reconcile()
    stopping = {
        p.key: None
        if spec.scheduler.kind == "none"
        else PairStopping(
            study_name=p.study_name,
            max_epochs=spec.scheduler.max_epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
            bootstrap_trials=spec.scheduler.bootstrap_trials,
        )
        for p in plan.pairs
    }
    scheduler = PairScheduler(stopping, spec.scheduler.metric, storage_url)
    progress = SweepProgress(
        [p.to_dict() for p in plan.pairs], storage_url, searcher, workspace.live_file
    )
    experiment = experiment or experiment_storage(workspace, None)
    return tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=sum(p.trials for p in plan.pairs),
            max_concurrent_trials=spec.resources.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=experiment.storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.budget.retries),
            callbacks=[FinishPairs(searcher), progress],
            verbose=0,
        ),
    )


def _read_records(
    plan: SweepPlan, workspace: SweepWorkspace
) -> list[PairRecord | UnreadableRecord]:
    paths = [workspace.record_path(p.dataset, p.model) for p in plan.pairs]
    return [read_record(path) for path in paths if path.exists()]


def prepare(request: SweepRequest) -> tuple[SweepPlan, SweepWorkspace]:
    """Resolve and check everything a sweep needs; create its workspace unless resuming."""
    if not request.datasets:
        raise UsageError("give at least one DATASET (see `cryotune datasets`)")
    heartbeat_interval_s()  # a bad $CRYOTUNE_HEARTBEAT_S fails before anything is made
    spec = resolve_spec(request)
    name = request.name or default_name(spec, request.datasets)
    workspace = SweepWorkspace.at(request.workspace, name)
    if workspace.exists() and not request.resume:
        raise UsageError(
            f"sweep '{name}' already exists in {workspace.root}; add --resume to continue it, "
            "or give another --name"
        )
    if request.resume and not workspace.exists():
        raise UsageError(f"--resume: no sweep '{name}' in {workspace.root} to continue")
    started = workspace.read_plan() if request.resume else None
    spec, storage = _cluster_stores(request, spec, started, name)
    started_uri = started.tracking_uri if started is not None else None
    tracking_uri = resolve_tracking_uri(request.tracking_uri, workspace.root, started_uri)
    if started_uri and tracking_uri != started_uri:
        raise UsageError(
            f"--resume: sweep '{name}' logs to the MLflow store {started_uri}, not "
            f"{tracking_uri}; resume it without --tracking-uri / $MLFLOW_TRACKING_URI or with "
            "that URI (its runs stay in one store), or give another --name"
        )
    plan = plan_sweep(
        spec,
        name,
        request.datasets,
        models=request.models,
        data_root=request.data_root,
        weights=request.weights,
        cache_dir=str(workspace.cache_dir),
        tracking_uri=tracking_uri,
    )
    if storage is not None:
        check_storage(storage)
    if spec.optuna_storage is not None:
        check_optuna_storage(spec.optuna_storage)
    check_reachable(tracking_uri)
    experiment = experiment_storage(workspace, storage)
    if storage is not None and not request.resume and experiment_exists(experiment.path):
        raise UsageError(
            f"--storage {masked_url(storage)}: already holds an experiment '{name}' (another "
            "workspace's sweep?); give another --name, or resume that sweep from its workspace"
        )
    if request.resume:
        differences = identity_differences(started.identity(), plan.identity())
        if differences:
            raise UsageError(
                f"--resume: sweep '{name}' was started with different settings "
                f"({', '.join(differences[:6])}); repeat its original command with --resume, "
                "or give another --name"
            )
    else:
        workspace.create(plan.document(storage))
    return plan, workspace


def _cluster_stores(
    request: SweepRequest, spec: SweepSpec, started: SweepPlanDocument | None, name: str
) -> tuple[SweepSpec, str | None]:
    """The spec with its Optuna storage from the flag or environment, and the experiment
    storage; a resumed sweep keeps the ones it started with."""
    started_optuna = started.optuna_storage if started is not None else None
    started_storage = started.storage if started is not None else None
    default = started_optuna if request.resume else spec.optuna_storage
    optuna_storage = resolve_optuna_storage(request.optuna_storage, default)
    storage = resolve_storage(request.storage, started_storage)
    if request.resume and optuna_storage != started_optuna:
        raise UsageError(
            f"--resume: sweep '{name}' keeps its Optuna studies in "
            f"{masked_url(started_optuna or 'its folder (optuna.db)')}, not "
            f"{masked_url(optuna_storage or 'its folder')}; resume it without --optuna-storage / "
            "$CRYOTUNE_OPTUNA_STORAGE or with that URL, or give another --name"
        )
    if request.resume and storage != started_storage:
        raise UsageError(
            f"--resume: sweep '{name}' keeps its Tune experiment in "
            f"{masked_url(started_storage or 'its folder (tune/)')}, not "
            f"{masked_url(storage or 'its folder')}; resume it without --storage / "
            "$CRYOTUNE_STORAGE or with that location, or give another --name"
        )
    return with_overrides(spec, optuna_storage=optuna_storage), storage


def run_sweep(request: SweepRequest) -> SweepOutcome:
    """Run (or continue) a sweep to its end and return the records of its pairs.

    The driver lock is held from before the tracker opens until the last record is read, so a
    second driver of the same sweep is refused. A finished sweep's ``--resume`` takes it as well,
    for one rule: it only closes MLflow runs and rewrites record copies, so refusing a second one
    at the same moment costs nothing.
    """
    started = time.perf_counter()
    plan, workspace = prepare(request)
    with workspace.driver_lock():
        return _drive(request, plan, workspace, started)


def _drive(
    request: SweepRequest, plan: SweepPlan, workspace: SweepWorkspace, started: float
) -> SweepOutcome:
    """Open the sweep's MLflow runs and keep its heartbeat going while it runs."""
    experiment = experiment_storage(workspace, workspace.read_plan().storage)
    notes = [f"skipped {key}: no modality in common" for key in plan.skipped]
    notes += view_notes(plan)
    done = all(workspace.record_path(p.dataset, p.model).exists() for p in plan.pairs)
    with driver_environment(sum(p.trials for p in plan.pairs)):
        return _track(request, plan, workspace, started, experiment, done, notes)


def _track(
    request: SweepRequest,
    plan: SweepPlan,
    workspace: SweepWorkspace,
    started: float,
    experiment: ExperimentStorage,
    done: bool,
    notes: list[str],
) -> SweepOutcome:
    tracker = SweepTracker.open(
        plan.tracking_uri,
        plan.name,
        list(plan.datasets),
        [p.key for p in plan.pairs],
        workspace.dir,
        workspace.trials_dir,
        workspace.read_plan().to_dict(),
        resume=request.resume,
    )
    if not done:  # an earlier driver's status is not this one's; a finished sweep keeps its last
        workspace.live_file.unlink(missing_ok=True)
    beat = Heartbeat(
        tracker.uri,
        tracker.sweep_run_id,
        live_file=workspace.live_file,
        pair_run_ids=tracker.pair_run_ids,
    )
    with beat:
        return _run_and_close(request, plan, workspace, started, tracker, experiment, done, notes)


def _run_and_close(
    request: SweepRequest,
    plan: SweepPlan,
    workspace: SweepWorkspace,
    started: float,
    tracker: SweepTracker,
    experiment: ExperimentStorage,
    done: bool,
    notes: list[str],
) -> SweepOutcome:
    """Run the sweep's trials unless every pair is recorded, then close its MLflow runs."""
    import optuna
    from sqlalchemy.exc import OperationalError

    recorder = pair_recorder(plan, workspace, tracker)
    if not done:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            if request.address is None:
                build_caches(plan)
            with ray_cluster(request.address, request.num_cpus, client_environment()):
                import ray
                from ray import tune

                cluster = ray.cluster_resources()
                by_pair = pair_resources(plan, cluster.get("GPU", 0.0))
                if request.address is None:
                    check_fits(by_pair, cluster)
                trainable = _make_trainable(PairResources(by_pair))
                if request.resume and tune.Tuner.can_restore(experiment.path):
                    tuner = tune.Tuner.restore(
                        experiment.path,
                        trainable=trainable,
                        resume_unfinished=True,
                        resume_errored=False,
                        restart_errored=False,
                    )
                else:
                    tuner = _build_tuner(
                        plan, workspace, trainable, request.resume, recorder, experiment
                    )
                try:
                    tuner.fit()
                finally:
                    stop_all()
        except BaseException:
            tracker.close("interrupted", wait_s=0)
            raise
    unfinished = [
        p.key for p in plan.pairs if not workspace.record_path(p.dataset, p.model).exists()
    ]
    if unfinished:
        notes.append(
            f"interrupted: {', '.join(unfinished)} not finished; repeat the command with --resume"
        )
    wait_s = DEFAULT_WAIT_S if request.tracking_wait is None else request.tracking_wait
    try:
        recorder.reconcile_observer(plan.pairs)
    except (OSError, OperationalError, optuna.exceptions.StorageInternalError) as exc:
        notes.append(
            f"MLflow: the study store did not answer ({type(exc).__name__}), so runs of trials "
            "that ended before a driver was killed may still read RUNNING; --resume closes them"
        )
    notes.append(tracker.where())
    notes += tracker.close(
        "interrupted" if unfinished else "finished",
        wait_s=0 if unfinished else wait_s,
        refresh=recorder.refresh_ids,
    )
    records = _read_records(plan, workspace)
    return SweepOutcome(
        name=plan.name,
        dir=workspace.dir,
        records=records,
        skipped=list(plan.skipped),
        seconds=time.perf_counter() - started,
        resumed=request.resume,
        unfinished=unfinished,
        notes=notes,
    )
