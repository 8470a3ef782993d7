"""The Tune function of a sweep trial: ``run_trial`` with its epochs reported to Tune.

Each trial trains in its own folder of the workspace (``trials/TRIAL_ID``), where ``run_trial``
writes ``last.pt`` and ``best.pt``. A retried or resumed trial calls ``run_trial`` on the same
folder, so it continues from its last evaluated epoch instead of starting over, on whichever node
Ray places it (a trial whose node was lost resumes on another; ``epochs.jsonl`` names the Ray node
of every epoch); Tune's own checkpoint copies are not used (a ViT-L with optimizer state is GBs
per epoch). A trial that had already finished when the driver was killed finds its
``result.json`` and replays its reports without training. Errors are appended to ``error.txt``
for the study to keep.

With ``reuse_actors`` a worker runs many trials: imports, decoded tiles (the trainer's split
cache) and CUDA context stay; the cached GPU memory of a finished or stopped trial is returned
after it and again before the next trial (a stopped trial's frames live until its thread ends).

``$CRYOTUNE_TRIAL_RUNNER`` (``module:function``) replaces ``run_trial`` in every trial: a seam for
benchmarks of the sweep machinery (``bench/simulated.py`` draws a learning curve instead of
training), read here only, never part of a sweep's plan or a model users can pick.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from cryotune.files import file_lock, write_text_atomic
from cryotune.sweep.keys import FINAL, TRIAL_RESULT

RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
RUNNER_ENV = "CRYOTUNE_TRIAL_RUNNER"
REPLAYED = "replayed"
DEFAULT_RUNNER = "cryotune.train.trainer:run_trial"


def trial_runner(environ: Mapping[str, str] = os.environ):
    """The function that trains a trial (``run_trial``'s signature, returning a TrialResult):
    ``run_trial``, or the ``module:function`` a benchmark names in ``$CRYOTUNE_TRIAL_RUNNER``."""
    path = environ.get(RUNNER_ENV) or DEFAULT_RUNNER
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            f"${RUNNER_ENV}={path}: cannot load it as module:function ({exc})"
        ) from None


def epoch_metrics(report: dict, best_val_miou: float) -> dict:
    """The per-epoch result Tune, ASHA and the study see."""
    return {
        "epoch": report["epoch"],
        "val_miou": report["val_miou"],
        "best_val_miou": best_val_miou,
        "train_loss": report["train_loss"],
        "per_class_iou": list(report["per_class_iou"]),
        "lr": report["lr"],
        "epoch_seconds": report["seconds"],
        "peak_memory_mb": report["peak_memory_mb"],
    }


def replayed_metrics(epoch: dict, best_val_miou: float) -> dict:
    """An epoch a resumed trial had trained before, reported again before it trains on: a
    driver killed while the epoch's result was on its way never stored it in the study, and
    the study keeps only epochs it has not seen (so does ASHA's rung record)."""
    return {
        "epoch": epoch["epoch"],
        "val_miou": epoch["val_miou"],
        "best_val_miou": best_val_miou,
        REPLAYED: True,
    }


def final_metrics(result: dict) -> dict:
    """The last result of a trial that trained to its end, carrying the whole TrialResult."""
    last = result["history"][-1] if result["history"] else None
    test = result.get("test_metrics") or {}
    return {
        **(epoch_metrics(last, result["best_val_miou"]) if last else {}),
        "epoch": result["config"]["epochs"] if last is None else last["epoch"],
        "best_val_miou": result["best_val_miou"],
        "val_miou": last["val_miou"] if last else result["best_val_miou"],
        "best_epoch": result["best_epoch"],
        "test_miou": test.get("miou"),
        "trial_seconds": result["seconds"],
        FINAL: True,
        TRIAL_RESULT: json.dumps(result),
    }


def _replay(trial_dir: Path, report) -> bool:
    """Report a trial that already finished from its result file; False when there is none."""
    from cryotune.documents.document import DocumentError
    from cryotune.documents.trial_result import TrialResult

    try:
        result = TrialResult.read(trial_dir / RESULT_FILE).to_dict()
    except (FileNotFoundError, DocumentError):
        return False
    best = float("-inf")
    for epoch in result["history"]:
        best = max(best, epoch["val_miou"])
        report(epoch_metrics(epoch, best))
    report(final_metrics(result))
    return True


def _exclusive(trial_dir: Path):
    """Hold the trial folder alone: a worker of a killed driver may still be finishing an epoch
    in it while the resumed sweep starts the same trial; the lock dies with that worker."""
    return file_lock(trial_dir / ".lock")


def _settle(tracked: bool, trains_models: bool = True) -> None:
    """Before each trial on a (reused) worker: collect what earlier trials left, then freeze
    every object still alive, so that collections during and after this trial walk only the
    objects it creates.

    A worker holding torch, Ray, MLflow and the model zoo has about 0.5M live objects, and a full
    ``gc.collect`` over them took 0.3-0.7 s here, twice per trial: most of a short trial's
    overhead. Tune reuses an actor only once the previous trial's thread has ended (else it
    replaces the actor), so what survives the collection is the worker's own state (modules,
    caches, clients). Frozen objects are still freed by reference counting, only never by the
    cycle collector. The modules ``run_trial`` imports on first use are imported first, so the
    first trial's collections skip them too (``trains_models``: not for a benchmark's runner).
    """
    if trains_models:
        _import_trial_modules(tracked)
    _release_memory()
    gc.freeze()


@functools.cache
def _import_trial_modules(tracked: bool) -> None:
    import cryotune.data.segmentation  # noqa: F401
    import cryotune.models.segmenter  # noqa: F401

    if tracked:
        import mlflow  # noqa: F401


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # not loaded: no CUDA memory to return
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def sweep_trial(config: dict) -> None:
    """Train one trial of a sweep (``config`` comes from ``PairSearch.suggest``)."""
    import ray
    from ray import tune

    from cryotune.config import TrialConfig
    from cryotune.tracking.trial import TRACKING_KEY, TrialTracker

    run_trial = trial_runner()
    _settle(tracked=bool(config.get(TRACKING_KEY)), trains_models=not os.environ.get(RUNNER_ENV))
    trial_id = tune.get_context().get_trial_id()
    trial_dir = Path(config["trials_dir"]) / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(trial_dir):
        tracker = TrialTracker.of(config, trial_dir, trial_id)
        if _replay(trial_dir, tune.report):
            if tracker is not None:
                tracker.deliver(force=True)
            return
        trial_config = TrialConfig(**config["trial"])
        node_id = ray.get_runtime_context().get_node_id()
        payload = train_in_folder(trial_config, trial_dir, tune.report, run_trial, tracker, node_id)
    tune.report(final_metrics(payload))


def _log_missing_epochs(progress_file: Path, history) -> None:
    """Put in ``epochs.jsonl``, in order, the trained epochs it lacks: a trial taken down
    between writing an epoch's checkpoint and logging the epoch continues after that epoch, so
    only the trainer's history still holds it."""
    lines = progress_file.read_text().splitlines() if progress_file.exists() else []
    logged = {json.loads(line)["epoch"]: line for line in lines}
    missing = {
        e.epoch: json.dumps({"epoch": e.epoch, "val_miou": e.val_miou, "node": None})
        for e in history
        if e.epoch not in logged
    }
    if missing:
        merged = {**logged, **missing}
        write_text_atomic(progress_file, "".join(merged[k] + "\n" for k in sorted(merged)))


def train_in_folder(
    trial_config, trial_dir: Path, report, run_trial, tracker=None, node_id: str | None = None
) -> dict:
    """Run (or continue) the trial in its folder; returns the TrialResult as a dict.

    Every evaluated epoch is appended to ``epochs.jsonl`` with the Ray node (``node_id``) it ran on;
    a continued trial reports those epochs again before it trains on (``replayed_metrics``).

    With a ``tracker`` (``TrialTracker``) the trial's MLflow run gets its params, every epoch's
    metrics and its end, each spooled before Tune hears of it.
    """
    progress_file = trial_dir / "epochs.jsonl"
    best = float("-inf")
    if progress_file.exists():
        for line in progress_file.read_text().splitlines():
            epoch = json.loads(line)
            best = max(best, epoch["val_miou"])
            report(replayed_metrics(epoch, best))

    def on_epoch(epoch) -> None:
        nonlocal best
        best = max(best, epoch.val_miou)
        values = epoch.to_dict()
        if tracker is not None:
            tracker.epoch(values)
        with progress_file.open("a") as f:
            line = {"epoch": epoch.epoch, "val_miou": epoch.val_miou, "node": node_id}
            f.write(json.dumps(line) + "\n")
        report(epoch_metrics(values, best))

    def on_start(info: dict) -> None:
        if tracker is not None:
            tracker.model_built(trial_config, info)

    if tracker is not None:
        tracker.start(trial_config)
    try:
        result = run_trial(
            trial_config,
            on_epoch=on_epoch,
            checkpoint_dir=trial_dir,
            resume=True,
            on_start=on_start,
        )
    except Exception:
        with (trial_dir / ERROR_FILE).open("a") as f:
            f.write(traceback.format_exc() + "\n")
        if tracker is not None:
            tracker.failed()
        raise
    finally:
        _release_memory()
    _log_missing_epochs(progress_file, result.history)
    result.write(trial_dir / RESULT_FILE)
    payload = result.to_dict()
    if tracker is not None:
        tracker.finished(payload)
    return payload
