"""Planning a sweep: which pairs, which data, which weights, checked before any cluster starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryotune.errors import DataError, UnknownNameError, UsageError, WeightsError
from cryotune.sweep.plan import identity_differences, plan_sweep, select_models
from cryotune.sweep.spec import SweepSpec, load_spec, with_overrides

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def test_a_sicd_sweep_plans_every_paper_model_on_the_view_cryobench_ran_it_on():
    from cryotune.models.encoders import ENCODERS

    pairs, skipped = select_models(["sicd"], None)
    models = {m for _, m in pairs}
    assert models == set(ENCODERS) and skipped == []
    assert select_models(["sicd"], ["all"]) == (pairs, [])


def test_explicit_models_skip_pairs_without_the_requested_view():
    pairs, skipped = select_models(["gld", "sicd"], ["ssl4eo_mae", "unet"], view="sar")
    assert pairs == [
        ("gld", "ssl4eo_mae"),
        ("gld", "unet"),
        ("sicd", "ssl4eo_mae"),
        ("sicd", "unet"),
    ]
    assert skipped == []
    with pytest.raises(UsageError, match="--models remoteclip: fits none of sicd"):
        select_models(["sicd"], ["remoteclip"], view="sar")
    with pytest.raises(UsageError, match="trial.view sar: dataset 'glid' has no such view"):
        select_models(["glid"], ["unet"], view="sar")
    with pytest.raises(UnknownNameError, match="unknown model 'nope'"):
        select_models(["glid"], ["nope"])


def test_pairs_resolve_data_roots_depth_and_budget(data_root):
    spec = SweepSpec(name="p")
    plan = plan_sweep(
        spec, "p", ["glid", "caffe"], ["unet", "ssl4eo_mae"], [str(data_root)], "random"
    )
    assert [p.key for p in plan.pairs] == [
        "glid/unet", "glid/ssl4eo_mae", "caffe/unet", "caffe/ssl4eo_mae",
    ]  # fmt: skip
    unet, mae = plan.pairs[0], plan.pairs[1]
    assert unet.study_name == "p/glid/unet" and unet.trials == 20
    assert unet.space.fixed == {"depth": unet.space.num_blocks}
    config = mae.trial_config({"lr": 1e-4, "depth": 6})
    assert (config.lr, config.depth, config.epochs, config.weights) == (1e-4, 6, 80, "random")
    assert config.data_root == str((data_root / "glid").resolve())
    per_key = plan_sweep(spec, "p", ["glid"], ["unet"], [f"glid={data_root / 'glid'}"], "random")
    assert per_key.data_roots == {"glid": str((data_root / "glid").resolve())}


def test_a_crop_the_paper_neck_would_pool_to_nothing_is_refused_before_the_sweep(data_root):
    spec = load_spec(SWEEPS / "smoke.yaml")  # 32 px crops: one 32 px patch of RemoteCLIP
    with pytest.raises(UsageError, match=r"--crop-size 32 \(trial.crop_size\): remoteclip"):
        plan_sweep(spec, "p", ["glid"], ["unet", "remoteclip"], [str(data_root)], "random")
    ceil = with_overrides(spec, **{"trial": {**spec.trial, "neck_pool": "ceil"}})
    assert len(plan_sweep(ceil, "p", ["glid"], ["remoteclip"], [str(data_root)], "random").pairs)


def test_missing_data_and_weights_fail_before_the_sweep(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("CRYOTUNE_WEIGHTS", raising=False)
    with pytest.raises(DataError, match="no data for dataset 'caffe'"):
        plan_sweep(
            SweepSpec(name="p"), "p", ["caffe"], ["unet"], [f"caffe={tmp_path / 'x'}"], "random"
        )
    with pytest.raises(
        WeightsError,
        match=r"ssl4eo_mae:optical \(B13_vits16_mae_0099_ckpt.pth\); fetch them with "
        r"`cryotune weights fetch ssl4eo_mae:optical`",
    ):
        plan_sweep(SweepSpec(name="p"), "p", ["glid"], ["unet", "ssl4eo_mae"], [str(data_root)])
    with pytest.raises(UsageError, match="--data-root sicd=/x: 'sicd' is not a swept dataset"):
        plan_sweep(SweepSpec(name="p"), "p", ["glid"], ["unet"], ["sicd=/x"], "random")


def test_identity_differences_name_the_changed_keys():
    old = {"datasets": ["glid"], "spec": {"budget": {"trials": 4}, "name": "a"}}
    new = {"datasets": ["glid"], "spec": {"budget": {"trials": 9}, "name": "a"}}
    assert identity_differences(old, new) == ["spec.budget.trials"]
