"""Sweep specs: the shipped files load, and bad specs fail naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cryotune.cli import main
from cryotune.config import TrialConfig
from cryotune.errors import UsageError
from cryotune.sweep.spec import (
    SchedulerSpec,
    SweepSpec,
    load_spec,
    parse_spec,
    validated_epochs,
    with_overrides,
)

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def _spec_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_yaml_is_the_built_in_default():
    loaded = load_spec(SWEEPS / "default.yaml")
    built_in = SweepSpec(name="default")
    assert loaded.model_dump(exclude={"description", "trial"}) == built_in.model_dump(
        exclude={"description", "trial"}
    )
    assert TrialConfig(dataset="glid", model="dofa", **loaded.trial) == TrialConfig(
        dataset="glid", model="dofa", **built_in.trial
    )
    assert loaded.scheduler.max_epochs == 80
    assert loaded.space.lr.low < loaded.space.lr.high


def test_smoke_and_lr_grid_specs_load():
    smoke = load_spec(SWEEPS / "smoke.yaml")
    assert smoke.name == "smoke" and smoke.trial["weights"] == "random"
    assert smoke.scheduler.max_epochs <= 3 and smoke.trial["crop_size"] <= 48
    grid = load_spec(SWEEPS / "lr-grid.yaml")
    assert grid.sampler.kind == "grid" and grid.scheduler.kind == "none"
    assert grid.space.depth.fractions == (0.0, 1.0) and grid.budget.trials is None


def test_the_paper_specs_validate_every_5_epochs_and_asha_judges_validated_epochs():
    for name, precision in (("default", "bf16"), ("lr-grid", "fp32")):
        spec = load_spec(SWEEPS / f"{name}.yaml")
        config = TrialConfig(dataset="glid", model="dofa", **spec.trial)
        assert config.val_every == 5 and config.precision == precision
        validated = validated_epochs(config.val_every, spec.epochs)
        assert validated == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80]
        assert set(spec.scheduler.rungs()) <= set(validated)
    assert load_spec(SWEEPS / "default.yaml").scheduler.rungs() == [5, 15, 45]
    assert validated_epochs(5, 12) == [5, 10, 12]


@pytest.mark.parametrize(
    ("scheduler", "trial", "message"),
    [
        ({"grace_period": 4}, {}, "ASHA compares trials at epochs 4, 12, 36"),
        ({"reduction_factor": 2.5}, {}, "epoch 12.5 is not validated"),
        ({"grace_period": 2, "reduction_factor": 2}, {"val_every": 4}, "epoch 2 is not validated"),
    ],
)
def test_a_spec_whose_rungs_miss_validated_epochs_is_refused(tmp_path, scheduler, trial, message):
    path = _spec_file(tmp_path, {"scheduler": scheduler, "trial": trial})
    with pytest.raises(UsageError) as err:
        load_spec(path)
    assert message in str(err.value) and "trials validate at epochs" in str(err.value)
    every = trial.get("val_every", 5)
    assert f"trial.val_every {every} and the last" in str(err.value)


@pytest.mark.parametrize(
    ("grace", "factor", "epochs"), [(5, 3, 80), (5, 2, 80), (1, 2, 3), (3, 3, 3), (4, 4, 64)]
)
def test_rungs_are_where_rays_asha_places_its_milestones(grace, factor, epochs):
    """Contract with Ray Tune: ``AsyncHyperBandScheduler.debug_string`` lists the milestones."""
    import re

    from ray.tune.schedulers import AsyncHyperBandScheduler

    asha = AsyncHyperBandScheduler(
        time_attr="epoch",
        metric="val_miou",
        mode="max",
        max_t=epochs,
        grace_period=grace,
        reduction_factor=factor,
    )
    milestones = sorted(float(m) for m in re.findall(r"Iter ([0-9.]+)", asha.debug_string()))
    spec = SchedulerSpec(grace_period=grace, reduction_factor=factor, max_epochs=epochs)
    assert spec.rungs() == milestones


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sampler": {"seeed": 1}}, "sampler.seeed: unknown key; valid keys: constant_liar"),
        ({"budgett": {}}, "budgett: unknown key; valid keys: budget, description"),
        ({"space": {"lr": {"low": 1e-2, "high": 1e-4}}}, "space.lr: inverted range: low 0.01"),
        ({"space": {"depth": {"fraction_range": [0.8, 0.2]}}}, "space.depth: inverted range"),
        ({"space": {"depth": {"blocks": [1], "fractions": [0.5]}}}, "space.depth: give exactly"),
        ({"scheduler": {"grace_period": 9, "max_epochs": 3}}, "grace_period 9 exceeds max_epochs"),
        (
            {"scheduler": {"bootstrap_trials": 20}, "budget": {"trials": 20}},
            "bootstrap_trials 20 must be below budget.trials 20",
        ),
        ({"scheduler": {"reduction_factor": 1}}, "scheduler.reduction_factor: Input should be"),
        ({"trial": {"epochs": 3}}, "trial.epochs: unknown key (set by the sweep)"),
        ({"trial": {"batch_size": 0}}, "trial.batch_size: Input should be greater than"),
        (
            {"trial": {"weight_decay": 0.1}, "space": {"weight_decay": {"grid": [0.0]}}},
            "trial.weight_decay: searched in space.weight_decay",
        ),
        ({"sampler": {"kind": "grid"}}, "sampler.kind grid needs space.lr.grid"),
        (
            {"budget": {"trials": None}},
            "budget.trials: null (the grid size) needs sampler.kind grid",
        ),
    ],
)
def test_invalid_spec_names_the_key(tmp_path, data, expected):
    path = _spec_file(tmp_path, data)
    with pytest.raises(UsageError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_invalid_spec_through_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    path = _spec_file(tmp_path, {"space": {"lr": {"low": 1e-2, "high": 1e-4}}})
    code = main(["sweep", "glid", "--config", str(path), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"cryotune: error: {path}: space.lr: inverted range: low 0.01 is not below high 0.0001"
    ]
    assert not (tmp_path / "ws").exists()


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="a mapping of keys"):
        parse_spec([1, 2], "list.yaml")


def test_overrides_apply_and_shorten_the_grace_period():
    spec = with_overrides(
        SweepSpec(name="default"),
        **{"scheduler.max_epochs": 3, "budget.trials": 2, "trial.seed": 7, "sampler.seed": None},
    )
    assert spec.scheduler.max_epochs == 3 and spec.scheduler.grace_period == 3
    assert spec.budget.trials == 2 and spec.trial == {"seed": 7}
    assert spec.sampler.seed == 0
