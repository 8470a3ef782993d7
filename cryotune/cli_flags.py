"""Flags defined once: ``cryotune train``'s are generated from TrialConfig's fields, and the
flags several commands share have one name, one meaning and one help text (docs/cli.md).

A field added to TrialConfig gets its ``train`` flag and its place in every record's repeat
command from here, with no other edit. Old spellings stay accepted for one release through
``add_deprecated``, which names the new flag on stderr.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError

from cryotune.config import TrialConfig
from cryotune.errors import UsageError

TRAIN_POSITIONALS = ("dataset", "model")
"""TrialConfig fields given as ``cryotune train DATASET MODEL``."""

REPEAT_ALWAYS = ("lr", "depth", "epochs", "seed")
"""Written into a repeat command even at their defaults: what a reader looks for first."""

DEPRECATED_UNTIL = "0.2.0"
"""The release that drops the old flag spellings."""

DATA_ROOT_HELP = (
    "DIR holding KEY/ dataset folders, or KEY=DIR for one dataset (repeatable); else "
    "$CRYOTUNE_DATA/KEY, else ~/.cache/cryotune/data/KEY"
)
TRACKING_URI_HELP = "the MLflow tracking store (sqlite:///PATH, http://HOST:PORT, postgresql://...)"
WORKSPACE_HELP = "the folder holding the sweeps (default ./cryotune-runs)"
WEIGHTS_HELP = "'random' or the checkpoint folder; else $CRYOTUNE_WEIGHTS"


def flag_name(field: str) -> str:
    """The flag of a field or setting: ``label_fraction`` -> ``--label-fraction``."""
    return "--" + field.replace("_", "-")


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: stores as the new one does and says on stderr what replaces it."""

    def __init__(self, option_strings, dest, replacement: str, append: bool = False, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement
        self.append = append

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"cryotune: warning: {option_string} is deprecated and will be removed in cryotune "
            f"{DEPRECATED_UNTIL}; use {self.replacement}",
            file=sys.stderr,
        )
        if self.append:
            values = [*(getattr(namespace, self.dest) or []), values]
        setattr(namespace, self.dest, values)


def add_deprecated(parser, old: str, new: str, *, append: bool = False, **kwargs) -> None:
    """Accept ``old`` as ``new`` (same type, same destination), hidden from ``--help``."""
    parser.add_argument(
        old,
        dest=new.lstrip("-").replace("-", "_"),
        action=DeprecatedFlag,
        replacement=new,
        append=append,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **kwargs,
    )


def add_data_root(parser) -> None:
    parser.add_argument("--data-root", action="append", metavar="DIR|KEY=DIR", help=DATA_ROOT_HELP)


def add_tracking_uri(parser, use: str) -> None:
    """``--tracking-uri``: always the store; ``use`` says what this command does with it."""
    parser.add_argument("--tracking-uri", metavar="URI", help=f"{TRACKING_URI_HELP}: {use}")


def add_workspace(parser) -> None:
    parser.add_argument("--workspace", metavar="DIR", help=WORKSPACE_HELP)


def add_weights(parser, help: str = WEIGHTS_HELP) -> None:
    parser.add_argument("--weights", metavar="random|DIR", help=help)


SHARED = {"data_root": add_data_root, "weights": add_weights}
"""TrialConfig fields whose ``train`` flag is the one other commands share."""


def _scalar(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _comma_list(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        return tuple(kind(part) for part in text.split(","))

    parse.__name__ = f"comma-separated {kind.__name__}"  # argparse names it in its errors
    return parse


@dataclass(frozen=True)
class TrainFlag:
    """One TrialConfig field as a ``cryotune train`` flag."""

    field: str
    kind: type
    choices: tuple | None
    help: str
    items: type | None = None  # element type of a tuple field, given comma-separated

    @property
    def flag(self) -> str:
        return flag_name(self.field)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.field in SHARED:  # one meaning in every command; train_config resolves it
            SHARED[self.field](parser)
            return
        options: dict[str, Any] = {"help": self.help.replace("%", "%%")}
        if self.kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif self.items is not None:
            options["type"] = _comma_list(self.items)
            options["metavar"] = f"{self.items.__name__.upper()},..."
        else:
            options["type"] = self.kind
            if self.choices:
                options["choices"] = self.choices
        parser.add_argument(self.flag, **options)

    def words(self, value: Any, config: dict) -> list[str]:
        """The command-line words setting ``value`` (a TrialConfig field as JSON)."""
        if self.kind is bool:
            return [self.flag if value else f"--no-{self.flag[2:]}"]
        if self.field == "data_root":
            return [self.flag, f"{config['dataset']}={value}"]
        if self.items is not None:
            return [self.flag, ",".join(_scalar(v) for v in value)]
        return [self.flag, _scalar(value)]


def _flag_of(name: str, info) -> TrainFlag:
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    help = info.description or ""
    if info.default is not None:
        default = info.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help = f"{help} (default {shown})" if help else f"default {shown}"
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return TrainFlag(name, type(choices[0]), choices, help)
    if get_origin(annotation) is tuple:
        items = {a for a in get_args(annotation) if a is not Ellipsis}
        if len(items) == 1 and next(iter(items)) in (int, float, str):
            return TrainFlag(name, tuple, None, help, items=items.pop())
    if annotation in (bool, int, float, str):
        return TrainFlag(name, annotation, None, help)
    raise TypeError(
        f"TrialConfig.{name}: no `cryotune train` flag for {info.annotation}; give it a type "
        "cryotune.cli_flags knows (bool, int, float, str, a Literal, a tuple of one of them)"
    )


def train_flags() -> dict[str, TrainFlag]:
    """Every TrialConfig field but the positionals, as a ``cryotune train`` flag, in order."""
    return {
        name: _flag_of(name, info)
        for name, info in TrialConfig.model_fields.items()
        if name not in TRAIN_POSITIONALS
    }


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    for name in TRAIN_POSITIONALS:
        parser.add_argument(name, help=TrialConfig.model_fields[name].description)
    for flag in train_flags().values():
        flag.add_to(parser)


def train_config(args: argparse.Namespace) -> TrialConfig:
    """The TrialConfig ``cryotune train``'s flags describe: defaults where a flag is absent."""
    values = {name: getattr(args, name) for name in TrialConfig.model_fields}
    values = {name: value for name, value in values.items() if value is not None}
    if "data_root" in values:
        from cryotune.data.roots import DataRoots

        given = DataRoots.parse(values["data_root"], [args.dataset], "the dataset trained")
        values["data_root"] = given.folder(args.dataset)
    try:
        return TrialConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = f"{flag_name(str(err['loc'][0]))}: " if err["loc"] else ""
        raise UsageError(f"{where}{err['msg']}") from None


def train_arguments(config: dict) -> tuple[list[str], list[str]]:
    """``cryotune train`` arguments that set ``config`` (a TrialConfig as JSON), and the keys
    differing from their defaults that no flag sets (of a config written by another version)."""
    defaults = TrialConfig(dataset=config["dataset"], model=config["model"]).model_dump(mode="json")
    flags = train_flags()
    args = [config["dataset"], config["model"]]
    missing = []
    for key, value in config.items():
        if key in TRAIN_POSITIONALS or value is None:
            continue
        flag = flags.get(key)
        if flag is None:
            if value != defaults.get(key):
                missing.append(key)
        elif key in REPEAT_ALWAYS or value != defaults.get(key):
            args += flag.words(value, config)
    return args, missing
