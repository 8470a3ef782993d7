"""THOR-1.0-large (FM4CS, arXiv 2601.16011) as Cryo-Bench's ``THOR_Encoder`` runs it: a ViT-L
whose tokens come from one single-band patch projection per band, averaged per spectral group,
with ALiBi attention biases instead of position embeddings.

Implemented from FM4CS/THOR ``thor_vit.py`` (``thor_vit_large_encoder_alibi_patch_size_embed_v1``)
and Cryo-Bench's adapter, at their evaluation settings: patch size 16 (the patch projections'
native size, so no FlexiViT resampling), GSD 10 m for every band, groups blue/green/red/NIR,
SWIR1/SWIR2, elevation/slope and VV/VH. Each group's tokens get a fixed code of the patch size
(``(1024 - 256)``-channel sin-cos of ``16 * 10 / (4 * 10)``) and of the group's index (256
channels); attention between two tokens is biased by ``-slope_h`` times the distance of their
patch centres in patches, whatever their groups. Every tapped layer goes through the final norm
(``forward_intermediates(norm=True)``) and the group maps are averaged.

Not reproduced: random patch sizes during pretraining-style training (Cryo-Bench keeps THOR in
eval mode, which disables them). THOR never pretrained elevation and slope inputs, so their
projections keep their initial weights when a checkpoint is loaded, as in Cryo-Bench.
"""

from __future__ import annotations

from functools import partial
from types import MappingProxyType

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import TokenGrid, ViTEncoder, modality_input
from cryotune.models.encoders.options import build_size, fed_modalities
from cryotune.models.encoders.position import alibi_slopes, sincos_1d
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import init_like_mae

THOR_OPTICAL = ("B2", "B3", "B4", "B8", "B11", "B12", "SLOPE", "ELEVATION")
THOR_SAR = ("VV", "VH")

# cryotune band -> (THOR patch projection name, spectral group index), Cryo-Bench's GLB_TO_THOR
# and group order; THOR shares one projection between IW and EW SAR (``patch_embed_name``).
THOR_BANDS: MappingProxyType[str, tuple[str, int]] = MappingProxyType(
    {
        "B2": ("S2:Blue", 0),
        "B3": ("S2:Green", 0),
        "B4": ("S2:Red", 0),
        "B8": ("S2:NIR", 0),
        "B11": ("S2:SWIR1", 1),
        "B12": ("S2:SWIR2", 1),
        "ELEVATION": ("dem-10m:elevation", 2),
        "SLOPE": ("dem-10m:slope", 2),
        "VV": ("S1:VV", 3),
        "VH": ("S1:VH", 3),
    }
)
UNPRETRAINED = ("dem-10m:elevation", "dem-10m:slope")
"""Projections absent from THOR's checkpoints: THOR pretrained on Sentinel-1/2/3 only."""


def alibi_bias(slopes: Tensor, rows: int, cols: int, groups: int) -> Tensor:
    """``(1, heads, G*N, G*N)`` attention bias: minus slope times the distance, in patches,
    between patch centres; tokens of different groups at one place are at distance 0."""
    ys, xs = torch.meshgrid(
        torch.arange(rows, dtype=torch.float32, device=slopes.device),
        torch.arange(cols, dtype=torch.float32, device=slopes.device),
        indexing="ij",
    )
    centres = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1) + 0.5
    distance = torch.cdist(centres, centres).repeat(groups, groups)
    return -(slopes.float()[:, None, None] * distance).unsqueeze(0)


class ThorTokens(nn.Module):
    """Bands -> per-band patch tokens -> per-group means plus the group's fixed code."""

    def __init__(
        self,
        encoder: str,
        inputs: dict[str, tuple[str, ...]],
        embed_dim: int,
        band_embed_dim: int,
        patch_size: int,
        patch_scale: float,
        num_heads: int,
    ):
        super().__init__()
        self.encoder = encoder
        self.inputs = inputs
        self.patch_size = patch_size
        self.patch_embed = nn.ModuleDict(
            {
                THOR_BANDS[band][0]: nn.Conv2d(1, embed_dim, patch_size, stride=patch_size)
                for bands in inputs.values()
                for band in bands
            }
        )
        self.group_ids = sorted({THOR_BANDS[b][1] for bands in inputs.values() for b in bands})
        patch_code = sincos_1d(embed_dim - band_embed_dim, torch.tensor([patch_scale]))
        group_code = sincos_1d(band_embed_dim, torch.tensor(self.group_ids, dtype=torch.float32))
        codes = torch.cat([patch_code.expand(len(self.group_ids), -1), group_code], dim=1)
        self.register_buffer("group_codes", codes, persistent=False)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(num_heads)), persistent=False)

    def forward(self, x: dict[str, Tensor]) -> TokenGrid:
        members: dict[int, list[Tensor]] = {g: [] for g in self.group_ids}
        rows = cols = 0
        for modality, bands in self.inputs.items():
            image = modality_input(x, modality, len(bands), self.patch_size, self.encoder)
            for index, band in enumerate(bands):
                name, group = THOR_BANDS[band]
                patches = self.patch_embed[name](image[:, index : index + 1])
                rows, cols = patches.shape[-2:]
                members[group].append(patches.flatten(2).transpose(1, 2))
        tokens = torch.cat(
            [
                torch.stack(members[g], dim=-1).mean(-1) + self.group_codes[i]
                for i, g in enumerate(self.group_ids)
            ],
            dim=1,
        )
        bias = alibi_bias(self.slopes, rows, cols, len(self.group_ids)).to(tokens.dtype)
        return TokenGrid(
            tokens, rows, cols, groups=len(self.group_ids), block_kwargs={"attn_mask": bias}
        )


def build_thor(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modalities = fed_modalities(spec, mapping)
    band_embed_dim = int(spec.option("band_embed_dim")) * size.embed_dim // spec.embed_dim
    patch = int(spec.patch_size)
    embed = ThorTokens(
        spec.key,
        {m: tuple(mapping.inputs[m]) for m in modalities},
        size.embed_dim,
        band_embed_dim,
        patch,
        patch / int(spec.option("reference_patch_size")),
        size.num_heads,
    )
    norm = partial(nn.LayerNorm, eps=1e-6)
    layers = [
        Block(size.embed_dim, size.num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(
        spec.key,
        embed,
        layers,
        size.embed_dim,
        size.tapped_layers,
        tuple(modalities),
        head_norm=norm(size.embed_dim),
        norm_every_tap=True,
    )
    init_like_mae(encoder)
    return encoder


def thor_encoder_state(state: dict[str, Tensor], encoder: nn.Module) -> dict[str, Tensor]:
    """The ``encoder.*`` part of a THOR checkpoint (the MAE decoder and task heads dropped);
    elevation and slope projections, which THOR never pretrained, keep the encoder's own."""
    own = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    current = encoder.state_dict()
    for name in UNPRETRAINED:
        for part in ("weight", "bias"):
            ours = f"embed.patch_embed.{name}.{part}"
            if ours in current:
                own.setdefault(f"ind_patch_embed.patch_embed.{name}.{part}", current[ours])
    return own


SPEC = EncoderSpec(
    key="thor",
    family="thor",
    title="THOR-1.0-large: ViT-L with per-band patch projections, spectral groups and ALiBi",
    builder=build_thor,
    input_size=256,
    patch_size=16,
    embed_dim=1024,
    num_blocks=24,
    tapped_layers=(5, 11, 17, 23),
    bands=MappingProxyType({"optical": THOR_OPTICAL, "sar": THOR_SAR}),
    weights_file="thor_v1_vit_large.pt",
    weights_source="HF FM4CS/THOR-1.0-large",
    published_params=307_000_000,
    params_source="ViT-Large 307M (Dosovitskiy et al., ICLR 2021, Table 1): THOR-1.0-large is a "
    "ViT-L (embed 1024, depth 24, 16 heads; FM4CS/THOR thor_vit.py), here with Cryo-Bench's 10 "
    "single-band projections; THOR publishes no encoder count at these bands",
    options=MappingProxyType(
        {"num_heads": 16, "band_embed_dim": 256, "reference_patch_size": 4, "token_sets": 4}
    ),
    roster="later",
)
