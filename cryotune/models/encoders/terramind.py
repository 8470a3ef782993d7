"""TerraMind v1 (large): a ViT-L with SwiGLU MLPs, no biases, and one patch embedding per
modality (S2L2A, S1GRD), as terratorch's ``TerraMindViT`` builds its raw-input encoder.

Modalities fed together are embedded side by side, attend jointly, and their feature maps
are averaged (``merge_method="mean"``, as Cryo-Bench configures it).
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import SwiGLU, resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import TokenGrid, ViTEncoder, modality_input
from cryotune.models.encoders.options import build_size, fed_modalities
from cryotune.models.encoders.position import sincos_2d
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import init_like_mae


class ImageEncoderEmbedding(nn.Module):
    """One modality: a bias-free linear projection of ``(p, p, C)`` patches, plus a fixed
    MoCo-v3 sin-cos position code (``pos_emb``) and a learned modality code (``mod_emb``)."""

    def __init__(self, num_channels: int, patch_size: int, dim: int, grid: tuple[int, int]):
        super().__init__()
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.grid = grid
        self.proj = nn.Linear(num_channels * patch_size * patch_size, dim, bias=False)
        self.register_buffer("pos_emb", sincos_2d(*grid, dim, rows_first=True).unsqueeze(0))
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mod_emb, std=0.02)

    def forward(self, image: Tensor) -> tuple[Tensor, int, int]:
        batch, channels, height, width = image.shape
        p = self.patch_size
        rows, cols = height // p, width // p
        patches = image.reshape(batch, channels, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1)
        tokens = self.proj(patches.reshape(batch, rows * cols, p * p * channels))
        code = resample_abs_pos_embed(self.pos_emb, [rows, cols], list(self.grid), 0)
        return tokens + code + self.mod_emb, rows, cols


class ModalityTokens(nn.Module):
    """Embeds each fed modality with its own ImageEncoderEmbedding and concatenates them."""

    def __init__(self, encoder: str, embeddings: dict[str, tuple[str, ImageEncoderEmbedding]]):
        super().__init__()
        self.encoder = encoder
        self.names = {modality: name for modality, (name, _) in embeddings.items()}
        self.encoder_embeddings = nn.ModuleDict({name: emb for name, emb in embeddings.values()})

    def forward(self, x: dict[str, Tensor]) -> TokenGrid:
        parts, rows, cols = [], 0, 0
        for modality, name in self.names.items():
            embedding = self.encoder_embeddings[name]
            image = modality_input(
                x, modality, embedding.num_channels, embedding.patch_size, self.encoder
            )
            tokens, rows, cols = embedding(image)
            parts.append(tokens)
        return TokenGrid(torch.cat(parts, dim=1), rows, cols, groups=len(parts))


def gated_mlp(in_features: int, hidden_features: int, **kwargs) -> SwiGLU:
    """TerraMind's GatedMlp: SwiGLU with 2/3 of the MLP width (``act(fc1 x) * fc3 x``)."""
    return SwiGLU(in_features, int(2 * hidden_features / 3), **kwargs)


def build_terramind(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    names = spec.option("modality_embeddings")
    grid = (spec.input_size // spec.patch_size,) * 2
    embeddings = {
        modality: (
            names[modality],
            ImageEncoderEmbedding(
                len(mapping.inputs[modality]), int(spec.patch_size), size.embed_dim, grid
            ),
        )
        for modality in fed_modalities(spec, mapping)
    }
    norm = partial(nn.LayerNorm, eps=1e-6, bias=False)
    layers = [
        Block(
            size.embed_dim,
            size.num_heads,
            mlp_ratio=4.0,
            qkv_bias=False,
            proj_bias=False,
            act_layer=nn.SiLU,
            norm_layer=norm,
            mlp_layer=gated_mlp,
        )
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(
        spec.key,
        ModalityTokens(spec.key, embeddings),
        layers,
        size.embed_dim,
        size.tapped_layers,
        tuple(embeddings),
        head_norm=norm(size.embed_dim),
    )
    init_like_mae(encoder.layers)
    return encoder
