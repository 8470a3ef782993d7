"""PairSearch: free slots go to the pair furthest behind; budgets end a pair; records follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray.tune.search import Searcher

from cryotune.documents.trial_result import TrialResult
from cryotune.sweep.keys import FINAL, TRIAL_RESULT
from cryotune.sweep.plan import plan_sweep
from cryotune.sweep.records import PairRecorder
from cryotune.sweep.searcher import PairSearch
from cryotune.sweep.spec import SweepSpec, load_spec, with_overrides
from cryotune.sweep.workspace import SweepWorkspace


@pytest.fixture
def make_search(data_root, tmp_path):
    def make(**changes) -> tuple[PairSearch, SweepWorkspace]:
        spec = with_overrides(SweepSpec(name="s"), **{"budget.trials": 2, **changes})
        plan = plan_sweep(spec, "s", ["glid", "caffe"], ["unet"], [str(data_root)], "random")
        workspace = SweepWorkspace.at(tmp_path / "runs", "s")
        workspace.create(plan.document())
        recorder = PairRecorder(workspace, workspace.optuna_url, 0, "best", None, "test")
        search = PairSearch(plan, workspace.optuna_url, str(workspace.trials_dir), recorder)
        return search, workspace

    return make


def _final(config: dict, best: float) -> dict:
    """A trial's last Tune result, carrying its TrialResult as the trainable reports it."""
    result = TrialResult(
        config=config,
        history=[],
        best_epoch=1,
        best_val_miou=best,
        best_val_metrics={"iou": [best, best], "miou": best},
        test_metrics={"miou": best},
        info={"weights": "random", "weights_sha256": None, "data_fingerprints": {"train": "x"}},
        seconds=1.0,
    )
    return {
        "epoch": config["epochs"],
        "val_miou": best,
        "best_val_miou": best,
        FINAL: True,
        TRIAL_RESULT: result.to_json(),
    }


def test_slots_alternate_between_pairs_and_the_searcher_finishes(make_search):
    search, workspace = make_search()
    configs = [search.suggest(f"t{i}") for i in range(4)]
    assert [c["pair"] for c in configs] == ["glid/unet", "caffe/unet", "glid/unet", "caffe/unet"]
    assert [c["study_trial"] for c in configs] == [0, 0, 1, 1]
    assert configs[0]["trial"]["lr"] == configs[0]["params"]["lr"]
    assert configs[0]["trial"]["depth"] == 5  # the U-Net trains every block
    assert search.suggest("t4") == Searcher.FINISHED
    search.on_trial_complete("t0", result=_final(configs[0]["trial"], 60.0))
    search.on_trial_complete("t2", result=_final(configs[2]["trial"], 70.0))
    record = json.loads(workspace.record_path("glid", "unet").read_text())
    assert record["best"]["val_miou"] == 70.0 and record["ids"]["tune_trial_id"] == "t2"
    assert not workspace.record_path("caffe", "unet").exists()  # its trials still run


def test_a_pair_stops_after_its_failure_limit(make_search, tmp_path):
    search, workspace = make_search(**{"budget.trials": 5, "budget.max_failed_trials": 1})
    first = search.suggest("t0")
    assert first["pair"] == "glid/unet"
    (workspace.trials_dir / "t0").mkdir(parents=True)
    (workspace.trials_dir / "t0" / "error.txt").write_text("Traceback ...\nDataError: broken\n")
    search.on_trial_complete("t0", error=True)
    pairs = {search.suggest(f"u{i}")["pair"] for i in range(3)}
    assert pairs == {"caffe/unet"}
    record = json.loads(workspace.record_path("glid", "unet").read_text())
    assert record["status"] == "no_complete_trial" and "DataError: broken" in record["errors"][0]


def test_a_spent_time_budget_starts_no_more_trials(make_search):
    search, workspace = make_search(**{"budget.trials": 5, "budget.time_s": 1e-6})
    a, b = search.suggest("t0"), search.suggest("t1")
    assert {a["pair"], b["pair"]} == {"glid/unet", "caffe/unet"}
    assert search.suggest("t2") == Searcher.FINISHED
    search.on_trial_complete("t0", result={"epoch": 1, "val_miou": 3.0})  # stopped early
    record = json.loads(workspace.record_path(*a["pair"].split("/")).read_text())
    assert record["trials"]["pruned"] == 1 and record["trials"]["budget"] == 5


def test_the_lr_grid_spec_runs_every_grid_point_once(data_root, tmp_path):
    spec = load_spec(Path(__file__).resolve().parents[2] / "sweeps" / "lr-grid.yaml")
    plan = plan_sweep(spec, "g", ["glid"], ["unet", "ssl4eo_mae"], [str(data_root)], "random")
    assert [p.trials for p in plan.pairs] == [5, 10]  # the U-Net's depth is fixed
    workspace = SweepWorkspace.at(tmp_path / "runs", "g")
    workspace.create(plan.document())
    recorder = PairRecorder(workspace, workspace.optuna_url, 0, "best", None, "test")
    search = PairSearch(plan, workspace.optuna_url, str(workspace.trials_dir), recorder)
    points: dict[str, set] = {"glid/unet": set(), "glid/ssl4eo_mae": set()}
    configs = [search.suggest(f"t{i}") for i in range(15)]
    for config in configs:
        points[config["pair"]].add((config["trial"]["lr"], config["trial"]["depth"]))
    assert search.suggest("t15") == Searcher.FINISHED
    for i, config in enumerate(configs):  # the last grid point ends its pair without an error
        search.on_trial_complete(f"t{i}", result=_final(config["trial"], float(i)))
    for pair in points:
        record = json.loads(workspace.record_path(*pair.split("/")).read_text())
        assert (
            record["status"] == "complete"
            and record["trials"]["complete"] == record["trials"]["budget"]
        )
    lrs = {1e-5, 3e-5, 1e-4, 3e-4, 1e-3}
    assert points["glid/unet"] == {(lr, 5) for lr in lrs}
    assert points["glid/ssl4eo_mae"] == {(lr, d) for lr in lrs for d in (0, 12)}


def test_every_pair_of_the_registry_gets_its_own_sampler_seed():
    from cryotune.data.datasets import DATASETS
    from cryotune.models.encoders import ENCODERS
    from cryotune.sweep.searcher import pair_seed

    keys = [f"{d}/{m}" for d in DATASETS for m in ENCODERS]
    assert len(keys) == 126
    for seed in (0, 1, 234):
        seeds = [pair_seed(seed, key) for key in keys]
        assert len(set(seeds)) == len(keys) and all(0 <= s < 2**32 for s in seeds)
    assert pair_seed(0, "glid/vit") != pair_seed(0, "gld/unet")  # equal byte sums
    assert pair_seed(0, "glid/vit") != pair_seed(1, "glid/vit")
