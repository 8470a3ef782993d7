"""Fixed sin-cos position codes of the published models (MAE, MoCo v3, Prithvi, Scale-MAE, DOFA),
and the ALiBi head slopes of the models that bias attention by distance instead (CROMA, THOR).

All codes follow MAE's 1-D code ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000^(-2k/dim)``;
they differ in how grid axes are assigned to halves of the channels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``(M, dim)`` code of M scalar positions (DOFA encodes wavelengths x 1000 with it)."""
    omega = torch.arange(dim // 2, dtype=torch.float32, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1).float()[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(
    height: int, width: int, dim: int, scale: float | Tensor = 1.0, rows_first: bool = False
) -> Tensor:
    """``(height * width, dim)`` code of a row-major grid.

    MAE puts the column code first; MoCo v3 (``rows_first=True``) the row code. ``scale``
    multiplies positions: Scale-MAE's ground-sample-distance-aware encoding.
    """
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    first, second = (rows, cols) if rows_first else (cols, rows)
    return torch.cat([sincos_1d(dim // 2, first * scale), sincos_1d(dim // 2, second * scale)], 1)


def sincos_3d(frames: int, height: int, width: int, dim: int) -> Tensor:
    """Prithvi's ``(frames * height * width, dim)`` code: 6/16 width, 6/16 height, 4/16 time."""
    spatial, temporal = dim // 16 * 6, dim // 16 * 4
    t, h, w = torch.meshgrid(
        torch.arange(frames, dtype=torch.float32),
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    return torch.cat([sincos_1d(spatial, w), sincos_1d(spatial, h), sincos_1d(temporal, t)], 1)


def with_class_slot(code: Tensor) -> Tensor:
    """``(1, 1 + N, dim)``: a zero code for the class token, then the grid (MAE's layout)."""
    return torch.cat([torch.zeros(1, code.shape[1], dtype=code.dtype), code], 0).unsqueeze(0)


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes (Press et al.): a geometric sequence from 2^(-8/heads),
    interleaved for head counts that are not powers of two."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]
