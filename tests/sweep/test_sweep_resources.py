"""Trial resources: a GPU share derived from model size and depth, and requests that cannot fit."""

from __future__ import annotations

import pytest

from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError
from cryotune.sweep.driver import check_fits, pair_resources
from cryotune.sweep.plan import plan_sweep
from cryotune.sweep.resources import TrialFootprint, estimate_gpu_memory_gb, gpu_share
from cryotune.sweep.spec import SweepSpec, with_overrides

VIT_L = dict(params=307_000_000, num_blocks=24, embed_dim=1024, input_size=224, batch_size=8)


def test_share_grows_with_depth_and_shrinks_with_gpu_memory():
    frozen = TrialFootprint(max_depth=0, **VIT_L)
    full = TrialFootprint(max_depth=24, **VIT_L)
    assert estimate_gpu_memory_gb(full) > estimate_gpu_memory_gb(frozen)
    assert gpu_share(full, 24.0) > gpu_share(full, 80.0) >= gpu_share(frozen, 80.0)
    for fp in (frozen, full):
        for memory in (16.0, 40.0, 80.0):
            share = gpu_share(fp, memory)
            assert 0 < share <= 1 and (share * 8).is_integer()
    assert gpu_share(full, 8.0) == 1.0  # never more than one GPU


def test_pair_resources_follow_the_spec_and_the_cluster(data_root):
    spec = with_overrides(SweepSpec(name="r"), **{"trial.weights": "random"})
    plan = plan_sweep(spec, "r", ["glid"], ["unet", "ssl4eo_mae"], [str(data_root)], "random")
    assert pair_resources(plan, cluster_gpus=0) == {
        "glid/unet": {"cpu": 1.0, "gpu": 0.0},
        "glid/ssl4eo_mae": {"cpu": 1.0, "gpu": 0.0},
    }
    derived = pair_resources(
        with_overrides_plan(plan, **{"resources.gpu_memory_gb": 80.0}), cluster_gpus=1
    )
    assert all(0 < r["gpu"] <= 0.25 for r in derived.values())  # small models share a card
    given = pair_resources(with_overrides_plan(plan, **{"resources.gpu": 0.5}), cluster_gpus=1)
    assert {r["gpu"] for r in given.values()} == {0.5}


def with_overrides_plan(plan, **changes):
    spec = with_overrides(plan.spec, **changes)
    return plan_sweep(spec, plan.name, list(plan.datasets), [p.model for p in plan.pairs],
                      [f"{k}={v}" for k, v in plan.data_roots.items()], plan.weights)  # fmt: skip


def test_requests_the_machine_cannot_meet_are_refused():
    check_fits({"glid/unet": {"cpu": 1.0, "gpu": 0.0}}, {"CPU": 2.0})
    with pytest.raises(UsageError, match="--gpus-per-trial: a glid/unet trial needs 0.5 GPU"):
        check_fits({"glid/unet": {"cpu": 1.0, "gpu": 0.5}}, {"CPU": 2.0})
    with pytest.raises(UsageError, match="resources.cpu: a glid/unet trial needs 4 CPU"):
        check_fits({"glid/unet": {"cpu": 4.0, "gpu": 0.0}}, {"CPU": 2.0, "GPU": 0.0})


def test_token_groups_and_resampled_grids_count_in_the_estimate():
    from cryotune.models.encoders import ENCODERS

    def tokens_gb(key: str) -> float:
        spec = ENCODERS[key]
        fp = TrialFootprint.of(spec, max_depth=0, batch_size=8, input_size=spec.input_size)
        return estimate_gpu_memory_gb(fp)

    thor = ENCODERS["thor"]
    one_set = TrialFootprint(
        params=thor.published_params,
        num_blocks=24,
        max_depth=0,
        embed_dim=1024,
        input_size=256,
        batch_size=8,
    )
    assert tokens_gb("thor") > estimate_gpu_memory_gb(one_set)  # four spectral groups
    caffe = get_dataset("caffe")
    ramen = TrialFootprint.of(
        ENCODERS["ramen"], max_depth=0, batch_size=8, input_size=1024, dataset=caffe
    )
    assert ramen.token_grid == 256 and ramen.token_sets == 2  # 1024 px at input_res 10, res 40
    cropped = TrialFootprint.of(
        ENCODERS["ramen"], max_depth=0, batch_size=8, input_size=40, dataset=caffe
    )
    assert cropped.token_grid == 10


def test_num_workers_per_trial_raise_the_cpu_request(data_root):
    from cryotune.sweep.driver import SweepRequest, resolve_spec

    spec = resolve_spec(SweepRequest(datasets=["glid"], num_workers=3))
    assert spec.trial["num_workers"] == 3
    plan = plan_sweep(spec, "r", ["glid"], ["unet"], [str(data_root)], "random")
    assert plan.pairs[0].base.num_workers == 3
    assert pair_resources(plan, cluster_gpus=0) == {"glid/unet": {"cpu": 3.0, "gpu": 0.0}}
    more = with_overrides_plan(plan, **{"resources.cpu": 4.0})
    assert pair_resources(more, cluster_gpus=0)["glid/unet"]["cpu"] == 4.0
