"""train_repeats: fixed seeds, per-seed and summary JSON, the printed table, resuming a run."""

from __future__ import annotations

import json
import statistics

import pytest

from cryotune.config import TrialConfig
from cryotune.errors import UsageError
from cryotune.train.repeats import mean_std, train_repeats


@pytest.fixture
def config(unet_config) -> TrialConfig:
    return unet_config(epochs=2, max_steps_per_epoch=1, seed=11)


def test_seeds_files_summary_and_table(config, tmp_path):
    lines: list[str] = []
    result = train_repeats(config, seeds=2, out=tmp_path, echo=lines.append)
    assert result.seeds == [11, 12]
    assert [t.config.seed for t in result.trials] == [11, 12]
    assert "seeds 11, 12" in lines[0]
    assert sum("epoch" in line for line in lines) == 4

    summary = json.loads((tmp_path / "summary.json").read_text())
    vals = [t.best_val_miou for t in result.trials]
    assert summary["val_miou_mean"] == pytest.approx(statistics.fmean(vals))
    assert summary["val_miou_std"] == pytest.approx(statistics.stdev(vals))
    assert summary["weights"] == "random" and summary["filled_bands"] == []
    for seed in (11, 12):
        trial = json.loads((tmp_path / f"seed-{seed}.json").read_text())
        assert trial["config"]["seed"] == seed and len(trial["history"]) == 2
        assert trial["test_metrics"]["miou"] >= 0

    table = result.format_table()
    assert "glid / unet" in table and "seeds 11, 12" in table
    assert "weights: random" in table and "filled bands: none" in table
    assert "mean ± std" in table
    assert f"{vals[0]:.2f}" in table


def test_finished_seeds_keep_best_weights_and_are_read_back_on_rerun(config, tmp_path):
    first = train_repeats(config, seeds=1, out=tmp_path, echo=lambda _: None)
    checkpoints = tmp_path / "checkpoints" / "seed-11"
    assert (checkpoints / "best.pt").exists() and not (checkpoints / "last.pt").exists()
    lines: list[str] = []
    again = train_repeats(config, seeds=2, out=tmp_path, echo=lines.append)
    assert any("seed 11" in line and "finished before" in line for line in lines)
    assert not any(line.startswith("seed 11") and "epoch" in line for line in lines)
    assert sum(line.startswith("seed 12") and "epoch" in line for line in lines) == 2
    assert again.trials[0].to_dict() == first.trials[0].to_dict()
    assert again.seeds == [11, 12]


def test_rerun_with_another_config_into_the_same_folder_is_refused(config, tmp_path):
    train_repeats(config.model_copy(update={"epochs": 1}), 1, tmp_path, echo=lambda _: None)
    with pytest.raises(UsageError, match=r"seed-11\.json.*lr 0\.001 -> 0\.002"):
        train_repeats(
            config.model_copy(update={"epochs": 1, "lr": 2e-3}), 1, tmp_path, echo=lambda _: None
        )


def test_a_single_seed_without_out_prints_no_mean_row(config):
    result = train_repeats(config.model_copy(update={"epochs": 1}), 1, None, echo=lambda _: None)
    assert result.out is None
    table = result.format_table()
    assert "mean ± std" not in table and "results:" not in table


def test_seed_count_must_be_positive(config):
    with pytest.raises(UsageError, match="--seeds"):
        train_repeats(config, seeds=0, out=None)


def test_mean_std():
    assert mean_std([70.0]) == (70.0, 0.0)
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
