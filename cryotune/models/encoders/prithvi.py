"""Prithvi-100M: a ViT-B/16 whose patch embedding is a Conv3d over (time, height, width).

One image is one frame (tubelet 1); the fixed 3-D sin-cos code gives width and height 6/16
of the channels each and time 4/16, as in NASA-IMPACT's hls-foundation-os.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import ViTEncoder
from cryotune.models.encoders.options import build_size, single_modality
from cryotune.models.encoders.position import sincos_3d, with_class_slot
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import PatchTokens, init_like_mae


class PatchEmbed3D(nn.Module):
    """Frames of images -> patch features ``(B, h, w, D)`` with a Conv3d (tubelet x p x p)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int = 1):
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, image: Tensor) -> Tensor:
        features = self.proj(image.unsqueeze(2))
        return features.flatten(2, 3).permute(0, 2, 3, 1)


def build_prithvi(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    in_chans = len(mapping.inputs[modality])
    grid = (spec.input_size // spec.patch_size,) * 2
    embed = PatchTokens(
        spec.key,
        modality,
        in_chans,
        int(spec.patch_size),
        PatchEmbed3D(in_chans, size.embed_dim, int(spec.patch_size)),
        grid,
        cls_token=nn.Parameter(torch.zeros(1, 1, size.embed_dim)),
        pos_embed=with_class_slot(sincos_3d(1, grid[0], grid[1], size.embed_dim)),
    )
    layers = [
        Block(size.embed_dim, size.num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=nn.LayerNorm)
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(spec.key, embed, layers, size.embed_dim, size.tapped_layers, (modality,))
    init_like_mae(encoder)
    return encoder
