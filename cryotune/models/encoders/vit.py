"""Plain timm ViTs: the ViT-B/16 baseline, SSL4EO-S12 ViT-S/16 (MoCo v3, DINO, MAE), RemoteCLIP.

Each is a timm model built without weights (``options["timm_model"]``); families differ only
in the position code: learned (baseline, DINO, CLIP) or fixed sin-cos laid out as MAE or
MoCo v3 do.
"""

from __future__ import annotations

import timm
from torch import Tensor

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import ViTEncoder
from cryotune.models.encoders.options import build_size, single_modality, weights_variant
from cryotune.models.encoders.position import sincos_2d, with_class_slot
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import PatchTokens


def fixed_position(layout: str, grid: tuple[int, int], dim: int) -> Tensor:
    if layout not in ("mae", "moco"):
        raise ValueError(f"unknown position layout '{layout}'; valid: learned, mae, moco")
    return with_class_slot(sincos_2d(grid[0], grid[1], dim, rows_first=layout == "moco"))


def build_timm_vit(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    """A timm ViT for the mapping's bands, tapped at the spec's layers."""
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    in_chans = len(mapping.inputs[modality])
    model = timm.create_model(
        str(spec.option("timm_model")),
        pretrained=False,
        num_classes=0,
        global_pool="",
        in_chans=in_chans,
        img_size=spec.input_size,
        dynamic_img_size=True,
        embed_dim=size.embed_dim,
        depth=size.depth,
        num_heads=size.num_heads,
    )
    layout = str(spec.option("position", "learned"))
    grid = tuple(model.patch_embed.grid_size)
    pos_embed = (
        model.pos_embed if layout == "learned" else fixed_position(layout, grid, size.embed_dim)
    )
    embed = PatchTokens(
        spec.key,
        modality,
        in_chans,
        int(spec.patch_size),
        model.patch_embed,
        grid,
        cls_token=model.cls_token,
        pos_embed=pos_embed,
        norm_pre=model.norm_pre,
    )
    return ViTEncoder(
        spec.key,
        embed,
        list(model.blocks),
        size.embed_dim,
        size.tapped_layers,
        (modality,),
        weights_variant=weights_variant(spec, modality),
    )
