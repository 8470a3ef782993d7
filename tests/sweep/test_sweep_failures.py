"""A pair whose trials fail: retried, then FAIL with the error kept; the other pair finishes."""

from __future__ import annotations

import json
import shutil

import optuna
import yaml
from optuna.trial import TrialState

SPEC = {
    "models": ["unet"],
    "space": {"lr": {"low": 1e-4, "high": 3e-3}},
    "scheduler": {"kind": "none", "max_epochs": 2},
    "budget": {"trials": 4, "retries": 1, "max_failed_trials": 2},
    "trial": {
        "weights": "random",
        "batch_size": 4,
        "crop_size": 32,
        "max_steps_per_epoch": 1,
        "val_every": 1,
    },
}


def test_a_failing_pair_is_recorded_as_failed_and_does_not_stop_the_others(
    cryotune, data_root, tmp_path
):
    broken = tmp_path / "caffe"
    shutil.copytree(data_root / "caffe", broken)
    missing = sorted((broken / "labels" / "val").iterdir())[0]
    missing.unlink()  # an unpaired validation image: every caffe trial fails with a DataError
    spec = tmp_path / "fail.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    workspace = tmp_path / "runs"
    done = cryotune(
        "sweep", "glid", "caffe", "--config", str(spec), "--name", "failing",
        "--data-root", f"glid={data_root / 'glid'}", "--data-root", f"caffe={broken}",
        "--workspace", str(workspace),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "caffe/unet trial 0 failed" in done.stdout
    assert "no complete trial" in done.stdout

    sweep_dir = workspace / "failing"
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    caffe = optuna.load_study(study_name="failing/caffe/unet", storage=storage).trials
    # After two failures the pair starts nothing more (a trial already started may still fail).
    assert 2 <= len(caffe) <= 3 and {t.state for t in caffe} == {TrialState.FAIL}
    for trial in caffe:
        assert "unpaired image" in trial.user_attrs["error"]
        assert missing.stem in trial.user_attrs["error"]
        error_log = sweep_dir / "trials" / trial.user_attrs["tune_trial_id"] / "error.txt"
        assert error_log.read_text().count("Traceback") == 2  # the first try and one retry
    glid = optuna.load_study(study_name="failing/glid/unet", storage=storage).trials
    assert [t.state for t in glid] == [TrialState.COMPLETE] * 4

    record = json.loads((sweep_dir / "records" / "caffe__unet.json").read_text())
    assert record["status"] == "no_complete_trial" and record["best"] is None
    assert "unpaired image" in record["errors"][-1]
    assert record["trials"]["failed"] == len(caffe)
    ok = json.loads((sweep_dir / "records" / "glid__unet.json").read_text())
    assert ok["status"] == "complete"
