"""``cryotune best DATASET MODEL --as terratorch``: a TerraTorch (``terratorch fit --config``)
YAML for a best config, for the models whose pretrained backbone TerraTorch ships.

Backbone names are TerraTorch's registry names (``TERRATORCH_BACKBONE_REGISTRY``, IBM/terratorch
``terratorch/models/backbones/``, read at commit 85467a9). The YAML follows TerraTorch's own
examples: ``SemanticSegmentationTask`` with the ``EncoderDecoderFactory``, a UPerNet decoder,
AdamW and MultiStepLR, and a ``GenericNonGeoSegmentationDataModule`` pointed at the dataset's
folders. What TerraTorch cannot express is listed, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from pydantic import BaseModel, Field

from cryotune.documents.record import PairRecord
from cryotune.errors import CryotuneError
from cryotune.export.setup import TrainedSetup, trained_setup

TERRATORCH = "github.com/IBM/terratorch"
TERRATORCH_COMMIT = "85467a9"


@dataclass(frozen=True)
class Backbone:
    """A TerraTorch backbone: its registry name, the argument naming its input bands (None:
    TerraMind, which takes modalities), and whether its features are ViT tokens."""

    name: str
    bands_argument: str | None
    tokens: bool = True


BACKBONES: dict[str, Backbone] = {
    "prithvi": Backbone("prithvi_eo_v1_100", "backbone_bands"),
    "prithvi_eo2": Backbone("prithvi_eo_v2_300", "backbone_bands"),
    "terramind": Backbone("terramind_v1_large", None),
    "dofa": Backbone("dofa_base_patch16_224", "backbone_model_bands"),
    "satlas": Backbone("satlas_swin_b_sentinel2_si_ms", "backbone_model_bands", tokens=False),
    "ssl4eo_moco": Backbone(
        "ssl4eos12_vit_small_patch16_224_sentinel2_all_moco", "backbone_model_bands"
    ),
    "ssl4eo_dino": Backbone(
        "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino", "backbone_model_bands"
    ),
}
"""cryotune model key -> the TerraTorch backbone with the same pretrained weights."""

BAND_NAMES = {
    "B1": "COASTAL_AEROSOL",
    "B2": "BLUE",
    "B3": "GREEN",
    "B4": "RED",
    "B5": "RED_EDGE_1",
    "B6": "RED_EDGE_2",
    "B7": "RED_EDGE_3",
    "B8": "NIR_BROAD",
    "B8A": "NIR_NARROW",
    "B9": "WATER_VAPOR",
    "B10": "CIRRUS",
    "B11": "SWIR_1",
    "B12": "SWIR_2",
}
"""Sentinel-2 band -> TerraTorch's HLSBands name (terratorch/datasets/utils.py); other names
(VV, VH) are TerraTorch's too."""

PYRAMID = 4
"""Feature maps TerraTorch's pyramid neck and UPerNet take from a ViT."""

TERRAMIND_MODALITIES = {"optical": "S2L2A", "sar": "S1GRD"}
"""cryotune's view -> TerraMind's modality, as cryotune's TerraMind embeds it."""


class TerratorchConfig(BaseModel):
    dataset: str
    model: str
    sweep: str
    backbone: str
    yaml: str = Field(description="the config, for `terratorch fit --config FILE`")
    no_counterpart: list[str]
    notes: list[str]

    def text(self) -> str:
        lines = [
            f"# {self.dataset}/{self.model} best config of sweep {self.sweep}, as a TerraTorch "
            f"config ({TERRATORCH}, backbone names read at commit {TERRATORCH_COMMIT})",
            "# run: terratorch fit --config THIS_FILE",
        ]
        if self.no_counterpart:
            lines.append("# not reproduced: TerraTorch has no counterpart for")
            lines += [f"#   - {item}" for item in self.no_counterpart]
        if self.notes:
            lines.append("# also differs:")
            lines += [f"#   - {item}" for item in self.notes]
        return "\n".join(lines) + "\n" + self.yaml


def terratorch_config(record: PairRecord) -> TerratorchConfig:
    """The TerraTorch config of ``record``'s best config; CryotuneError naming the models
    TerraTorch ships when it ships none of this one."""
    backbone = BACKBONES.get(record.model)
    if backbone is None:
        raise CryotuneError(
            f"TerraTorch ships no backbone for model '{record.model}'; models it ships: "
            f"{', '.join(sorted(BACKBONES))} (use --as cryobench for the others)"
        )
    setup = trained_setup(record)
    config = setup.config
    missing, notes = _differences(setup)
    document = {
        "seed_everything": config.seed,
        "trainer": {
            "accelerator": "auto",
            "devices": 1,
            "precision": "bf16-mixed" if setup.precision == "bf16" else "32-true",
            "max_epochs": config.epochs,
            "check_val_every_n_epoch": config.val_every,
            "callbacks": [
                {
                    "class_path": "ModelCheckpoint",
                    "init_args": {"monitor": "val/mIoU", "mode": "max", "save_top_k": 1},
                }
            ],
        },
        "data": _data(setup),
        "model": {
            "class_path": "terratorch.tasks.SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": _model_args(setup, backbone),
                "loss": "ce",
                "ignore_index": setup.dataset.ignore_index,
                "freeze_backbone": setup.depth == 0,
                "freeze_decoder": False,
                "tiled_inference_parameters": _tiles(setup),
            },
        },
        "optimizer": {
            "class_path": "torch.optim.AdamW",
            "init_args": {
                "lr": config.lr,
                "betas": list(config.betas),
                "weight_decay": config.weight_decay,
            },
        },
        "lr_scheduler": {
            "class_path": "torch.optim.lr_scheduler.MultiStepLR",
            "init_args": {
                "milestones": [int(m * config.epochs) for m in config.milestones],
                "gamma": config.gamma,
            },
        },
    }
    if setup.partial:
        missing.insert(
            0,
            f"finetuning depth {setup.depth} of {setup.num_blocks} blocks: TerraTorch's "
            f"freeze_backbone trains every backbone block or none; here all "
            f"{setup.num_blocks} train",
        )
    return TerratorchConfig(
        dataset=config.dataset,
        model=config.model,
        sweep=record.sweep,
        backbone=backbone.name,
        yaml=yaml.safe_dump(document, sort_keys=False),
        no_counterpart=missing,
        notes=notes,
    )


def _model_args(setup: TrainedSetup, backbone: Backbone) -> dict:
    args: dict = {
        "backbone": backbone.name,
        "backbone_pretrained": setup.config.weights != "random",
    }
    if backbone.bands_argument is None:
        modalities = [TERRAMIND_MODALITIES[v] for v in setup.view.split("+")]
        args["backbone_modalities"] = modalities
    else:
        args[backbone.bands_argument] = [BAND_NAMES.get(b, b) for b in setup.read_bands]
    if backbone.tokens:
        taps = list(setup.encoder.tapped_layers)
        taps = taps if len(taps) == PYRAMID else taps[-1:] * PYRAMID
        necks = [{"name": "SelectIndices", "indices": taps}]
        necks.append(
            {
                "name": "ReshapeTokensToImage",
                "remove_cls_token": backbone.bands_argument is not None,
            }
        )
        necks.append({"name": "LearnedInterpolateToPyramidal"})
        args["necks"] = necks
    else:
        args["backbone_out_indices"] = list(setup.encoder.tapped_layers)
    args.update(
        {
            "decoder": "UperNetDecoder",
            "decoder_channels": 512,
            "decoder_scale_modules": False,
            "head_dropout": 0.1,
            "num_classes": setup.dataset.num_classes,
        }
    )
    return args


def _tiles(setup: TrainedSetup) -> dict:
    size = setup.input_size or setup.dataset.tile_size
    return {"h_crop": size, "w_crop": size, "h_stride": size, "w_stride": size}


def _data(setup: TrainedSetup) -> dict:
    dataset = setup.dataset
    layout = dataset.layout
    root = (setup.data_root or f"DATA/{dataset.key}").rstrip("/")
    modality = dataset.modality(setup.view.split("+")[0])
    args: dict = {"batch_size": setup.config.batch_size, "num_workers": setup.config.num_workers}
    for split in ("train", "val", "test"):
        args[f"{split}_data_root"] = f"{root}/{layout.image_dir.format(split=split)}"
        args[f"{split}_label_data_root"] = f"{root}/{layout.mask_dir.format(split=split)}"
    args.update(
        {
            "means": list(modality.mean),
            "stds": list(modality.std),
            "num_classes": dataset.num_classes,
            "dataset_bands": [BAND_NAMES.get(b, b) for b in modality.bands],
            "output_bands": [BAND_NAMES.get(b, b) for b in setup.read_bands],
            "no_label_replace": dataset.ignore_index,
            "train_transform": [
                *(
                    [
                        {
                            "class_path": "albumentations.RandomCrop",
                            "init_args": {"height": setup.input_size, "width": setup.input_size},
                        }
                    ]
                    if setup.input_size
                    else []
                ),
                {"class_path": "ToTensorV2"},
            ],
        }
    )
    return {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": args}


def _differences(setup: TrainedSetup) -> tuple[list[str], list[str]]:
    config = setup.config
    missing = []
    if config.label_fraction < 1:
        missing.append(
            f"label_fraction={config.label_fraction}: TerraTorch's datamodule has no stratified "
            "few-shot draw (give train_split a file listing cryotune's subset)"
        )
    if config.max_steps_per_epoch is not None:
        missing.append(
            f"max_steps_per_epoch={config.max_steps_per_epoch}: set trainer.limit_train_batches"
        )
    taps = setup.encoder.tapped_layers
    if len(taps) != PYRAMID and BACKBONES[config.model].tokens:
        missing.append(
            f"the tapped layers {list(taps)}: PANGAEA's neck feeds UPerNet one map per tapped "
            f"layer; TerraTorch's pyramid neck needs {PYRAMID}, so layer {taps[-1]} is tapped "
            f"{PYRAMID} times here"
        )
    if config.crop_size is not None and config.crop_size != setup.input_size:
        missing.append(f"crop_size={config.crop_size}: the RandomCrop here is the input size")
    notes = [
        "MultiStepLR steps per epoch here (milestones in epochs); cryotune and Cryo-Bench step "
        "per iteration",
        "the neck: TerraTorch's LearnedInterpolateToPyramidal stands in for PANGAEA's "
        "x4/x2/x1/x0.5 neck",
        "bands: the encoder reads only the dataset bands listed; cryotune and Cryo-Bench feed "
        "the others as zeros",
        "data: GenericNonGeoSegmentationDataModule pairs images and masks by sorted file name, "
        "as Cryo-Bench's readers do for these layouts; check the folders and the value scale",
    ]
    if setup.dataset.key in ("sicd", "caffe"):
        notes.append(
            f"{setup.dataset.key}: scenes are tiled for evaluation without overlap here; "
            "cryotune averages evenly spaced overlapping windows"
        )
    return missing, notes
