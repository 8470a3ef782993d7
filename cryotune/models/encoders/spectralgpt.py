"""SpectralGPT+ (Hong et al., TPAMI 2024): a ViT-B whose tokens are 3-D spectral-spatial cubes.

The 12 S2 bands (no B10) are one single-channel "video": a Conv3d with kernel (3, 8, 8) cuts
them into 4 spectral groups of 8 x 8 patches, so a 128 px image gives 4 x 16 x 16 tokens with a
learned spatial code (shared by the groups) plus a learned code per group. Blocks use separate
q, k, v projections. As in PANGAEA's ``spectralgpt_encoder.py``, a tapped layer's 4 groups are
stacked into ``4 x 768 = 3072`` channels (embedding-major: channel ``d * 4 + group``), and
stochastic depth rises to 0.5 over the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, resample_abs_pos_embed
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import TokenGrid, ViTEncoder, modality_input
from cryotune.models.encoders.options import build_size, single_modality
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import init_like_mae

BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")


@dataclass
class SpectralGrid(TokenGrid):
    """Tokens of ``groups`` spectral groups of h x w; maps stack the groups as channels."""

    def to_map(self, tokens: Tensor) -> Tensor:
        batch, _, channels = tokens.shape
        grid = tokens[:, self.prefix :].transpose(1, 2)
        return grid.reshape(batch, channels * self.groups, self.height, self.width)


class PatchEmbed(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C / t, H / p * W / p, D)`` with a ``(t, p, p)`` Conv3d."""

    def __init__(self, embed_dim: int, patch_size: int, t_patch_size: int):
        super().__init__()
        kernel = (t_patch_size, patch_size, patch_size)
        self.proj = nn.Conv3d(1, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, image: Tensor) -> Tensor:
        return self.proj(image.unsqueeze(1)).flatten(3).permute(0, 2, 3, 1)


class SpectralTokens(nn.Module):
    """Spectral-spatial tokens plus the separable learned position code."""

    def __init__(
        self,
        encoder: str,
        modality: str,
        in_chans: int,
        embed_dim: int,
        patch_size: int,
        t_patch_size: int,
        grid: tuple[int, int],
    ):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.grid = grid
        self.groups = in_chans // t_patch_size
        self.patch_embed = PatchEmbed(embed_dim, patch_size, t_patch_size)
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, grid[0] * grid[1], embed_dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, self.groups, embed_dim))
        nn.init.trunc_normal_(self.pos_embed_spatial, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_temporal, std=0.02)

    def forward(self, x: dict[str, Tensor]) -> SpectralGrid:
        image = modality_input(x, self.modality, self.in_chans, self.patch_size, self.encoder)
        height, width = (s // self.patch_size for s in image.shape[-2:])
        tokens = self.patch_embed(image)
        spatial = resample_abs_pos_embed(
            self.pos_embed_spatial, [height, width], list(self.grid), num_prefix_tokens=0
        )
        tokens = tokens + spatial.unsqueeze(1) + self.pos_embed_temporal.unsqueeze(2)
        batch, groups, cells, dim = tokens.shape
        return SpectralGrid(
            tokens.reshape(batch, groups * cells, dim), height, width, groups=groups
        )


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections (SpectralGPT's names)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        q, k, v = (
            f(x).view(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)
            for f in (self.q, self.k, self.v)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def build_spectralgpt(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    t_patch = int(spec.option("t_patch_size"))
    embed = SpectralTokens(
        spec.key,
        modality,
        len(mapping.inputs[modality]),
        size.embed_dim,
        int(spec.patch_size),
        t_patch,
        (spec.input_size // spec.patch_size,) * 2,
    )
    rates = torch.linspace(0, float(spec.option("drop_path_rate")), size.depth, device="cpu")
    layers = [Block(size.embed_dim, size.num_heads, 4.0, float(rate)) for rate in rates]
    encoder = ViTEncoder(spec.key, embed, layers, size.embed_dim, size.tapped_layers, (modality,))
    encoder.out_channels = [size.embed_dim * embed.groups] * len(encoder.taps)
    init_like_mae(encoder)
    return encoder


SPEC = EncoderSpec(
    key="spectralgpt",
    family="spectralgpt",
    title="SpectralGPT+: ViT-B/8 on 3-D spectral-spatial tokens (t_patch 3, 4 x 768 channels)",
    builder=build_spectralgpt,
    input_size=128,
    patch_size=8,
    embed_dim=768,
    num_blocks=12,
    tapped_layers=(3, 5, 7, 11),
    bands=MappingProxyType({"optical": BANDS}),
    weights_file="SpectralGPT+.pth",
    weights_source="Zenodo record 8412455 (zenodo.org/records/8412455/files/SpectralGPT+.pth)",
    published_params=86_000_000,
    params_source="ViT-Base 86M (Dosovitskiy et al., ICLR 2021, Table 1): SpectralGPT's "
    "encoder is a ViT-B whose only change is the (3, 8, 8) Conv3d token embedding and the "
    "separable position code (Hong et al., TPAMI 2024; danfenghong/IEEE_TPAMI_SpectralGPT)",
    options=MappingProxyType(
        {"num_heads": 12, "t_patch_size": 3, "drop_path_rate": 0.5, "token_sets": 4}
    ),
)
