"""A simulated trial for the scale benchmark: a learning curve in place of a model.

``CRYOTUNE_TRIAL_RUNNER=bench.simulated:run_trial`` makes every trial of a sweep call this
instead of ``run_trial`` (the seam in ``cryotune.sweep.trainable``), so the driver, the per-pair
studies and schedulers, Optuna storage, MLflow outboxes, records, ``status`` and the API all run
for real while trials cost no compute: no data is read and no model is built. It returns a real
``TrialResult`` and calls ``on_epoch`` as ``run_trial`` does, continuing from its last epoch in
``checkpoint_dir`` when a trial resumes. It is no model users can pick.

Validation mIoU per epoch rises towards a ceiling set by the learning rate (best at
``BEST_LR``, lower a decade away either side) and the finetuning depth, at a rate set by the
learning rate, plus Gaussian noise seeded by the trial's seed, lr and epoch. Each epoch sleeps
``$CRYOTUNE_SIM_EPOCH_S`` seconds (default 0): a trial's "compute". The state file in
``checkpoint_dir`` keeps, besides the epochs, when the trial first started and when its last
epoch ended, the times the scale benchmark schedules by.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from cryotune.config import TrialConfig
from cryotune.data.datasets import get_dataset
from cryotune.documents.trial_result import EpochReport, TrialResult

EPOCH_S_ENV = "CRYOTUNE_SIM_EPOCH_S"
NOISE_ENV = "CRYOTUNE_SIM_NOISE"
BEST_LR = 1e-4
FLOOR, CEILING = 20.0, 88.0
STATE_FILE = "simulated.json"


def val_miou(lr: float, depth: int, epoch: int, seed: int, noise: float = 1.0) -> float:
    """The curve: ``CEILING`` less 10 points per decade (squared) off ``BEST_LR``, plus up to 4
    points for training deeper, reached at a rate that slows away from ``BEST_LR``."""
    off = math.log10(lr / BEST_LR)
    ceiling = CEILING - 10.0 * off * off + 4.0 * (1.0 - math.exp(-max(depth, 0) / 4.0))
    ceiling = max(FLOOR + 1.0, min(ceiling, 99.0))
    tau = 3.0 + 2.0 * abs(off)
    jitter = random.Random(f"{seed}:{lr!r}:{epoch}").gauss(0.0, noise)
    value = FLOOR + (ceiling - FLOOR) * (1.0 - math.exp(-epoch / tau)) + jitter
    return max(0.0, min(100.0, value))


def _report(config: TrialConfig, epoch: int, seconds: float, noise: float) -> EpochReport:
    miou = val_miou(config.lr, config.depth or 0, epoch, config.seed, noise)
    classes = len(get_dataset(config.dataset).classes)
    per_class = [max(0.0, min(100.0, miou + (i - (classes - 1) / 2))) for i in range(classes)]
    return EpochReport(
        epoch=epoch,
        train_loss=1.0 / epoch,
        val_miou=miou,
        per_class_iou=per_class,
        lr=config.lr,
        seconds=seconds,
        val_metrics={"miou": miou, "iou": per_class},
        peak_memory_mb=None,
        checkpoint_dir=None,
    )


def run_trial(
    config: TrialConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    on_start: Callable[[dict], None] | None = None,
) -> TrialResult:
    """``cryotune.train.trainer.run_trial``'s contract, on the simulated curve."""
    started = time.perf_counter()
    epoch_s = float(os.environ.get(EPOCH_S_ENV) or 0.0)
    noise = float(os.environ.get(NOISE_ENV) or 1.0)
    state_file = Path(checkpoint_dir) / STATE_FILE if checkpoint_dir is not None else None
    done, history, first_started = 0, [], time.time()
    if state_file is not None and resume and state_file.exists():
        state = json.loads(state_file.read_text())
        done, history = state["epoch"], [EpochReport(**e) for e in state["history"]]
        first_started = state["started"]
    info = {"depth": config.depth, "trainable_params": 0, "simulated": True}
    if on_start is not None:
        on_start(dict(info))
    for epoch in range(done + 1, config.epochs + 1):
        since = time.perf_counter()
        if epoch_s:
            time.sleep(epoch_s)
        evaluated = epoch % config.val_every == 0 or epoch == config.epochs
        if evaluated:
            history.append(_report(config, epoch, time.perf_counter() - since, noise))
        if state_file is not None:  # a resumed trial continues after this epoch
            state = {
                "epoch": epoch,
                "history": [e.to_dict() for e in history],
                "started": first_started,
                "at": time.time(),  # when this epoch ended (the scale benchmark's clock)
            }
            state_file.write_text(json.dumps(state))
        if evaluated and on_epoch is not None:
            on_epoch(history[-1])
    best = max(history, key=lambda e: e.val_miou or 0.0)
    test = {"miou": best.val_miou - 1.0} if config.evaluate_test else None
    return TrialResult(
        config=config,
        history=history,
        best_epoch=best.epoch,
        best_val_miou=best.val_miou,
        best_val_metrics=best.val_metrics,
        test_metrics=test,
        info=info,
        seconds=time.perf_counter() - started,
    )
