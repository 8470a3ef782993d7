"""A sweep trial in its folder: a continued trial reports again the epochs it trained before, so
a study that missed them (its driver was killed while they were on their way) gets them."""

from __future__ import annotations

import pytest

from bench.simulated import run_trial
from cryotune.config import TrialConfig
from cryotune.sweep.trainable import REPLAYED, train_in_folder


def _config(epochs: int) -> TrialConfig:
    return TrialConfig(
        dataset="glid", model="unet", lr=1e-4, epochs=epochs, weights="random", val_every=1
    )


def test_a_continued_trial_reports_its_earlier_epochs_before_training_on(tmp_path):
    first: list[dict] = []
    train_in_folder(_config(2), tmp_path, first.append, run_trial)
    assert [r["epoch"] for r in first] == [1, 2] and not any(REPLAYED in r for r in first)

    reports: list[dict] = []
    result = train_in_folder(_config(4), tmp_path, reports.append, run_trial)
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert [bool(r.get(REPLAYED)) for r in reports] == [True, True, False, False]
    assert [r["val_miou"] for r in reports[:2]] == [r["val_miou"] for r in first]
    assert reports[1]["best_val_miou"] == pytest.approx(max(r["val_miou"] for r in first))
    assert [e["epoch"] for e in result["history"]] == [1, 2, 3, 4]


def test_an_epoch_trained_but_never_logged_joins_epochs_jsonl_in_order(tmp_path):
    import json

    train_in_folder(_config(2), tmp_path, lambda r: None, run_trial)
    log = tmp_path / "epochs.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")  # taken down before logging epoch 2
    train_in_folder(_config(4), tmp_path, lambda r: None, run_trial)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
