"""Names the sweep writes into Tune results and Optuna studies, shared by writers and readers.

Kept apart so the readers (``cryotune status``, ``best``, the API) need neither Ray nor torch.
"""

FINAL = "final"
"""Result key the trainable sets on its last report, after the test evaluation."""

TRIAL_RESULT = "trial_result"
"""Result key holding the trainer's TrialResult as JSON on the final report."""

TUNE_TRIAL_ID = "tune_trial_id"
"""Study trial user attribute: the Tune trial (and workspace trial folder) it belongs to."""

ORPHANED = "orphaned_trials"
"""Study user attribute: numbers of trials failed on resume because they never trained."""

ERROR = "error"
"""Study trial user attribute: the error text of a failed trial."""

RESULT = "result"
"""Study trial user attribute: the TrialResult of a COMPLETE trial."""
