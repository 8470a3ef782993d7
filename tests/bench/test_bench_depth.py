"""The depth benchmark's core on tiny sizes: a pretrained bench encoder finetuned through
cryotune's trainer at a frozen and a full depth, the sequential Optuna strategy, the epoch
accounting, and the simulated comparison fitted to the real curves."""

from __future__ import annotations

import pytest

from bench import depth_curves, depth_probe, depth_task
from bench import time_to_quality_depth as ttqd
from bench.workload import EpochEvent, SweepRun
from cryotune.config import TrialConfig


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("depth")
    weights = work / "vit.pt"
    info = depth_task.pretrain(weights, steps=2, batch=2, log=lambda _: None)
    data = depth_task.write_dataset(work / "data" / "gsdd", train=4, val=2, size=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(depth_task.CHECKPOINT_ENV, str(weights))
        patch.setenv("OMP_NUM_THREADS", "1")
        yield work, weights, data, info


def _config(data, work, **fields) -> TrialConfig:
    base = {
        **ttqd.TRIAL,
        "dataset": depth_task.DATASET,
        "model": depth_task.MODEL,
        "data_root": str(data),
        "cache_dir": str(work / "cache"),
        "epochs": 5,
        "lr": 1e-3,
    }
    return TrialConfig(**{**base, **fields})


def test_the_data_is_in_gsdd_layout_with_both_classes(bench_setup):
    _, _, data, info = bench_setup
    assert info["steps"] == 2 and info["pretext_group_accuracy"] >= 0
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (data / split / "image").iterdir()) == sorted(
            p.name for p in (data / split / "mask").iterdir()
        )
    from cryotune.data.check import check_dataset

    report = check_dataset("gsdd", data)
    assert report.ok, report


def test_a_trial_finetunes_the_pretrained_encoder_to_its_depth(bench_setup):
    work, weights, data, _ = bench_setup
    infos = {}
    for depth in (0, 12):
        started: list[dict] = []
        result = depth_task.run_trial(
            _config(data, work, depth=depth), on_start=started.append, checkpoint_dir=None
        )
        assert [e.epoch for e in result.history] == [5]
        infos[depth] = started[0]
    assert infos[0]["weights"] == str(weights) and infos[0]["weights_sha256"]
    assert infos[0]["encoder_trainable_params"] == 0
    assert infos[12]["encoder_trainable_params"] == infos[12]["encoder_params"] > 0
    assert infos[0]["num_blocks"] == depth_task.BLOCKS


def test_the_rescaled_checkpoint_is_the_same_encoder(bench_setup):
    import torch

    _, weights, _, _ = bench_setup
    mapping = depth_task.band_mapping()
    (modality,) = mapping.inputs
    state = torch.load(weights, weights_only=True)
    raw, scaled = (depth_task.build_encoder(depth_task.bench_spec(), mapping) for _ in range(2))
    raw.load_state_dict(state)
    scaled.load_state_dict(depth_task.rescale(state, 10.0))
    images = torch.randn(2, depth_task.BANDS, depth_task.CROP, depth_task.CROP)
    with torch.no_grad():
        for a, b in zip(raw({modality: images}), scaled({modality: images}), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)  # taps are normed


def test_the_probe_tables_mean_best_miou_by_lr_and_depth(bench_setup):
    work, _, data, _ = bench_setup
    trial = {**ttqd.TRIAL, "val_every": 1}
    result = depth_probe.probe(
        trial, data, work / "cache", lrs=(1e-3,), depths=(0, 6), seeds=1, epochs=2, log=print
    )
    assert set(result["mean_best_val_miou"]["0.001"]) == {"0", "6"}
    assert result["best"]["lr"] == 1e-3 and result["best"]["depth"] in (0, 6)
    shape = depth_probe.shape(result, blocks=6)  # depth 6 of 6: the "full" column here
    assert set(shape) == {
        "partial_best",
        "frozen_gap",
        "full_gap",
        "full_at_top_lr_gap",
        "best_lr_inside_grid",
    }
    assert not shape["best_lr_inside_grid"]


def test_epochs_are_counted_per_trial_in_finish_order_and_cut_at_the_budget():
    events = [
        EpochEvent("a", 5, 50.0, 1.0),
        EpochEvent("b", 5, 60.0, 1.5),
        EpochEvent("a", 10, 70.0, 2.0),
        EpochEvent("b", 10, 65.0, 3.0),
    ]
    assert [n for _, n in ttqd.spent(events)] == [5, 10, 15, 20]
    counted = ttqd.within_budget(events, 15)
    assert ttqd.reach(counted, 69.0)["epochs"] == 15
    verdict = ttqd.judge_seed(
        {
            "cryotune": counted,
            "grid": ttqd.within_budget(events[1:2] + events[3:], 100),
            "random": [],
            "optuna_sequential": [],
        }
    )
    assert verdict["target"] == 69.0 and verdict["cryotune_over_grid_epochs"] == 0.0
    assert verdict["ratio_met"] and verdict["best_no_worse_than_grid"]


def test_the_simulation_is_fitted_to_real_curves_and_judges_every_seed(bench_setup):
    work, _, data, _ = bench_setup
    setting = ttqd.Setting(
        data_root=data.parent,
        work=work,
        slots=1,
        epochs=5,
        cryotune_trials=4,
        grid_lrs=(1e-4, 1e-3),
        grid_depths=(0, 12),
        lr_range=(1e-5, 1e-3),
        depth_range=(0, 12),
    )
    run = ttqd.run_optuna_sequential(setting, seed=0)
    assert isinstance(run, SweepRun) and len(run.params) == setting.grid_points
    curves = ttqd.trial_curves({"optuna_sequential": run}, seed=0)
    assert all([e for e, _ in c["curve"]] == [5] for c in curves)
    model = depth_curves.fit(curves, epochs=5, val_every=ttqd.TRIAL["val_every"])
    assert model.steps == (5,) and model.describe()["fitted_trials"] == 4
    search = {
        **ttqd.default_search(),
        **{k.split(".")[-1]: v for k, v in ttqd.QUICK_OVERRIDES.items()},
    }
    simulated = depth_curves.compare(
        model,
        seeds=2,
        search=search,
        grid=[(lr, d) for lr in setting.grid_lrs for d in setting.grid_depths],
        grid_points=setting.grid_points,
        cryotune_trials=6,
        epochs=5,
        slots=2,
        lr_range=setting.lr_range,
        depth_range=setting.depth_range,
        judge=ttqd.judge_seed,
        within_budget=lambda events: ttqd.within_budget(events, setting.budget),
    )
    assert simulated["seeds"] == 2 and len(simulated["per_seed"]) == 2
    assert 0.0 <= simulated["fraction_ratio_met"] <= 1.0
    assert set(simulated["strategies"]) == set(ttqd.STRATEGIES)
    for seed in simulated["per_seed"]:
        assert seed["epochs"]["grid"] is None or seed["epochs"]["grid"] <= setting.budget


def test_the_benchmarks_cryotune_sweeps_keep_tunes_result_files(monkeypatch):
    """They read each trial's epochs and search point from Tune's per-trial files, which the
    driver turns off unless the process says otherwise. (A sweep run here, in the test process,
    would leave Ray's token mode on for the cluster tests that follow.)"""
    import os

    from bench.workload import TUNE_LOGGERS_OFF, tune_result_files

    monkeypatch.setenv(TUNE_LOGGERS_OFF, "1")
    with tune_result_files():
        assert os.environ[TUNE_LOGGERS_OFF] == "0"
    assert os.environ[TUNE_LOGGERS_OFF] == "1"


def _curves(points: dict[tuple[float, int], list[list[float]]]) -> list[dict]:
    return [
        {"strategy": "grid", "seed": 0, "lr": lr, "depth": depth, "curve": list(zip((5, 10), c))}
        for (lr, depth), curves in points.items()
        for c in curves
    ]


def test_a_simulated_trial_has_the_luck_real_trials_near_it_had():
    """Steady where real repeats agreed, swinging where they did not: pooled noise would give
    the steady region the wild one's luck, and the verdict would be a lottery."""
    import numpy as np

    steady = [[60.0, 70.0], [60.5, 70.5], [59.5, 69.5]]
    wild = [[30.0, 40.0], [50.0, 65.0], [10.0, 20.0]]
    model = depth_curves.fit(_curves({(1e-4, 6): steady, (1e-6, 0): wild}), 10, 5)
    rng = np.random.default_rng(0)
    near_steady = np.array([model.draw(1e-4, 6, rng) for _ in range(200)])
    near_wild = np.array([model.draw(1e-6, 0, rng) for _ in range(200)])
    assert near_steady[:, -1].std() < 2.0 < 10.0 < near_wild[:, -1].std()
    assert model.mean(*model.best_point())[-1] == pytest.approx(70.0, abs=0.5)


def test_the_simulation_reports_an_oracle_ceiling_and_its_calibration():
    model = depth_curves.fit(
        _curves({(1e-4, 6): [[60.0, 70.0], [61.0, 69.0]], (1e-5, 0): [[40.0, 45.0]] * 2}), 10, 5
    )
    search = {**ttqd.default_search(), "grace_period": 5, "startup_trials": 2}
    simulated = depth_curves.compare(
        model,
        seeds=3,
        search=search,
        grid=[(1e-5, 0), (1e-4, 12)],
        grid_points=2,
        cryotune_trials=4,
        epochs=10,
        slots=2,
        lr_range=(1e-5, 1e-3),
        depth_range=(0, 12),
        judge=ttqd.judge_seed,
        within_budget=lambda events: ttqd.within_budget(events, 20),
    )
    assert simulated["oracle"]["point"]["depth"] == 6
    assert 0.0 <= simulated["oracle"]["fraction_ratio_met"] <= 1.0
    real = [{"strategies": {n: {"best_val_miou": 70.0} for n in ttqd.STRATEGIES}}]
    calibration = depth_curves.calibration(simulated, real)
    assert calibration["grid"]["real"] == {"mean": 70.0, "sd": 0.0}
    assert set(calibration["cryotune"]["simulated"]) == {"mean", "sd"}


def test_a_recorded_run_is_simulated_again_under_other_defaults(tmp_path, capsys):
    import json

    result = {
        "trial_curves": _curves(
            {(1e-4, 6): [[60.0, 70.0], [61.0, 69.0]], (1e-5, 0): [[40.0, 45.0]]}
        ),
        "epoch_cap": 10,
        "slots": 2,
        "epoch_budget": 20,
        "grid": {"lr": [1e-5], "depth": [0, 12]},
        "cryotune": {**ttqd.default_search(), "trials": 4, "grace_period": 5},
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    rows = depth_curves.main(
        ["--result", str(path), "--seeds", "2", "--variant", "sampler.startup_trials=2"]
    )
    assert [r["overrides"] for r in rows] == ["as recorded", {"sampler.startup_trials": 2}]
    assert all(0.0 <= r["ratio_met"] <= 1.0 and 0.0 <= r["oracle_ratio_met"] <= 1.0 for r in rows)
    assert "sampler.startup_trials" in capsys.readouterr().out

    real = {"ratio_met": True, "best_no_worse_than_grid_met": True}
    path.write_text(json.dumps({**result, "per_seed": [], "real": real, "complete": True}))
    (rewritten,) = depth_curves.main(["--result", str(path), "--seeds", "2", "--write"])
    on_disk = json.loads(path.read_text())
    assert on_disk["simulated"]["seeds"] == 2 and "oracle" in on_disk["simulated"]
    assert on_disk["met"] == rewritten["met"] == (on_disk["simulated"]["fraction_ratio_met"] >= 0.9)
