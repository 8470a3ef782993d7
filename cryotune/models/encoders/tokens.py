"""Patch-token embedding shared by the ViT-like encoders, and MAE's weight initialisation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import PatchEmbed, resample_abs_pos_embed
from torch import Tensor, nn

from cryotune.models.encoders.base import TokenGrid, modality_input


def grid_patch_embed(img_size: int | None, patch_size: int, in_chans: int, dim: int) -> PatchEmbed:
    """A ViT patch projection returning an NHWC token grid at any input size (tiles are not
    always the pretraining size)."""
    return PatchEmbed(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=dim,
        strict_img_size=False,
        output_fmt="NHWC",
    )


class PatchTokens(nn.Module):
    """One modality's patches -> tokens: patch embedding, class token, position code, pre-norm.

    ``patch_embed`` maps ``(B, C, H, W)`` to ``(B, h, w, D)``. A stored ``pos_embed`` (a learned
    Parameter, or a fixed sin-cos tensor kept as a buffer so that full finetuning leaves it
    fixed) is built for ``grid`` and resampled bicubically to other grids; ``position(h, w)``
    instead computes the code per grid (Scale-MAE).
    """

    def __init__(
        self,
        encoder: str,
        modality: str,
        in_chans: int,
        patch_size: int,
        patch_embed: nn.Module,
        grid: tuple[int, int],
        cls_token: nn.Parameter | None = None,
        pos_embed: Tensor | None = None,
        position: Callable[[int, int], Tensor] | None = None,
        norm_pre: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.grid = tuple(grid)
        self.patch_embed = patch_embed
        self.cls_token = cls_token
        if pos_embed is None or isinstance(pos_embed, nn.Parameter):
            self.pos_embed = pos_embed
        else:
            self.register_buffer("pos_embed", pos_embed)
        self.position = position
        self.norm_pre = norm_pre if norm_pre is not None else nn.Identity()

    @property
    def prefix(self) -> int:
        return 0 if self.cls_token is None else 1

    def position_code(self, height: int, width: int) -> Tensor | None:
        if self.position is not None:
            return self.position(height, width)
        if self.pos_embed is None:
            return None
        return resample_abs_pos_embed(
            self.pos_embed, [height, width], list(self.grid), num_prefix_tokens=self.prefix
        )

    def forward(self, x: dict[str, Tensor]) -> TokenGrid:
        image = modality_input(x, self.modality, self.in_chans, self.patch_size, self.encoder)
        patches = self.patch_embed(image)
        batch, height, width, dim = patches.shape
        tokens = patches.reshape(batch, height * width, dim)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        code = self.position_code(height, width)
        if code is not None:
            tokens = tokens + code.to(tokens)
        return TokenGrid(self.norm_pre(tokens), height, width, prefix=self.prefix)


def init_like_mae(module: nn.Module) -> None:
    """MAE's initialisation (Prithvi, Scale-MAE, DOFA, TerraMind follow it): xavier-uniform
    linear layers and patch projections, zero biases, unit norms, class tokens N(0, 0.02)."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm) and sub.elementwise_affine:
            nn.init.ones_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, (nn.Conv2d, nn.Conv3d)) and name.endswith("proj"):
            nn.init.xavier_uniform_(sub.weight.view(sub.weight.shape[0], -1))
    for name, param in module.named_parameters():
        if name.endswith("cls_token"):
            nn.init.normal_(param, std=0.02)
