"""run_trial on tiny synthetic GLID with the real U-Net: determinism, resume, checkpoints, hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cryotune.config import TrialConfig
from cryotune.data.cache import TileCache
from cryotune.data.datasets import get_dataset
from cryotune.data.fewshot import stratified_subset
from cryotune.errors import UsageError
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.segmenter import CustomEncoder
from cryotune.train.trainer import EpochReport, masked_cross_entropy, run_trial, select_device


@pytest.fixture
def config(unet_config) -> TrialConfig:
    return unet_config(epochs=3, max_steps_per_epoch=2, seed=7)


def _comparable(history: list[EpochReport]) -> list[tuple]:
    return [(r.epoch, r.train_loss, r.val_miou, r.per_class_iou, r.lr) for r in history]


def test_same_seed_gives_identical_histories_and_test_metrics(config):
    a = run_trial(config)
    b = run_trial(config)
    assert [r.epoch for r in a.history] == [1, 2, 3]
    assert _comparable(a.history) == _comparable(b.history)
    assert a.test_metrics == b.test_metrics
    assert a.best_epoch == b.best_epoch and a.best_val_miou == b.best_val_miou
    c = run_trial(config.model_copy(update={"seed": 8}))
    assert _comparable(c.history) != _comparable(a.history)


def test_result_describes_the_run(config):
    result = run_trial(config)
    assert result.test_metrics is not None
    assert set(result.test_metrics) >= {"miou", "iou", "f1", "precision", "recall", "accuracy"}
    assert result.best_val_metrics["miou"] == result.best_val_miou
    assert max(r.val_miou for r in result.history) == result.best_val_miou
    info = result.info
    assert info["device"] == "cpu" and info["precision"] == "fp32" and info["seed"] == 7
    assert info["weights"] == "random" and info["trainable_params"] > 0
    assert set(info["data_fingerprints"]) >= {"train", "val"}
    assert info["steps_per_epoch"] == 2 and info["total_steps"] == 6
    for report in result.history:
        assert report.peak_memory_mb is None and report.checkpoint_dir is None
        assert report.seconds > 0 and 0 <= report.val_miou <= 100
    data = result.to_dict()
    assert data["config"]["model"] == "unet" and len(data["history"]) == 3


def test_lr_steps_down_at_60_and_90_percent_of_iterations(config):
    # 3 epochs x 2 steps = 6 iterations; milestones at int(3.6)=3 and int(5.4)=5, as PANGAEA
    history = run_trial(config.model_copy(update={"evaluate_test": False})).history
    assert [r.lr for r in history] == pytest.approx([1e-3, 1e-4, 1e-5])


def test_validation_every_n_epochs_and_after_the_last(config):
    cfg = config.model_copy(update={"epochs": 5, "val_every": 2, "max_steps_per_epoch": 1})
    reports: list[EpochReport] = []
    result = run_trial(cfg, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [2, 4, 5]
    assert reports == result.history


def test_the_default_cadence_is_cryobenchs_every_5_epochs_and_the_last():
    assert TrialConfig(dataset="glid", model="unet").val_every == 5


def test_the_paper_cadence_validates_epochs_5_10_and_the_last(unet_config):
    cfg = unet_config(epochs=12, max_steps_per_epoch=1, val_every=5, evaluate_test=False)
    result = run_trial(cfg)
    assert [r.epoch for r in result.history] == [5, 10, 12]
    assert result.info["val_every"] == 5 and result.info["precision"] == "fp32"
    assert result.info["deviations"] == []


def test_checkpoints_are_written_before_on_epoch(config, tmp_path):
    seen = []

    def check(report: EpochReport) -> None:
        assert report.checkpoint_dir == str(tmp_path)
        assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
        last = torch.load(tmp_path / "last.pt", weights_only=True)
        assert last["epoch"] == report.epoch
        seen.append(report.epoch)

    run_trial(config, on_epoch=check, checkpoint_dir=tmp_path)
    assert seen == [1, 2, 3]
    assert not list(tmp_path.glob(".*.tmp"))


class Preempted(Exception):
    pass


def test_resume_continues_to_the_same_result_as_a_straight_run(config, tmp_path):
    straight = run_trial(config)

    def stop_after_two(report: EpochReport) -> None:
        if report.epoch == 2:
            raise Preempted

    with pytest.raises(Preempted):
        run_trial(config, on_epoch=stop_after_two, checkpoint_dir=tmp_path)
    later: list[EpochReport] = []
    resumed = run_trial(config, on_epoch=later.append, checkpoint_dir=tmp_path)
    assert [r.epoch for r in later] == [3]
    assert _comparable(resumed.history) == _comparable(straight.history)
    assert resumed.test_metrics == straight.test_metrics
    assert resumed.best_epoch == straight.best_epoch

    fresh = run_trial(config, checkpoint_dir=tmp_path, resume=False)
    assert _comparable(fresh.history) == _comparable(straight.history)


def test_resume_refuses_a_checkpoint_of_another_config(config, tmp_path):
    run_trial(
        config.model_copy(update={"epochs": 1, "evaluate_test": False}), checkpoint_dir=tmp_path
    )
    with pytest.raises(UsageError, match=r"last\.pt.*lr 0\.001 -> 0\.01"):
        run_trial(config.model_copy(update={"epochs": 1, "lr": 1e-2}), checkpoint_dir=tmp_path)


def test_on_epoch_exceptions_propagate(config):
    def stop(report: EpochReport) -> None:
        raise RuntimeError(f"stopped at {report.epoch}")

    with pytest.raises(RuntimeError, match="stopped at 1"):
        run_trial(config, on_epoch=stop)


def test_test_evaluation_can_be_skipped(config):
    cfg = config.model_copy(update={"epochs": 1, "evaluate_test": False})
    assert run_trial(cfg).test_metrics is None


def test_few_shot_trains_on_a_subset(config):
    cfg = config.model_copy(update={"epochs": 1, "label_fraction": 0.5, "evaluate_test": False})
    train = TileCache(Path(cfg.cache_dir)).open(get_dataset("glid"), Path(cfg.data_root), "train")
    expected = stratified_subset(train.class_ratios, 0.5, seed=cfg.seed)
    assert run_trial(cfg).info["train_tiles"] == len(expected) < len(train)


def test_masked_cross_entropy_ignores_pixels_and_is_zero_without_labels():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])
    target = torch.tensor([[[0, -1]]])
    expected = torch.nn.functional.cross_entropy(logits[..., :1], target[..., :1])
    torch.testing.assert_close(masked_cross_entropy(logits, target, -1), expected)
    assert masked_cross_entropy(logits, torch.full((1, 1, 2), -1), -1).item() == 0.0


def test_cuda_request_without_cuda_is_a_usage_error():
    if torch.cuda.is_available():
        assert select_device("cuda").type == "cuda"
    else:
        with pytest.raises(UsageError, match="--device cuda"):
            select_device("cuda")
    assert select_device("cpu").type == "cpu"


def test_unet_learns_the_synthetic_task_well_above_chance(config):
    cfg = config.model_copy(update={"epochs": 4, "crop_size": None})
    result = run_trial(cfg)
    assert result.info["crop_size"] is None and result.info["eval_window"] is None
    assert result.best_val_miou > 70 and result.test_metrics["miou"] > 70


def test_vit_trains_on_crops_and_evaluates_with_sliding_windows(config):
    cfg = config.model_copy(
        update={
            "model": "ssl4eo_mae",
            "weights": "random",
            "depth": 12,
            "epochs": 1,
            "neck_pool": "ceil",
        }
    )
    result = run_trial(cfg)
    assert result.info["crop_size"] == 16 and result.info["eval_window"] == 16
    assert result.info["weights"] == "random" and result.info["filled_bands"]
    assert result.test_metrics["pixels"] == 2 * 32 * 32  # every pixel of the 2 test tiles
    assert sorted(d.split(" ")[0] for d in result.info["deviations"]) == [
        "neck_pool=ceil",
        "val_every=1",
    ]


def test_a_crop_the_paper_neck_would_pool_to_nothing_is_refused_before_training(config):
    cfg = config.model_copy(update={"model": "ssl4eo_mae", "weights": "random", "epochs": 1})
    epochs = []
    with pytest.raises(
        UsageError, match=r"--crop-size 16 \(trial.crop_size\): ssl4eo_mae gives a 1x1.*32 px"
    ):
        run_trial(cfg, on_epoch=epochs.append)
    assert epochs == []


def test_a_diverging_learning_rate_ends_the_trial_with_its_score(config):
    result = run_trial(config.model_copy(update={"lr": 1e12, "epochs": 4}))
    assert result.info["diverged_at_epoch"] == 1
    assert [r.epoch for r in result.history] == [1]
    assert result.test_metrics is not None  # the best (only) checkpoint is still tested
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["history"][0]["train_loss"] is None


def test_on_start_gets_the_built_model_before_the_first_epoch(config):
    events = []
    run_trial(
        config.model_copy(update={"epochs": 1}),
        on_start=lambda info: events.append(("start", info)),
        on_epoch=lambda report: events.append(("epoch", report.epoch)),
    )
    (kind, info), *rest = events
    assert kind == "start" and rest == [("epoch", 1)]
    assert info["trainable_params"] > 0 and info["filled_bands"] == []
    assert (info["model"], info["dataset"]) == ("unet", "glid")


def test_a_trial_with_a_checkpoint_folder_writes_a_prediction_preview(config, tmp_path):
    import numpy as np

    result = run_trial(config, checkpoint_dir=tmp_path)
    preview = np.load(tmp_path / "preview.npz")
    label, prediction, image = preview["label"], preview["prediction"], preview["image"]
    assert label.shape == prediction.shape == image.shape[:2]
    assert image.ndim == 3 and image.shape[2] == 3
    assert 0 <= image.min() and image.max() <= 1 and image.max() > image.min()
    assert list(preview["classes"]) == list(get_dataset("glid").classes)
    assert set(np.unique(prediction)) <= {0, 1}
    assert result.test_metrics["confusion"] and len(result.best_val_metrics["confusion"]) == 2
    without = tmp_path / "no-test"
    run_trial(config.model_copy(update={"evaluate_test": False}), checkpoint_dir=without)
    assert not (without / "preview.npz").exists()


def test_a_custom_encoder_is_built_in_place_of_the_configs_model(config):
    # the benchmarks' seam: the registry's "ssl4eo_mae" is named, the U-Net is trained
    custom = CustomEncoder(get_encoder_spec("unet"))
    result = run_trial(
        config.model_copy(update={"model": "ssl4eo_mae", "epochs": 1}), custom=custom
    )
    assert result.info["model"] == "unet" and result.info["weights"] == "random"
    assert result.config.model == "ssl4eo_mae" and [r.epoch for r in result.history] == [1]
