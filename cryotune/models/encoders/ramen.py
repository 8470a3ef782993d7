"""RAMEN base (Houdré et al., arXiv 2512.05025): a resolution-adjustable, sensor-agnostic ViT-B.

There are no patches. Each pixel's bands are projected to 768 channels with one code per band
(an MLP of the band's wavelength in nm for optical bands, a learned polarisation code for SAR),
a scale resampler shrinks the map by ``input_res / res`` (input GSD over the chosen feature
GSD) with a mixture of 1x1 convolutions gated by the scale, and every cell of the result is a
token with a sin-cos position code scaled by ``res``. Optical and SAR bands form one token set
each; their maps are stacked as channels. This is PANGAEA's ``RAMEN_Encoder_MonoTemporal``
(nicolashoudre/RAMEN ``pangaea-bench/pangaea/encoders/ramen_encoder.py``) under its parameter
names; the multi-temporal L-TAE is not built.

Input size and GSDs are set per dataset as Cryo-Bench's RAMEN runs set them
(``pangaea-bench/outputs/*/.hydra/overrides.yaml``): GLID 512 px at input_res 3, res 24 and
SICD 128 px at input_res 40, res 80 (both 64 x 64 tokens); datasets without a saved run take
the encoder config's defaults, as the README's commands for CaFFe do: the dataset's tile size
at input_res 10, res 40. The README's GLID example (40 px, 30/80) matches none of the runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import ALL_MODALITY, ANY_BANDS, BandMapping
from cryotune.errors import DataError, UsageError
from cryotune.models.encoders.base import TokenGrid, ViTEncoder, modality_input
from cryotune.models.encoders.options import build_size
from cryotune.models.encoders.position import sincos_1d, sincos_2d, with_class_slot
from cryotune.models.encoders.spec import EncoderSpec, token_grid
from cryotune.models.encoders.tokens import init_like_mae

# Cryo-Bench's ramen_monotemporal.yaml: S2 centre wavelengths in nm, and in-range stand-ins for
# GLB's derived layers; SAR bands map to RAMEN's ascending-orbit polarisation codes.
WAVELENGTHS_NM = {
    "B1": 440.0,
    "B2": 490.0,
    "B3": 560.0,
    "B4": 665.0,
    "B5": 705.0,
    "B6": 740.0,
    "B7": 783.0,
    "B8": 832.0,
    "B8A": 865.0,
    "B9": 945.0,
    "B10": 1373.0,
    "B11": 1610.0,
    "B12": 2200.0,
    "NDWI": 705.0,
    "SLOPE": 1240.0,
    "ELEVATION": 1640.0,
}
POLARISATIONS = {"VV": "asc_vv", "VH": "asc_vh", "HH": "asc_hh", "HV": "asc_hv"}
RADAR_CODES = tuple(
    f"{orbit}_{pol}" for orbit in ("asc", "des") for pol in ("vv", "vh", "hv", "hh")
)


def _code_mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.LayerNorm(dim)
    )


class SpectralProjector(nn.Module):
    """Band code = MLP(sin-cos code of the wavelength in nm)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dim = dim
        self.mlp = _code_mlp(dim, hidden)

    def forward(self, wavelengths: Tensor) -> Tensor:
        return self.mlp(sincos_1d(self.dim, wavelengths).to(wavelengths))


class RadarProjector(nn.Module):
    """Band code = MLP(learned code of the polarisation and orbit direction)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        for code in RADAR_CODES:
            self.register_parameter(f"{code}_param", nn.Parameter(torch.empty(dim)))
            nn.init.normal_(getattr(self, f"{code}_param"), 0.0, 0.02)
        self.mlp = _code_mlp(dim, hidden)

    def forward(self, codes: Sequence[str]) -> Tensor:
        return self.mlp(torch.stack([getattr(self, f"{code}_param") for code in codes]))


class ScaleResampler(nn.Module):
    """Bilinear resize by ``scale``, plus a residual mixture of four 1x1 convolutions whose
    weights an MLP reads from the sin-cos code of ``log(scale)``."""

    def __init__(self, dim: int, num_experts: int = 4):
        super().__init__()
        self.dim = dim
        self.experts = nn.ModuleList(nn.Conv2d(dim, dim, kernel_size=1) for _ in range(num_experts))
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim // 4), nn.GELU(), nn.Linear(dim // 4, num_experts)
        )
        self.temperature = nn.Parameter(torch.tensor(0.7))

    def forward(self, x: Tensor, scale: float) -> Tensor:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        code = sincos_1d(self.dim, torch.tensor([math.log(scale)])).to(x)
        weights = (self.mlp(code) / self.temperature.clamp(min=1e-3)).softmax(dim=-1)[0]
        return x + sum(weight * expert(x) for weight, expert in zip(weights, self.experts))


@dataclass
class StackedGrid(TokenGrid):
    """One token set of h x w per band group; maps stack the groups as channels (group-major)."""

    def to_map(self, tokens: Tensor) -> Tensor:
        batch, _, channels = tokens.shape
        grid = tokens[:, self.prefix :].reshape(batch, self.groups, -1, channels)
        return grid.permute(0, 1, 3, 2).reshape(
            batch, self.groups * channels, self.height, self.width
        )


@dataclass(frozen=True)
class BandGroup:
    """The channels of one token set and what codes them."""

    kind: str
    channels: tuple[int, ...]
    codes: tuple[float, ...] | tuple[str, ...]


def band_groups(bands: Sequence[str], encoder: str) -> list[BandGroup]:
    """Optical bands (by wavelength), then SAR bands (by polarisation), as PANGAEA orders them."""
    unknown = [b for b in bands if b not in WAVELENGTHS_NM and b not in POLARISATIONS]
    if unknown:
        raise UsageError(
            f"encoder '{encoder}': no RAMEN band code for {', '.join(unknown)}; known: "
            f"{', '.join([*WAVELENGTHS_NM, *POLARISATIONS])}"
        )
    optical = [i for i, b in enumerate(bands) if b in WAVELENGTHS_NM]
    sar = [i for i, b in enumerate(bands) if b in POLARISATIONS]
    groups = []
    if optical:
        groups.append(
            BandGroup("optical", tuple(optical), tuple(WAVELENGTHS_NM[bands[i]] for i in optical))
        )
    if sar:
        groups.append(BandGroup("sar", tuple(sar), tuple(POLARISATIONS[bands[i]] for i in sar)))
    return groups


class RamenTokens(nn.Module):
    """Per-pixel band projection, scale resampling, token norm, position and class token."""

    def __init__(
        self,
        encoder: str,
        bands: Sequence[str],
        embed_dim: int,
        input_res: float,
        res: float,
    ):
        super().__init__()
        self.encoder = encoder
        self.in_chans = len(bands)
        self.input_res = input_res
        self.res = res
        self.groups = band_groups(bands, encoder)
        kinds = {group.kind for group in self.groups}
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if "optical" in kinds:
            self.spectral_projector = SpectralProjector(embed_dim, embed_dim * 2)
        if "sar" in kinds:
            self.radar_projector = RadarProjector(embed_dim, embed_dim * 2)
        self.resampler = ScaleResampler(embed_dim)
        self.in_norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def _codes(self, group: BandGroup, like: Tensor) -> Tensor:
        if group.kind == "sar":
            return self.radar_projector(group.codes)
        return self.spectral_projector(torch.tensor(group.codes, device=like.device))

    def forward(self, x: dict[str, Tensor]) -> StackedGrid:
        image = modality_input(x, ALL_MODALITY, self.in_chans, 1, self.encoder)
        scale = self.input_res / self.res
        height, width = (int(s * scale) for s in image.shape[-2:])
        if height < 1 or width < 1:
            raise DataError(
                f"encoder '{self.encoder}': input {image.shape[-2]}x{image.shape[-1]} px at "
                f"input_res {self.input_res} gives no token at res {self.res}; feed at least "
                f"{math.ceil(self.res / self.input_res)} px"
            )
        parts = []
        for group in self.groups:
            codes = self._codes(group, image).to(image.dtype)
            features = torch.einsum("bchw,cd->bdhw", image[:, list(group.channels)], codes)
            features = self.resampler(features, scale)
            if features.shape[-2:] != (height, width):
                features = F.interpolate(features, size=(height, width), mode="bilinear")
            parts.append(self.in_norm(features.flatten(2).transpose(1, 2)))
        code = with_class_slot(sincos_2d(height, width, self.cls_token.shape[-1], self.res))
        code = code.to(image)
        tokens = torch.cat(parts, dim=1) + code[:, 1:].repeat(1, len(parts), 1)
        cls = (self.cls_token + code[:, :1]).expand(len(tokens), -1, -1)
        return StackedGrid(
            torch.cat([cls, tokens], dim=1), height, width, prefix=1, groups=len(parts)
        )


@dataclass(frozen=True)
class RamenRun:
    """Input size (None: the dataset's tile size, Cryo-Bench's ``${dataset.img_size}``), input
    and token GSD of Cryo-Bench's RAMEN run on one dataset, and where they were read."""

    input_size: int | None
    input_res: float
    res: float
    source: str


RAMEN_RUNS: dict[str, RamenRun] = {
    "glid": RamenRun(
        512,
        3.0,
        24.0,
        "Cryo-Bench pangaea-bench/outputs/2026-02-15/09-54-57, 2026-02-18/13-51-38 and "
        "13-53-05/.hydra/overrides.yaml",
    ),
    "sicd": RamenRun(
        128,
        40.0,
        80.0,
        "Cryo-Bench pangaea-bench/outputs/2026-02-16/13-45-35 (results/ramen_ai4arctic) and "
        "2026-02-21/*/.hydra/overrides.yaml",
    ),
}
DEFAULT_RUN = RamenRun(
    None,
    10.0,
    40.0,
    "Cryo-Bench configs/encoder/ramen_monotemporal.yaml defaults (input_size "
    "${dataset.img_size}); no saved run for this dataset",
)


def ramen_run_options(dataset) -> dict[str, object]:
    """Per-dataset options of the RAMEN spec: input size, GSDs and the token grid they give."""
    run = RAMEN_RUNS.get(dataset.key, DEFAULT_RUN)
    input_size = run.input_size or dataset.tile_size
    return {
        "input_size": input_size,
        "input_res": run.input_res,
        "res": run.res,
        "token_grid": token_grid(input_size, run.input_res, run.res),
        "run_source": run.source,
    }


def build_ramen(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    """RAMEN on every band the dataset has: one token set for optical, one for SAR bands, at
    the GSDs of Cryo-Bench's run on the mapping's dataset."""
    from cryotune.data.datasets import DATASETS

    size = build_size(spec, overrides)
    options = spec.options_for(DATASETS.get(mapping.dataset))
    embed = RamenTokens(
        spec.key,
        mapping.inputs[ALL_MODALITY],
        size.embed_dim,
        float(options["input_res"]),
        float(options["res"]),
    )
    layers = [
        Block(size.embed_dim, size.num_heads, mlp_ratio=4.0, qkv_bias=True)
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(
        spec.key,
        embed,
        layers,
        size.embed_dim,
        size.tapped_layers,
        (ALL_MODALITY,),
        head_norm=nn.LayerNorm(size.embed_dim, eps=1e-6),
    )
    encoder.out_channels = [size.embed_dim * len(embed.groups)] * len(encoder.taps)
    init_like_mae(encoder.layers)
    nn.init.trunc_normal_(embed.cls_token, std=0.02)
    return encoder


SPEC = EncoderSpec(
    key="ramen",
    family="ramen",
    title="RAMEN base: resolution-adjustable ViT-B over per-pixel band codes (any bands)",
    builder=build_ramen,
    input_size=512,
    patch_size=None,
    embed_dim=768,
    num_blocks=12,
    tapped_layers=(3, 5, 7, 11),
    bands=ANY_BANDS,
    weights_file="ramen_base_99.ckpt",
    weights_source="HF nicolashoudre/RAMEN (huggingface.co/nicolashoudre/RAMEN/resolve/main/"
    "ramen_base_99.ckpt)",
    published_params=89_900_000,
    params_source="derived (flagged): no count is published. RamenViT base (nicolashoudre/"
    "RAMEN pretraining/src/models/networks/encoder/RamenViT.py) = 12 ViT-B blocks (85.05M: "
    "the 86M ViT-B of Dosovitskiy et al. without its patch and position embeddings) + the "
    "spectral projector (2.36M) + the scale resampler (2.51M): 89.9M on optical bands; the "
    "SAR projector adds 2.37M, the multi-temporal L-TAE (not built) 3.7M",
    options=MappingProxyType(
        {"num_heads": 12, "input_res": 3.0, "res": 24.0, "token_grid": 64, "token_sets": 2}
    ),
    per_dataset=ramen_run_options,
)
