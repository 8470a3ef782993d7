"""A trial's MLflow run, logged from inside its Ray worker through the trial folder's outbox.

Logging in the trial (not in the driver) is what makes it work across nodes with a tracking
server. The run is a child of its pair's run: params when the model is built, metrics every
epoch (step = epoch), final metrics, the resolved config as ``config.json``, and the status tag
(``completed`` on a normal end, ``failed`` on an error; the driver marks stopped trials
``pruned`` through the same outbox). The worker's courier thread delivers, so training never
waits for the tracking store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cryotune.tracking.names import (
    CONFIG_ARTIFACT,
    LEVEL_TRIAL,
    PARENT_TAG,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_RUNNING,
    TAG_DATASET,
    TAG_LEVEL,
    TAG_MODEL,
    TAG_PAIR,
    TAG_STATUS,
    TAG_STUDY_TRIAL,
    TAG_SWEEP,
    TAG_TRIAL_ID,
)
from cryotune.tracking.outbox import Courier, Outbox

TRACKING_KEY = "tracking"
"""Trial config key holding the tracking context (see ``SweepTracker.trial_context``)."""

COURIER = Courier()
"""Delivers the trials of this worker process (a reused actor runs many)."""


def class_metric(name: str) -> str:
    """``iou_<class>`` with the class name as a plain metric key (``ocean/ice melange`` ->
    ``iou_ocean_ice_melange``)."""
    return "iou_" + re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def trial_run_fields(context: dict, trial_id: str, study_trial: int | None) -> dict:
    """The ``create`` operation of a trial's run."""
    tags = {
        TAG_LEVEL: LEVEL_TRIAL,
        TAG_SWEEP: context["sweep"],
        TAG_DATASET: context["dataset"],
        TAG_MODEL: context["model"],
        TAG_PAIR: context["pair"],
        TAG_TRIAL_ID: trial_id,
        TAG_STUDY_TRIAL: str(study_trial),
        TAG_STATUS: STATUS_RUNNING,
        PARENT_TAG: context["pair_run_id"],
    }
    return {
        "experiment_id": context["experiment_id"],
        "run_name": f"{context['pair']} #{study_trial}",
        "tags": tags,
        "match": {TAG_LEVEL: LEVEL_TRIAL, TAG_TRIAL_ID: trial_id, PARENT_TAG: tags[PARENT_TAG]},
    }


def open_trial_outbox(
    trial_dir: Path, context: dict, trial_id: str, study_trial: int | None
) -> tuple[Outbox, bool]:
    """The trial's outbox, and whether it is new (then its run's creation is spooled first)."""
    outbox = Outbox(trial_dir)
    new = not outbox.has_operations()
    if new:
        outbox.append("create", **trial_run_fields(context, trial_id, study_trial))
    return outbox, new


def trial_params(config: dict, info: dict) -> dict:
    filled = info.get("filled_bands") or []
    return {
        "lr": config["lr"],
        "depth": info.get("depth", config.get("depth")),
        "trainable_params": info.get("trainable_params"),
        "model": config["model"],
        "dataset": config["dataset"],
        "label_fraction": config["label_fraction"],
        "seed": config["seed"],
        "filled_bands": ",".join(filled) if filled else "none",
        "view": info.get("view", "-"),
        "precision": info.get("precision", "-"),
        "val_every": config.get("val_every"),
        "deviations": "; ".join(info.get("deviations") or []) or "none",
        "epochs": config["epochs"],
        "batch_size": config["batch_size"],
        "weights": config.get("weights") or "default",
    }


def epoch_values(report: dict, class_keys: list[str]) -> dict:
    """An EpochReport (as a dict) as the trial run's per-epoch metrics."""
    values = {
        "train_loss": report["train_loss"],
        "val_miou": report["val_miou"],
        "lr": report["lr"],
        "epoch_seconds": report["seconds"],
        **dict(zip(class_keys, report["per_class_iou"], strict=False)),
    }
    if report.get("peak_memory_mb") is not None:
        values["peak_memory_mb"] = report["peak_memory_mb"]
    return values


class TrialTracker:
    """Spools a trial's logging and delivers it when the tracking store answers."""

    def __init__(self, context: dict, trial_dir: Path, trial_id: str, study_trial: int | None):
        from cryotune.data.datasets import get_dataset

        self.context = context
        self.trial_dir = Path(trial_dir)
        self.outbox, self._new = open_trial_outbox(self.trial_dir, context, trial_id, study_trial)
        self.class_keys = [class_metric(c) for c in get_dataset(context["dataset"]).classes]
        self._client = None

    @classmethod
    def of(cls, config: dict, trial_dir: Path, trial_id: str) -> TrialTracker | None:
        """The tracker of a sweep trial's config; None when the sweep tracks nothing."""
        context = config.get(TRACKING_KEY)
        if not context:
            return None
        return cls(context, trial_dir, trial_id, config.get("study_trial"))

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.context["uri"])
        return self._client

    def deliver(self, force: bool = False) -> None:
        """Hand what is spooled to the worker's courier; training does not wait for it."""
        COURIER.post(self.outbox, self.client, force=force)

    def start(self, config) -> None:
        """The trial (re)starts: its config as an artifact; a retried trial is running again."""
        if not self._new:
            self.outbox.append("tags", tags={TAG_STATUS: STATUS_RUNNING})
            self.outbox.append("status", status="RUNNING")
        path = self.trial_dir / CONFIG_ARTIFACT
        path.write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
        self.outbox.append("artifact", file=str(path))
        self.deliver()

    def model_built(self, config, info: dict) -> None:
        self.outbox.append("params", params=trial_params(config.model_dump(mode="json"), info))
        self.deliver()

    def epoch(self, report: dict) -> None:
        values = epoch_values(report, self.class_keys)
        self.outbox.append("metrics", metrics=values, step=report["epoch"])
        self.deliver()

    def finished(self, result: dict) -> None:
        """Final metrics and the ``completed`` status, delivered by the courier even within the
        store's retry pause."""
        test = result.get("test_metrics") or {}
        last = result["history"][-1]["epoch"] if result["history"] else 0
        final = {
            "best_val_miou": result["best_val_miou"],
            "best_epoch": result["best_epoch"],
            "test_miou": test.get("miou"),
        }
        self.outbox.append("metrics", metrics=final, step=last)
        self.outbox.append("tags", tags={TAG_STATUS: STATUS_COMPLETE})
        self.outbox.append("status", status="FINISHED")
        self.deliver(force=True)

    def failed(self) -> None:
        """Delivered now (after what the courier holds): Ray may end a failed trial's worker."""
        self.outbox.append("tags", tags={TAG_STATUS: STATUS_FAILED})
        self.outbox.append("status", status="FAILED")
        self.outbox.deliver(self.client, force=True)
