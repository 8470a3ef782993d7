"""The names a sweep writes into MLflow, shared by the tracking layer and its readers.

How a sweep appears in MLflow: one experiment per sweep (experiment tag ``cryotune.sweep``), a
sweep run, one child run per (dataset, model) pair, one grandchild run per trial; the levels and
their keys are these tags. Kept free of heavy imports so readers need neither MLflow nor torch.
"""

from cryotune.observer import COMPLETE, FAILED, PRUNED, RUNNING

TAG_LEVEL = "cryotune.level"
"""``sweep`` | ``pair`` | ``trial``."""
TAG_SWEEP = "cryotune.sweep"
"""The sweep name (also the experiment name and an experiment tag)."""
TAG_DATASET = "cryotune.dataset"
TAG_MODEL = "cryotune.model"
TAG_PAIR = "cryotune.pair"
"""``DATASET/MODEL``."""
TAG_TRIAL_ID = "cryotune.trial_id"
"""The Tune trial id, which is also the trial's folder name in the workspace."""
TAG_STUDY_TRIAL = "cryotune.study_trial"
"""The Optuna trial number in the pair's study."""
TAG_STATUS = "cryotune.status"
"""Trial: ``running`` | ``complete`` | ``pruned`` | ``failed`` (``completed`` in earlier versions)."""
TAG_STATE = "cryotune.state"
"""Sweep: ``running`` | ``finished`` | ``interrupted``; pair: ``running`` | ``finished``."""
TAG_BEST_STUDY_TRIAL = "cryotune.best_study_trial"
"""Pair: its best complete trial so far (Optuna trial number), with its ``cryotune.best_lr`` and
``cryotune.best_depth`` (``None`` when the model has no depth) and ``cryotune.best_epoch``, so
readers need no trial run."""
TAG_BEST_LR = "cryotune.best_lr"
TAG_BEST_DEPTH = "cryotune.best_depth"
TAG_BEST_EPOCH = "cryotune.best_epoch"
TAG_DATASETS = "cryotune.datasets"
"""Sweep run: the swept datasets, comma-separated."""
TAG_MODELS = "cryotune.models"
"""Sweep run: the swept models, comma-separated."""
TAG_WORKSPACE = "cryotune.workspace"
"""Sweep run: the sweep's folder."""
TAG_HEARTBEAT = "cryotune.heartbeat"
"""Sweep run: when its driver last beat, unix seconds (``cryotune.tracking.heartbeat``)."""
TAG_HEARTBEAT_S = "cryotune.heartbeat_s"
"""Sweep run: seconds between its driver's beats."""
PARENT_TAG = "mlflow.parentRunId"
"""MLflow's own nesting tag: the UI draws the tree from it."""

RECORD_ARTIFACT = "record.json"
"""Pair run: the pair's best-config record."""
PLAN_ARTIFACT = "sweep.json"
"""Sweep run: the resolved plan, spec included."""
LIVE_ARTIFACT = "live.json"
"""Sweep run: every pair's status as its running driver last saw it, with the pair runs' ids
(``cryotune.sweep.live_status``, carried by the heartbeat); ``pairs`` null until it has one."""
CONFIG_ARTIFACT = "config.json"
"""Trial run: the resolved TrialConfig."""
LEADERBOARD_DIR = "leaderboard"
"""Sweep run: ``leaderboard/<dataset>.json`` tables in ``mlflow.log_table``'s format."""

REPORT_DIR = "report"
"""Sweep run: the sweep's results report (``cryotune report``), refreshed as each pair ends."""
REPORT_FILES = {
    "md": "report.md",
    "latex": "report.tex",
    "csv": "report.csv",
    "json": "report.json",
}
"""Format -> file name under ``REPORT_DIR``."""
REPORT_PNG = "report_heatmap.png"
"""Sweep run: the report's difference to the paper as a heatmap, under ``REPORT_DIR``."""

LEVEL_SWEEP, LEVEL_PAIR, LEVEL_TRIAL = "sweep", "pair", "trial"
STATUS_RUNNING, STATUS_COMPLETE, STATUS_PRUNED, STATUS_FAILED = RUNNING, COMPLETE, PRUNED, FAILED
LEGACY_STATUS = {"completed": STATUS_COMPLETE}
"""Status tag values older cryotune wrote, read as today's."""
STATE_RUNNING, STATE_FINISHED, STATE_INTERRUPTED = "running", "finished", "interrupted"

LEADERBOARD_COLUMNS = (
    "model",
    "val_miou",
    "test_miou",
    "lr",
    "depth",
    "num_blocks",
    "trials_complete",
    "trials_pruned",
    "trials_failed",
    "run_id",
)
"""Columns of a sweep run's leaderboard table, one row per model."""

CONFUSION_PNG = "confusion_matrix.png"
PREVIEW_PNG = "prediction_preview.png"
HISTORY_PNG = "optimization_history.png"
LR_PNG = "val_miou_vs_lr.png"
PAIR_PLOTS = (CONFUSION_PNG, PREVIEW_PNG, HISTORY_PNG, LR_PNG)
"""Pair run artifacts drawn from the study and the best trial."""
