"""The Python API as a notebook uses it (``notebook_sweep`` runs one, as a script, against a real
sweep): a background sweep with progress, stop and resume; status, best records and the
leaderboard as typed objects and DataFrames; the best trial as a model."""

from __future__ import annotations

import pytest

from cryotune.cli import build_parser
from cryotune.client import SETTINGS, sweep_request
from cryotune.errors import CryotuneError, UsageError


def test_a_background_sweep_reports_progress_and_stops_resumably(notebook_sweep):
    progress = notebook_sweep["progress"]
    assert progress["name"] == "nb-glid" and progress["trials"]["done"] >= 1
    assert [p["key"] for p in progress["pairs"]] == ["glid/unet"]
    stopped = notebook_sweep["stopped"]
    assert stopped["state"] == "interrupted" and stopped["unfinished"] == ["glid/unet"]


def test_the_resumed_sweep_ends_with_a_typed_result(notebook_sweep):
    result = notebook_sweep["result"]
    assert result["state"] == "finished" and notebook_sweep["result_ok"]
    (record,) = result["records"]
    assert record["dataset"] == "glid" and record["model"] == "unet"
    assert record["status"] == "complete" and record["trials"]["total"] == 3
    assert any("MLflow" in note for note in result["notes"])


def test_the_sweep_log_reads_as_plain_lines_without_rays_notices(notebook_sweep):
    log = notebook_sweep["log"]
    assert "\x1b" not in log
    assert "Token authentication" not in log  # Ray's, at every start
    assert "Tuner.restore" not in log  # Ray's, after the stop; cryotune's own note follows
    assert "Failed to fetch metrics" not in log  # Ray's, for the trial files cryotune turns off
    assert "interrupted: glid/unet not finished; repeat the command with --resume" in log
    ended = [ln for ln in log.splitlines() if " glid/unet trial " in ln]
    assert ended and all("best val mIoU" in ln and " at epoch " in ln for ln in ended[-1:])


def test_status_and_best_come_as_typed_objects_and_dataframes(notebook_sweep):
    status, best = notebook_sweep["status"], notebook_sweep["best"]
    (pair,) = status["pairs"]
    assert status["state"] == "finished" and pair["done"] == 3 and pair["pruned"] >= 1
    (row,) = notebook_sweep["status_frame"]
    assert row["pair"] == "glid/unet" and row["pruned"] == pair["pruned"]
    assert row["best_val_miou"] == pytest.approx(pair["best_val_miou"])
    assert row["best_epoch"] == best[0]["best"]["epoch"]
    assert row["best_trial"] == best[0]["ids"]["study_trial"]
    (sweep,) = notebook_sweep["sweeps_frame"]
    assert sweep["sweep"] == "nb-glid" and sweep["done"] == 3
    (record,) = notebook_sweep["best_frame"]
    assert record["val_miou"] == pytest.approx(best[0]["best"]["val_miou"])
    assert record["lr"] == pytest.approx(best[0]["config"]["lr"])
    assert record["repeat_command"].startswith("cryotune train glid unet --lr ")
    (entry,) = notebook_sweep["leaderboard_frame"]
    assert entry["model"] == "unet" and entry["paper_frozen_miou"] is not None


def test_the_best_model_loads_ready_for_inference_with_its_best_epochs_weights(notebook_sweep):
    model, record = notebook_sweep["model"], notebook_sweep["best"][0]
    assert model["is_module"] and model["class"] == "Segmenter" and not model["training"]
    batch, height, width = model["tile_shape"]
    assert model["logits_shape"] == [batch, 2, height, width]  # GLID: 2 classes
    assert model["val_miou"] == pytest.approx(record["best"]["val_miou"], abs=1e-3)


def test_load_best_model_says_how_to_get_a_checkpoint_back(notebook_sweep, tmp_path):
    import shutil

    import cryotune

    copy = tmp_path / "runs"
    shutil.copytree(notebook_sweep["workspace"] / notebook_sweep["name"], copy / "nb-glid")
    for checkpoint in (copy / "nb-glid" / "trials").glob("*/best.pt"):
        checkpoint.unlink()
    record = cryotune.best("glid", "unet", workspace=copy)
    with pytest.raises(CryotuneError) as caught:
        cryotune.load_best_model("glid", workspace=copy, device="cpu")
    message = str(caught.value)
    assert "checkpoint is gone" in message and "keep_checkpoints" in message
    assert record.repeat_command in message


def test_a_bad_setting_is_refused_by_name_before_anything_starts():
    with pytest.raises(UsageError, match="unknown sweep setting 'trails'; valid: .*trials"):
        sweep_request("glid", trails=3)


def test_the_api_settings_are_the_sweep_commands_flags():
    from cryotune.background import sweep_arguments

    request = sweep_request(
        ["glid", "caffe"],
        models="unet,dofa",
        data_root=["data", "sicd=/d/sicd"],
        trials=4,
        label_fraction=0.25,
        resume=True,
        workspace="runs",
        gpus_per_trial=0.5,
    )
    parsed = build_parser().parse_args(["sweep", *sweep_arguments(request)])
    assert {name: getattr(parsed, name) for name in ("datasets", *SETTINGS)} == vars(request)


def test_start_sweep_raises_what_the_command_refused(cli_env, tmp_path):
    import cryotune

    with pytest.raises(UsageError, match="did not start: .*unknown model 'nope'"):
        cryotune.start_sweep("glid", models="nope", workspace=tmp_path / "runs", name="bad")
    assert not (tmp_path / "runs" / "bad").exists()
