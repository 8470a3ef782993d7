"""Assembles encoder + decoder for one trial: bands, weights, finetuning depth, logits at (H, W)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from cryotune.data.bands import map_bands
from cryotune.errors import UsageError
from cryotune.models.decoders import SINGLE_SAMPLE_UNSAFE, build_decoder
from cryotune.models.depth import (
    apply_finetune_depth,
    check_depth,
    count_params,
    count_trainable,
    hold_frozen_in_eval,
)
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.weights import (
    RANDOM_WEIGHTS,
    file_sha256,
    load_encoder_weights,
    read_checkpoint,
    require_weights,
)

if TYPE_CHECKING:
    from cryotune.config import TrialConfig
    from cryotune.data.bands import BandMapping
    from cryotune.data.datasets import DatasetSpec
    from cryotune.models.encoders.base import Encoder
    from cryotune.models.encoders.spec import EncoderSpec


class Segmenter(nn.Module):
    """Encoder features -> decoder logits at the input's H, W; frozen encoder parts stay in eval."""

    def __init__(self, encoder: Encoder, decoder: nn.Module, depth: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.depth = depth

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        size = next(iter(inputs.values())).shape[-2:]
        return self.decoder(self.encoder(dict(inputs)), size)

    def train(self, mode: bool = True) -> Segmenter:
        super().train(mode)
        hold_frozen_in_eval(self.encoder, self.depth)
        return self


@dataclass(frozen=True)
class BuiltModel:
    """A segmenter with what the trainer and the logs need to feed and describe it."""

    model: Segmenter
    mapping: BandMapping
    spec: EncoderSpec
    input_size: int | None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomEncoder:
    """An encoder outside the registry (a benchmark's own) that a trial builds in place of
    ``config.model``'s: its spec, the encoder's own ``state_dict`` file, and UPerNet's width."""

    spec: EncoderSpec
    weights: Path | None = None  # None: random initialisation
    decoder_channels: int | None = None  # None: the paper's UPerNet width


def _load_custom(encoder: Encoder, custom: CustomEncoder) -> dict:
    if custom.weights is None:
        return {"weights": RANDOM_WEIGHTS, "weights_sha256": None}
    encoder.load_state_dict(read_checkpoint(custom.weights), strict=True)
    return {"weights": str(custom.weights), "weights_sha256": file_sha256(custom.weights)}


def _load_weights(encoder: Encoder, spec: EncoderSpec, config_weights: str | None) -> dict:
    if config_weights == RANDOM_WEIGHTS or not spec.pretrained:
        return {"weights": RANDOM_WEIGHTS, "weights_sha256": None}
    path = require_weights(spec, config_weights, encoder.weights_variant)
    return {"weights": str(path), "weights_sha256": load_encoder_weights(encoder, spec, path)}


def feature_stride(spec: EncoderSpec, dataset: DatasetSpec) -> float:
    """Input pixels per feature-map cell: the patch, or RAMEN's res / input_res."""
    options = spec.options_for(dataset)
    return spec.patch_size or float(options.get("res", 1)) / float(options.get("input_res", 1))


def check_crop(spec: EncoderSpec, dataset: DatasetSpec, crop: int | None, neck_pool: str) -> None:
    """Refuse, before any compute, a crop whose feature map the floor neck would pool to
    nothing (pyramid encoders have patches of 4 px or none, so the minimum crop of 8 passes)."""
    if crop is None or neck_pool != "floor":
        return
    stride = feature_stride(spec, dataset)
    if crop // stride < 2:
        side = int(crop // stride)
        raise UsageError(
            f"--crop-size {crop} (trial.crop_size): {spec.key} gives a {side}x{side} feature "
            "map, which the ViT neck's floor max-pool (as in PANGAEA) turns into nothing; "
            f"valid: a crop of at least {int(2 * stride)} px, or --neck-pool ceil "
            "(trial.neck_pool)"
        )


def build_segmenter(
    config: TrialConfig, dataset: DatasetSpec, custom: CustomEncoder | None = None
) -> BuiltModel:
    """The trial's model: its encoder fed by the dataset's bands, loaded, frozen to ``depth``;
    ``custom`` builds an encoder outside the registry instead of ``config.model``'s."""
    spec = get_encoder_spec(config.model) if custom is None else custom.spec
    default_depth = 0 if spec.pretrained else spec.num_blocks
    depth = check_depth(default_depth if config.depth is None else config.depth, spec.num_blocks)
    decoder_key = str(spec.option("decoder", "upernet"))
    if decoder_key in SINGLE_SAMPLE_UNSAFE and config.batch_size < 2:
        raise UsageError(
            f"--batch-size {config.batch_size}: the {decoder_key} decoder's batch norm after "
            "1x1 pooling needs at least 2 tiles per training batch; valid: 2 or more"
        )
    mapping = map_bands(dataset, spec.bands, spec.key, config.view)
    default_view = (
        mapping.view if config.view is None else map_bands(dataset, spec.bands, spec.key).view
    )
    choices = {"taps": config.swin_taps} if spec.option("tap_modes") else {}
    encoder = spec.builder(spec, mapping, **choices)
    if custom is None:
        weights = _load_weights(encoder, spec, config.weights)
    else:
        weights = _load_custom(encoder, custom)
    encoder_trainable = apply_finetune_depth(encoder, depth)
    decoder = build_decoder(
        decoder_key,
        encoder.out_channels,
        encoder.is_pyramid,
        dataset.num_classes,
        neck_pool=config.neck_pool,
        channels=None if custom is None else custom.decoder_channels,
    )
    input_size = spec.input_size_for(dataset)
    options = spec.options_for(dataset)
    acting = {"val_every", "precision", "view"}
    if decoder_key == "upernet" and not encoder.is_pyramid:
        acting.add("neck_pool")
    if choices:
        acting.add("swin_taps")
    model = Segmenter(encoder, decoder, depth)
    info = {
        **weights,
        "model": spec.key,
        "dataset": dataset.key,
        "depth": depth,
        "num_blocks": spec.num_blocks,
        "decoder": decoder_key,
        "trainable_params": count_trainable(model),
        "encoder_trainable_params": encoder_trainable,
        "total_params": count_params(model),
        "encoder_params": count_params(encoder),
        "input_size": input_size,
        "modalities": list(mapping.inputs),
        "view": mapping.view,
        "view_source": mapping.view_source,
        "paper_view": dataset.paper_view(spec.key) or default_view,
        "filled_bands": list(mapping.filled),
        "protocol_settings": sorted(acting),
        "feature_stride": feature_stride(spec, dataset),
        **{k: v for k, v in options.items() if k in ("input_res", "res", "run_source")},
    }
    return BuiltModel(model, mapping, spec, input_size, info)
