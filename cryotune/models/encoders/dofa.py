"""DOFA ViT-B/16: a patch embedding whose weights a hypernetwork generates from wavelengths.

``DynamicMLPOFA``, ``TransformerWeightGenerator`` and ``FCResLayer`` follow the DOFA repo
(zhu-xlab/DOFA, ``Dynamic_MLP_OFA``) and keep its parameter names, so the official
checkpoint loads as is. Any band set works: each input channel's central wavelength (µm,
SAR 3.75) conditions the generated kernel for that channel.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.base import TokenGrid, ViTEncoder, modality_input
from cryotune.models.encoders.options import build_size, single_modality
from cryotune.models.encoders.position import sincos_1d, sincos_2d, with_class_slot
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.tokens import init_like_mae


class TransformerWeightGenerator(nn.Module):
    """A one-layer transformer over [128 weight tokens, wavelength codes, bias token]."""

    def __init__(self, input_dim: int, output_dim: int, embed_dim: int, num_heads: int = 4):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=input_dim, nhead=num_heads, activation="gelu", norm_first=False, dropout=0.0
        )
        self.transformer_encoder = nn.TransformerEncoder(
            layer, num_layers=1, enable_nested_tensor=False
        )
        self.fc_weight = nn.Linear(input_dim, output_dim)
        self.fc_bias = nn.Linear(input_dim, embed_dim)
        self.wt_num = 128
        self.weight_tokens = nn.Parameter(torch.empty(self.wt_num, input_dim))
        self.bias_token = nn.Parameter(torch.empty(1, input_dim))
        nn.init.normal_(self.weight_tokens, std=0.02)
        nn.init.normal_(self.bias_token, std=0.02)

    def forward(self, waves: Tensor) -> tuple[Tensor, Tensor]:
        sequence = torch.cat([self.weight_tokens, waves, self.bias_token], dim=0)
        out = self.transformer_encoder(sequence)
        weights = self.fc_weight(out[self.wt_num : -1] + waves)
        return weights, self.fc_bias(out[-1])


class FCResLayer(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.w1 = nn.Linear(size, size)
        self.w2 = nn.Linear(size, size)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class DynamicMLPOFA(nn.Module):
    """Generates a ``(D, C, k, k)`` patch kernel and bias from C wavelengths, then convolves."""

    scaler = 0.01

    def __init__(self, wv_planes: int, kernel_size: int, embed_dim: int):
        super().__init__()
        self.wv_planes = wv_planes
        self.kernel_size = kernel_size
        self.embed_dim = embed_dim
        self.weight_generator = TransformerWeightGenerator(
            wv_planes, kernel_size * kernel_size * embed_dim, embed_dim
        )
        self.fclayer = FCResLayer(wv_planes)
        for module in (self.weight_generator, self.fclayer):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.xavier_uniform_(sub.weight)
                    nn.init.constant_(sub.bias, 0.01)

    def forward(self, image: Tensor, wavelengths: Tensor) -> Tensor:
        waves = self.fclayer(sincos_1d(self.wv_planes, wavelengths * 1000))
        weight, bias = self.weight_generator(waves)
        kernel = weight.view(len(wavelengths), self.kernel_size, self.kernel_size, self.embed_dim)
        kernel = kernel.permute(3, 0, 1, 2) * self.scaler
        # padding=1 as in DOFA: with stride = kernel = 16 it keeps H/16 x W/16 patches
        out = F.conv2d(image, kernel, bias * self.scaler, stride=self.kernel_size, padding=1)
        return out.permute(0, 2, 3, 1)


class WavelengthTokens(nn.Module):
    """DOFA's embedding: dynamic patches, class token, fixed MAE sin-cos position code."""

    def __init__(
        self,
        encoder: str,
        modality: str,
        wavelengths: tuple[float, ...],
        embed_dim: int,
        patch_size: int,
        grid: tuple[int, int],
        wv_planes: int,
    ):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.patch_size = patch_size
        self.grid = grid
        self.patch_embed = DynamicMLPOFA(wv_planes, patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", with_class_slot(sincos_2d(*grid, embed_dim)))
        self.register_buffer("wavelengths", torch.tensor(wavelengths), persistent=False)

    def forward(self, x: dict[str, Tensor]) -> TokenGrid:
        image = modality_input(
            x, self.modality, len(self.wavelengths), self.patch_size, self.encoder
        )
        patches = self.patch_embed(image, self.wavelengths)
        batch, height, width, dim = patches.shape
        code = resample_abs_pos_embed(self.pos_embed, [height, width], list(self.grid))
        tokens = torch.cat(
            [
                (self.cls_token + code[:, :1]).expand(batch, -1, -1),
                patches.reshape(batch, height * width, dim) + code[:, 1:],
            ],
            dim=1,
        )
        return TokenGrid(tokens, height, width, prefix=1)


def build_dofa(spec: EncoderSpec, mapping: BandMapping, **overrides) -> ViTEncoder:
    size = build_size(spec, overrides)
    modality = single_modality(spec, mapping)
    grid = (spec.input_size // spec.patch_size,) * 2
    embed = WavelengthTokens(
        spec.key,
        modality,
        mapping.wavelengths[modality],
        size.embed_dim,
        int(spec.patch_size),
        grid,
        int(spec.option("wv_planes")),
    )
    norm = partial(nn.LayerNorm, eps=1e-6)
    layers = [
        Block(size.embed_dim, size.num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)
        for _ in range(size.depth)
    ]
    encoder = ViTEncoder(spec.key, embed, layers, size.embed_dim, size.tapped_layers, (modality,))
    init_like_mae(encoder.layers)
    nn.init.normal_(embed.cls_token, std=0.02)
    return encoder
