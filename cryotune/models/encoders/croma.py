"""CROMA ViT-L (Fuller et al., NeurIPS 2023): separate optical (12 S2 bands) and SAR (VV, VH)
encoders and a joint encoder that cross-attends from SAR to optical tokens, all biased by
2-D ALiBi (a per-head penalty growing with the patch distance) instead of position codes.

The modules keep the names of the official code (antofuller/CROMA ``main_croma.py``, as
PANGAEA's ``croma_encoder.py`` copies it), so ``CROMA_large.pt`` loads as is. The variant
follows the dataset: optical data runs the optical encoder, SAR data the SAR encoder, and data
with both the joint path (PANGAEA's ``croma_optical`` / ``croma_sar`` / ``croma_joint``).

Depth unit: the 12 layers the taps (3, 5, 7, 11) read, in every variant. The optical encoder
has 24 layers; alone, only its first 12 feed a tapped layer, so the optical variant builds
those 12 and the checkpoint layout drops the other 12 on loading. The joint variant's optical
(all 24 layers) and SAR encoders run whole in front of the joint layers and, like a patch
embedding, train only at full depth.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.errors import DataError
from cryotune.models.encoders.base import Encoder, check_taps, modality_input
from cryotune.models.encoders.options import build_size, fed_modalities
from cryotune.models.encoders.position import alibi_slopes
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import init_like_mae

OPTICAL_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
SAR_BANDS = ("VV", "VH")
PATCH_SIZE = 8


def alibi_2d(
    num_heads: int, height: int, width: int, device: torch.device | str | None = None
) -> Tensor:
    """``(1, heads, N, N)`` bias ``-slope * euclidean distance`` between the patches of a
    row-major ``height x width`` grid (CROMA's ``get_2dalibi``, for any grid)."""
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    points = torch.stack([rows.flatten(), cols.flatten()], dim=1)
    distance = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    slopes = torch.tensor(alibi_slopes(num_heads), device=device).view(num_heads, 1, 1)
    return (-slopes * distance).unsqueeze(0)


def _heads(t: Tensor, num_heads: int) -> Tensor:
    batch, tokens, dim = t.shape
    return t.view(batch, tokens, num_heads, dim // num_heads).transpose(1, 2)


def _merge(t: Tensor) -> Tensor:
    batch, heads, tokens, dim = t.shape
    return t.transpose(1, 2).reshape(batch, tokens, heads * dim)


class Attention(nn.Module):
    """Pre-norm self-attention with an additive position bias; bias-free qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.input_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        q, k, v = (_heads(t, self.num_heads) for t in self.to_qkv(self.input_norm(x)).chunk(3, -1))
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=bias)))


class CrossAttention(nn.Module):
    """Pre-norm cross-attention (one norm for queries and context), biased like Attention."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.input_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor, bias: Tensor) -> Tensor:
        x, context = self.input_norm(x), self.input_norm(context)
        q = _heads(self.to_q(x), self.num_heads)
        k = _heads(self.to_k(context), self.num_heads)
        v = _heads(self.to_v(context), self.num_heads)
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=bias)))


class FFN(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(0.0), nn.Linear(dim * mult, dim)
        )
        self.input_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.input_norm(x))


class SelfAttentionLayer(nn.ModuleList):
    """``[Attention, FFN]`` with residuals: a ModuleList, as the official key names need."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__([Attention(dim, num_heads), FFN(dim)])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        attention, ffn = self
        x = attention(x, bias) + x
        return ffn(x) + x


class CrossAttentionLayer(nn.ModuleList):
    """``[Attention, CrossAttention, FFN]``: SAR tokens attend to themselves, then to optical."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__([Attention(dim, num_heads), CrossAttention(dim, num_heads), FFN(dim)])

    def forward(self, x: Tensor, bias: Tensor, context: Tensor) -> Tensor:
        attention, cross, ffn = self
        x = attention(x, bias) + x
        x = cross(x, context, bias) + x
        return ffn(x) + x


class BaseTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int):
        super().__init__()
        self.layers = nn.ModuleList(SelfAttentionLayer(dim, num_heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim)


class ViT(nn.Module):
    """One modality's encoder: a linear projection of ``(C, 8, 8)`` patches, then layers."""

    def __init__(self, dim: int, depth: int, in_channels: int, num_heads: int):
        super().__init__()
        self.in_channels = in_channels
        self.linear_input = nn.Linear(PATCH_SIZE * PATCH_SIZE * in_channels, dim)
        self.transformer = BaseTransformer(dim, depth, num_heads)

    def embed(self, image: Tensor) -> Tensor:
        batch, channels, height, width = image.shape
        rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
        patches = image.reshape(batch, channels, rows, PATCH_SIZE, cols, PATCH_SIZE)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, -1)
        return self.linear_input(patches)

    def encode(self, image: Tensor, bias: Tensor) -> Tensor:
        """The whole encoder, final norm included (the joint variant's inputs)."""
        tokens = self.embed(image)
        for layer in self.transformer.layers:
            tokens = layer(tokens, bias)
        return self.transformer.norm_out(tokens)


class BaseTransformerCrossAttn(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int):
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, num_heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim)


class CromaEncoder(Encoder):
    """CROMA's optical, SAR or joint path, tapped at the first ``depth`` layers it runs."""

    is_pyramid = False

    def __init__(
        self,
        key: str,
        modalities: tuple[str, ...],
        embed_dim: int,
        depth: int,
        num_heads: int,
        tapped_layers: tuple[int, ...],
    ):
        super().__init__()
        self.key = key
        self.modalities = modalities
        self.num_heads = num_heads
        self.depth = depth
        self.taps = check_taps(tapped_layers, depth, key)
        self.out_channels = [embed_dim] * len(self.taps)
        if "sar" in modalities:
            self.s1_encoder = ViT(embed_dim, depth, len(SAR_BANDS), num_heads)
        if "optical" in modalities:
            optical_depth = 2 * depth if len(modalities) == 2 else depth
            self.s2_encoder = ViT(embed_dim, optical_depth, len(OPTICAL_BANDS), num_heads)
        if len(modalities) == 2:
            self.joint_encoder = BaseTransformerCrossAttn(embed_dim, depth, num_heads)

    @property
    def joint(self) -> bool:
        return len(self.modalities) == 2

    def _single(self) -> ViT:
        """The optical or SAR encoder that a one-modality variant runs."""
        return self.s2_encoder if self.modalities == ("optical",) else self.s1_encoder

    def _stack(self) -> nn.Module:
        """The module whose ``layers`` and ``norm_out`` produce the tapped maps."""
        return self.joint_encoder if self.joint else self._single().transformer

    def blocks(self) -> list[nn.Module]:
        return list(self._stack().layers[: self.depth])

    def embeddings(self) -> list[nn.Module]:
        if self.joint:
            return [self.s1_encoder, self.s2_encoder]
        return [self._single().linear_input]

    def head_norms(self) -> list[nn.Module]:
        return [self._stack().norm_out]

    def _images(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        channels = {"optical": len(OPTICAL_BANDS), "sar": len(SAR_BANDS)}
        images = {
            m: modality_input(x, m, channels[m], PATCH_SIZE, self.key) for m in self.modalities
        }
        sizes = {tuple(image.shape[-2:]) for image in images.values()}
        if len(sizes) > 1:
            raise DataError(
                f"encoder '{self.key}': optical and SAR inputs must share one size, got "
                f"{ {m: tuple(i.shape[-2:]) for m, i in images.items()} }"
            )
        return images

    def forward(self, x: dict[str, Tensor]) -> list[Tensor]:
        images = self._images(x)
        first = next(iter(images.values()))
        height, width = (s // PATCH_SIZE for s in first.shape[-2:])
        bias = alibi_2d(self.num_heads, height, width, first.device).to(first.dtype)
        frozen = self.frozen_prefix()
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen == 0):
            if self.joint:
                context = self.s2_encoder.encode(images["optical"], bias)
                tokens = self.s1_encoder.encode(images["sar"], bias)
                kwargs = {"context": context}
            else:
                tokens = self._single().embed(images[self.modalities[0]])
                kwargs = {}
        stack = self._stack()
        maps = []
        for index, layer in enumerate(stack.layers[: self.taps[-1] + 1]):
            with torch.set_grad_enabled(grad and index >= frozen):
                tokens = layer(tokens, bias, **kwargs)
                if index in self.taps:
                    out = stack.norm_out(tokens) if index == self.taps[-1] else tokens
                    maps.append(out.transpose(1, 2).reshape(len(out), -1, height, width))
        return maps


def build_croma(spec: EncoderSpec, mapping: BandMapping, **overrides) -> CromaEncoder:
    """The optical, SAR or joint CROMA encoder for the modalities the mapping feeds."""
    size = build_size(spec, overrides)
    encoder = CromaEncoder(
        spec.key,
        tuple(fed_modalities(spec, mapping)),
        size.embed_dim,
        size.depth,
        size.num_heads,
        size.tapped_layers,
    )
    init_like_mae(encoder)
    return encoder


SPEC = EncoderSpec(
    key="croma",
    family="croma",
    title="CROMA ViT-L/8: 2-D ALiBi attention; optical, SAR or joint radar-optical encoder",
    builder=build_croma,
    input_size=120,
    patch_size=PATCH_SIZE,
    embed_dim=1024,
    num_blocks=12,
    tapped_layers=(3, 5, 7, 11),
    bands=MappingProxyType({"optical": OPTICAL_BANDS, "sar": SAR_BANDS}),
    weights_file="CROMA_large.pt",
    weights_source="HF antofuller/CROMA (huggingface.co/antofuller/CROMA/resolve/main/"
    "CROMA_large.pt)",
    published_params=656_000_000,
    params_source="derived (flagged): no total is published. CROMA-L (Fuller et al., NeurIPS "
    "2023; antofuller/CROMA main_croma.py) = a ViT-L optical encoder (24 layers, 304M as MAE "
    "and EVA-02 list ViT-L), a SAR encoder of half its layers (152M) and 12 joint layers of "
    "ViT-L width that add a 4.2M cross-attention each (200M): 656M for the joint encoder the "
    "declared bands build; the optical path alone is the 304M ViT-L",
    options=MappingProxyType({"num_heads": 16}),
)
