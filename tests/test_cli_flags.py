"""One vocabulary: `train` flags come from TrialConfig, repeat commands parse back into the same
config, `--data-root` means one thing everywhere, old spellings still work and say what replaces
them, and every SweepRequest field is a `sweep` flag. In-process parsers; one subprocess."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import types
from dataclasses import fields
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import pytest

from cryotune.cli import build_parser
from cryotune.cli_flags import TRAIN_POSITIONALS, flag_name, train_config
from cryotune.config import TrialConfig
from cryotune.data.datasets import get_dataset
from cryotune.data.roots import DataRoots
from cryotune.errors import UsageError
from cryotune.sweep.driver import SweepRequest
from cryotune.sweep.records import repeat_command


def _other_value(name: str, info):
    """A valid value of a TrialConfig field that differs from its default, from its type alone
    (so a field added later is covered without editing this test)."""
    default, annotation = info.default, info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if name == "data_root":
        return "/data/glid"
    if get_origin(annotation) is Literal:
        return next(choice for choice in get_args(annotation) if choice != default)
    if annotation is bool:
        return not default
    if get_origin(annotation) is tuple:
        return tuple(v / 2 for v in default)
    if annotation is int:
        return 16 if default is None else default + 1
    if annotation is float:
        return 0.5 if default is None else default / 2
    if annotation is str:
        return "other"
    raise AssertionError(f"no test value for TrialConfig.{name}: {info.annotation}")


def _train(*argv: str) -> TrialConfig:
    return train_config(build_parser().parse_args(["train", *argv]))


def test_every_trial_config_field_is_a_train_flag_that_round_trips():
    values = {
        name: _other_value(name, info)
        for name, info in TrialConfig.model_fields.items()
        if name not in TRAIN_POSITIONALS
    }
    config = TrialConfig(dataset="glid", model="unet", **values)
    command, lacks = repeat_command(config.model_dump(mode="json"))
    argv = shlex.split(command)
    assert argv[:4] == ["cryotune", "train", "glid", "unet"] and lacks == []
    for name in values:
        flag = flag_name(name)
        assert flag in argv or f"--no-{flag[2:]}" in argv, name
    assert train_config(build_parser().parse_args(argv[1:])) == config


def test_a_default_config_repeats_with_its_headline_values_and_parses_back():
    config = TrialConfig(dataset="caffe", model="dofa", depth=3)
    command, lacks = repeat_command(config.model_dump(mode="json"))
    assert command == "cryotune train caffe dofa --lr 0.0001 --depth 3 --epochs 80 --seed 234"
    assert lacks == []
    assert train_config(build_parser().parse_args(shlex.split(command)[1:])) == config


def test_a_key_no_flag_sets_is_listed_not_dropped():
    config = {**TrialConfig(dataset="glid", model="unet").model_dump(mode="json"), "old": 1}
    assert repeat_command(config)[1] == ["old"]


def test_train_flags_are_checked_by_trial_config_and_name_the_flag():
    with pytest.raises(UsageError, match=r"^--weight-decay: .*greater than or equal to 0"):
        _train("glid", "unet", "--weight-decay=-0.1")
    with pytest.raises(UsageError, match=r"^--betas: .*at most 2 items"):
        _train("glid", "unet", "--betas", "0.9,0.99,0.999")
    with pytest.raises(UsageError, match=r"--betas: invalid comma-separated float value"):
        _train("glid", "unet", "--betas", "a,b")
    with pytest.raises(UsageError, match="--device: invalid choice"):
        _train("glid", "unet", "--device", "tpu")


def _dataset_folder(folder: Path, key: str) -> Path:
    get_dataset(key).layout.image_folder(folder, "train").mkdir(parents=True)
    return folder


def test_data_root_means_a_folder_of_datasets_or_key_equals_dir(tmp_path):
    data = tmp_path / "data"
    _dataset_folder(data / "glid", "glid")
    given = DataRoots.parse([str(data)], ["glid", "caffe"])
    assert given.folder("glid") == str(data / "glid")
    assert given.folder("caffe") == str(data)  # no data/caffe: DIR is taken as caffe's own
    assert DataRoots.parse(["caffe=/c", str(data)], ["glid", "caffe"]).folder("caffe") == "/c"
    assert DataRoots.parse(None, ["glid"]).folder("glid") is None
    assert DataRoots.parse(["/data/a=b"], ["glid"]).parent == "/data/a=b"  # a path, not KEY=DIR
    with pytest.raises(UsageError, match="--data-root sicd=/x: 'sicd' is not a dataset here"):
        DataRoots.parse(["sicd=/x"], ["glid"])
    with pytest.raises(UsageError, match="DIR may be given once"):
        DataRoots.parse(["/a", "/b"], ["glid"])


def test_train_takes_data_root_as_every_command_does(tmp_path):
    data = tmp_path / "data"
    _dataset_folder(data / "glid", "glid")
    assert _train("glid", "unet", "--data-root", str(data)).data_root == str(data / "glid")
    assert _train("glid", "unet", "--data-root", str(data / "glid")).data_root == str(data / "glid")
    assert _train("glid", "unet", "--data-root", "glid=/g").data_root == "/g"
    with pytest.raises(UsageError, match="'caffe' is not the dataset trained"):
        _train("glid", "unet", "--data-root", "caffe=/c")


def test_datasets_and_data_check_read_a_folder_of_datasets(tmp_path, capsys):
    from cryotune.cli import main

    data = tmp_path / "data"
    _dataset_folder(data / "glid", "glid")
    assert main(["datasets", "--json", "--data-root", str(data)]) == 0
    assert '"root": "' + str(data / "glid") + '"' in capsys.readouterr().out
    assert main(["data", "check", "glid", "--data-root", str(data), "--json"]) == 1  # no tiles
    assert str(data / "glid") in capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "old", "new", "value", "dest", "parsed"),
    [
        (["data", "check", "glid"], "--root", "--data-root", "/d", "data_root", ["/d"]),
        (["models"], "--weights-dir", "--weights", "/w", "weights", "/w"),
        (["sweep", "glid"], "--data-workers", "--num-workers", "3", "num_workers", 3),
    ],
)
def test_an_old_spelling_parses_as_the_new_flag_and_names_it(
    command, old, new, value, dest, parsed, capsys
):
    parser = build_parser()
    args = parser.parse_args([*command, old, value])
    assert getattr(args, dest) == parsed
    warning = capsys.readouterr().err
    assert f"{old} is deprecated" in warning and f"use {new}" in warning
    assert vars(parser.parse_args([*command, new, value])) == vars(args)
    assert capsys.readouterr().err == ""


def test_old_spellings_are_hidden_from_help(capsys):
    for command, old in ((["data", "check"], "--root"), (["models"], "--weights-dir")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        assert old not in capsys.readouterr().out


def test_every_sweep_request_field_is_a_sweep_flag_and_nothing_else_is():
    args = build_parser().parse_args(["sweep", "glid", "caffe", "--num-workers", "2"])
    settings = set(vars(args)) - {"command", "func", "json"}  # --json: how it prints, no setting
    assert settings == {f.name for f in fields(SweepRequest)}
    request = SweepRequest(**{name: getattr(args, name) for name in settings})
    assert request.datasets == ["glid", "caffe"] and request.num_workers == 2


def test_the_old_data_check_flag_still_runs_from_the_shell(tmp_path):
    folder = _dataset_folder(tmp_path / "glid", "glid")
    env = {k: v for k, v in os.environ.items() if k != "CRYOTUNE_DATA"}
    done = subprocess.run(
        [sys.executable, "-m", "cryotune.cli", "data", "check", "glid", "--root", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1 and str(folder) in done.stdout  # checked: the folder has no tiles
    assert "--root is deprecated" in done.stderr and "use --data-root" in done.stderr


def test_the_sweep_spec_flag_is_spec_and_its_earlier_name_still_parses(capsys):
    parser = build_parser()
    new = parser.parse_args(["sweep", "glid", "--spec", "sweeps/smoke.yaml"])
    old = parser.parse_args(["sweep", "glid", "--config", "sweeps/smoke.yaml"])
    assert vars(new) == vars(old) and new.config == "sweeps/smoke.yaml"
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "--help"])
    assert "--spec FILE" in capsys.readouterr().out
