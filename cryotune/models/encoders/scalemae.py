"""Scale-MAE ViT-L/16: its position code is sin-cos over patch positions scaled by the input
resolution (ground sample distance relative to pretraining; ``input_res`` 1.0 in Cryo-Bench),
computed for every input grid instead of stored."""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import ViTEncoder
from cryotune.models.encoders.options import build_size, single_modality
from cryotune.models.encoders.position import sincos_2d, with_class_slot
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import PatchTokens, grid_patch_embed, init_like_mae


def gsd_position(dim: int, input_res: float, height: int, width: int) -> Tensor:
    """Scale-MAE's ``get_2d_sincos_pos_embed_with_resolution`` with a class-token slot."""
    return with_class_slot(sincos_2d(height, width, dim, scale=input_res))


def build_scalemae(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    in_chans = len(mapping.inputs[modality])
    patch_embed = grid_patch_embed(spec.input_size, spec.patch_size, in_chans, size.embed_dim)
    embed = PatchTokens(
        spec.key,
        modality,
        in_chans,
        int(spec.patch_size),
        patch_embed,
        tuple(patch_embed.grid_size),
        cls_token=nn.Parameter(torch.zeros(1, 1, size.embed_dim)),
        position=partial(gsd_position, size.embed_dim, float(spec.option("input_res"))),
    )
    norm = partial(nn.LayerNorm, eps=1e-6)
    layers = [
        Block(size.embed_dim, size.num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(spec.key, embed, layers, size.embed_dim, size.tapped_layers, (modality,))
    init_like_mae(encoder)
    return encoder
