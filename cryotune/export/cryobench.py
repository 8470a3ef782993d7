"""``cryotune best DATASET MODEL --as cryobench``: the Cryo-Bench (PANGAEA) command line that
trains a best config in Cryo-Bench's own repository, github.com/Sk-2103/Cryo-Bench.

The translation is declarative: which Hydra config each cryotune dataset (per view) and model
(per view) is in Cryo-Bench, and which override key each TrialConfig setting is. Configs are
those of the paper's code (``pangaea-bench/`` at commit 41b6115, the README's run loops), and of
the later code at the repository root (commit 3e94454) for what only it has: GLB, Shelf-Bench,
THOR, Prithvi-EO-2.0, and TerraMind's SAR-only encoder. A setting Cryo-Bench cannot express
(partial finetuning depth, another lr decay factor, the neck's rounding, a training crop other
than the encoder's input) is listed under ``no_counterpart`` rather than dropped.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from cryotune.documents.record import PairRecord
from cryotune.errors import CryotuneError
from cryotune.export.setup import TrainedSetup, trained_setup

Tree = Literal["paper", "later"]
REPOSITORY = "github.com/Sk-2103/Cryo-Bench"
TREES: dict[str, tuple[str, str, str]] = {
    "paper": ("pangaea-bench", "41b6115", "the paper's code"),
    "later": (".", "3e94454", "the later code at the repository root, which extends the paper's"),
}
"""tree -> (folder to run in, commit its configs were read at, what it is)."""

LAUNCH = ("torchrun", "--nnodes=1", "--nproc_per_node=1", "pangaea/run.py", "--config-name=train")
"""How Cryo-Bench's README starts every run (pangaea-bench/README.md)."""
FIXED = ("preprocessing=seg_default", "criterion=cross_entropy", "task=segmentation")
"""The config groups every Cryo-Bench segmentation run of the README sets the same way."""


@dataclass(frozen=True)
class Counterpart:
    """A cryotune dataset or model key, read through ``view`` (None: any view), is the Hydra
    config ``paper`` of the paper's code and ``later`` of the later code (None: not there).

    A paper config is taken to be in the later code under the same name unless another name or
    None is given: the later README reports every paper model on GLB and Shelf-Bench, and the
    later code names only what it changed (SICD's whole-scene configs, TerraMind's split).
    """

    key: str
    view: str | None
    paper: str | None
    later: str | None


def _same(key: str, config: str, view: str | None = None) -> Counterpart:
    return Counterpart(key, view, config, config)


DATASET_CONFIGS = (
    _same("glid", "glid"),
    Counterpart("gld", None, "glnet_dataset", None),  # the later code replaced GLD with GLB
    _same("gsdd", "gssd"),
    Counterpart("sicd", "optical", "ai4arctic_rgb", "sicd_rgb"),
    Counterpart("sicd", "sar", "ai4arctic_terramind", "sicd_sar"),
    _same("caffe", "zone_mapping_optical", "optical"),
    _same("caffe", "zone_mapping_sar", "sar"),
    Counterpart("glb", None, None, "glb_random"),
    Counterpart("shelf", None, None, "shelf_bench"),
)
"""configs/dataset/<config>.yaml; SICD's and CaFFe's views are separate configs there."""

ENCODER_CONFIGS = (
    _same("croma", "croma_optical", "optical"),
    _same("croma", "croma_sar", "sar"),
    Counterpart("croma", "optical+sar", "croma_joint", None),
    _same("dofa", "dofa"),
    _same("gfm_swin", "gfmswin"),
    _same("prithvi", "prithvi"),
    _same("remoteclip", "remoteclip"),
    _same("satlas", "satlasnet_si"),
    _same("scalemae", "scalemae"),
    _same("spectralgpt", "spectralgpt"),
    _same("ssl4eo_moco", "ssl4eo_moco"),
    _same("ssl4eo_dino", "ssl4eo_dino"),
    _same("ssl4eo_mae", "ssl4eo_mae_optical", "optical"),
    _same("ssl4eo_mae", "ssl4eo_mae_sar", "sar"),
    _same("ssl4eo_data2vec", "ssl4eo_data2vec"),
    # The later code made terramind_large optical+SAR and split off one config per modality.
    Counterpart("terramind", "optical", "terramind_large", "terramind_large_optical"),
    Counterpart("terramind", "optical+sar", "terramind_large_mm", "terramind_large"),
    # The paper-era terramind_large reads S2L2A only; this later config "replicates the encoder
    # config used for the February CaFFe (zone_mapping_sar) runs", as cryotune does.
    Counterpart("terramind", "sar", None, "terramind_large_sar"),
    _same("ramen", "ramen_monotemporal"),
    _same("unet", "unet_encoder"),
    _same("vit", "vit_scratch"),
    Counterpart("thor", None, None, "thor_large"),
    Counterpart("prithvi_eo2", None, None, "prithvi_eo_v2_300"),
)
"""configs/encoder/<config>.yaml; the baselines are their from-scratch configs."""

DECODERS = {"unet": "seg_unet"}
"""configs/decoder/; every other model uses ``seg_upernet``."""
DEFAULT_DECODER = "seg_upernet"

SETTINGS = (
    ("lr", "optimizer.lr"),
    ("weight_decay", "optimizer.weight_decay"),
    ("betas", "optimizer.betas"),
    ("milestones", "lr_scheduler.lr_milestones"),
    ("epochs", "task.trainer.n_epochs"),
    ("batch_size", "batch_size"),
    ("seed", "seed"),
    ("label_fraction", "limited_label_train"),
    ("val_every", "task.trainer.eval_interval"),
)
"""TrialConfig field -> the Cryo-Bench override that sets it."""

DEFAULTS: dict[str, object] = {
    "optimizer.weight_decay": 0.05,
    "optimizer.betas": (0.9, 0.999),
    "lr_scheduler.lr_milestones": (0.6, 0.9),
    "limited_label_train": 1.0,
    "task.trainer.eval_interval": 5,
    "task.trainer.precision": "fp32",
}
"""Cryo-Bench's config defaults (train.yaml, optimizer/adamw.yaml, lr_scheduler/
multi_step_lr.yaml, task/segmentation.yaml): an override equal to them is left out. The lr,
epochs, batch size and seed are always written, as the README's commands write them."""

PRECISIONS = {"fp32": "fp32", "bf16": "bfp16"}
"""cryotune's computed precision -> task.trainer.precision (pangaea/engine/trainer.py)."""
LR_GAMMA = 0.1
"""Hard-coded in Cryo-Bench's MultiStepLR (pangaea/utils/schedulers.py)."""
RAMEN_OVERRIDES = ("input_size", "input_res", "res")
"""RAMEN's per-dataset geometry, set as encoder.<name> as Cryo-Bench's runs set it."""


class CryobenchRun(BaseModel):
    """The Cryo-Bench command for one best config, and what it cannot reproduce."""

    dataset: str
    model: str
    sweep: str
    repository: str = REPOSITORY
    tree: Tree = Field(description="paper: pangaea-bench/ as the paper ran it; later: the root")
    folder: str = Field(description="the folder of the repository to run the command in")
    commit: str = Field(description="the commit its configs were read at")
    dataset_config: str
    encoder_config: str
    decoder_config: str
    overrides: list[str] = Field(description="KEY=VALUE Hydra overrides, in the command's order")
    argv: list[str]
    command: str = Field(description="argv as one shell line")
    no_counterpart: list[str] = Field(
        description="settings of the best config Cryo-Bench cannot express, and what the "
        "command does instead"
    )
    notes: list[str] = Field(description="where Cryo-Bench's run differs in other ways")

    def text(self) -> str:
        """The command with its context, for a terminal: comments, then the command."""
        where = "the repository root" if self.folder == "." else f"{self.folder}/"
        lines = [
            f"# {self.dataset}/{self.model} best config of sweep {self.sweep}, as a Cryo-Bench run",
            f"# run in {where} of {self.repository} ({TREES[self.tree][2]}; configs read at "
            f"commit {self.commit})",
            " \\\n    ".join(
                [shlex.join(self.argv[: len(LAUNCH)])]
                + [shlex.quote(a) for a in self.argv[len(LAUNCH) :]]
            ),
        ]
        if self.no_counterpart:
            lines.append("# not reproduced: Cryo-Bench has no counterpart for")
            lines += [f"#   - {item}" for item in self.no_counterpart]
        if self.notes:
            lines.append("# also differs:")
            lines += [f"#   - {item}" for item in self.notes]
        return "\n".join(lines) + "\n"


def _find(table: tuple[Counterpart, ...], key: str, view: str) -> Counterpart | None:
    exact = [c for c in table if c.key == key and c.view == view]
    return (exact or [c for c in table if c.key == key and c.view is None] or [None])[0]


def _choices(table: tuple[Counterpart, ...], key: str) -> str:
    found = [f"{c.paper or c.later} ({c.view or 'any'} view)" for c in table if c.key == key]
    return ", ".join(found) or "none"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return str(value)


def cryobench_run(record: PairRecord) -> CryobenchRun:
    """The Cryo-Bench command that trains ``record``'s best config."""
    setup = trained_setup(record)
    config = setup.config
    dataset = _find(DATASET_CONFIGS, config.dataset, setup.view)
    encoder = _find(ENCODER_CONFIGS, config.model, setup.view)
    if dataset is None:
        raise CryotuneError(f"dataset '{config.dataset}' has no Cryo-Bench config")
    if encoder is None:
        raise CryotuneError(
            f"no Cryo-Bench encoder config reads the {setup.view} view of model "
            f"'{config.model}' on {config.dataset}; its configs: "
            f"{_choices(ENCODER_CONFIGS, config.model)} (retrain with --view to match one)"
        )
    tree = _tree(dataset, encoder, config.dataset, config.model, setup.view)
    dataset_config, encoder_config = getattr(dataset, tree), getattr(encoder, tree)
    missing: list[str] = []
    overrides = [
        f"dataset={dataset_config}",
        f"encoder={encoder_config}",
        f"decoder={DECODERS.get(config.model, DEFAULT_DECODER)}",
        *FIXED,
        f"finetune={setup.depth > 0}",
    ]
    if setup.partial:
        missing.append(
            f"finetuning depth {setup.depth} of {setup.num_blocks} blocks: Cryo-Bench's finetune "
            f"trains every encoder block or none; finetune=True trains all {setup.num_blocks}"
        )
    values = config.model_dump()
    for field, key in SETTINGS:
        value = values[field]
        if key in DEFAULTS and _value(value) == _value(DEFAULTS[key]):
            continue
        overrides.append(f"{key}={_value(value)}")
    precision = PRECISIONS[setup.precision]
    if precision != DEFAULTS["task.trainer.precision"]:
        overrides.append(f"task.trainer.precision={precision}")
    if config.model == "ramen":
        overrides += [f"encoder.{name}={_ramen(setup, name)}" for name in RAMEN_OVERRIDES]
    if setup.data_root:
        overrides.append(f"dataset.root_path={setup.data_root}")
    missing += _no_counterpart(setup)
    argv = [*LAUNCH, *overrides]
    folder, commit, _ = TREES[tree]
    return CryobenchRun(
        dataset=config.dataset,
        model=config.model,
        sweep=record.sweep,
        tree=tree,
        folder=folder,
        commit=commit,
        dataset_config=dataset_config,
        encoder_config=encoder_config,
        decoder_config=DECODERS.get(config.model, DEFAULT_DECODER),
        overrides=overrides,
        argv=argv,
        command=shlex.join(argv),
        no_counterpart=missing,
        notes=_notes(setup, tree),
    )


def _tree(dataset: Counterpart, encoder: Counterpart, key: str, model: str, view: str) -> Tree:
    """The paper's code where it has both configs, else the later code; CryotuneError naming
    where each config is when no code has both."""
    for tree in ("paper", "later"):
        if getattr(dataset, tree) and getattr(encoder, tree):
            return tree

    def where(part: Counterpart) -> str:
        places = {"paper": "pangaea-bench/ (the paper's code)", "later": "the later code"}
        found = [f"{places[t]} as {getattr(part, t)}" for t in places if getattr(part, t)]
        return " and ".join(found)

    raise CryotuneError(
        f"Cryo-Bench has no code with configs for both: {key} is in {where(dataset)}, "
        f"{model} ({view} view) in {where(encoder)}"
    )


def _ramen(setup: TrainedSetup, name: str) -> object:
    if name == "input_size":
        return setup.input_size
    return float(setup.options[name])


def _no_counterpart(setup: TrainedSetup) -> list[str]:
    config = setup.config
    found = []
    if config.gamma != LR_GAMMA:
        found.append(
            f"lr decay factor gamma={config.gamma}: Cryo-Bench's MultiStepLR always decays by "
            f"{LR_GAMMA}"
        )
    if config.neck_pool != "floor":
        found.append(
            f"neck_pool={config.neck_pool}: Cryo-Bench's ViT neck pools with floor rounding"
        )
    if config.swin_taps != "merged":
        found.append(
            f"swin_taps={config.swin_taps}: Cryo-Bench taps GFM-Swin after each stage's patch "
            "merging"
        )
    crop = config.crop_size
    if crop is not None and crop != setup.input_size:
        whole = "whole tiles" if setup.input_size is None else f"{setup.input_size} px crops"
        found.append(f"crop_size={crop}: Cryo-Bench trains this model on {whole}")
    if config.max_steps_per_epoch is not None:
        found.append(
            f"max_steps_per_epoch={config.max_steps_per_epoch}: Cryo-Bench trains on every "
            "batch of each epoch"
        )
    if setup.encoder.pretrained and config.weights == "random":
        found.append(
            "weights=random: Cryo-Bench loads the pretrained checkpoint "
            f"({setup.weights_file}) for this model"
        )
    return found


def _notes(setup: TrainedSetup, tree: Tree) -> list[str]:
    notes = []
    if setup.dataset.key == "sicd" and tree == "paper":
        notes.append(
            "SICD: these paper-era ai4arctic configs score one centre crop per test scene; "
            "cryotune scored whole scenes, as the later sicd_rgb / sicd_sar configs (repository "
            "root) do"
        )
    if setup.dataset.key == "caffe":
        notes.append(
            "CaFFe: Cryo-Bench counts the overlap of edge-aligned test tiles twice; cryotune "
            "scored every pixel once"
        )
    if setup.weights_file and setup.config.weights != "random":
        notes.append(
            f"weights: put {setup.weights_file} in pretrained_models/ of that folder "
            "(the encoder config's encoder_weights)"
        )
    notes.append(
        "docs/protocol.md lists every other point where cryotune's protocol and Cryo-Bench's differ"
    )
    return notes
