"""Sliding-window inference over a whole tile or scene, as Cryo-Bench evaluates val and test.

Encoders take a fixed input size; tiles and scenes are larger (or, for some datasets, smaller).
Windows of the input size sit on an evenly spaced grid of ceil(H/size) x ceil(W/size) origins from
the top-left to the bottom-right corner, so neighbours overlap when the size does not divide the
tile; overlapping logits are averaged. Inputs smaller than the window are zero-padded (zero is the
band mean after normalisation) and the padding is cropped off the result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def window_origins(length: int, window: int) -> list[int]:
    """Evenly spaced window starts covering ``length`` with ceil(length / window) windows."""
    if length <= window:
        return [0]
    count = math.ceil(length / window)
    return torch.linspace(0, length - window, count).round().long().tolist()


def sliding_window_logits(
    model: nn.Module,
    inputs: dict[str, torch.Tensor],
    window: int | None,
    num_classes: int,
    max_batch: int | None = None,
) -> torch.Tensor:
    """(B, K, H, W) logits for (B, C, H, W) inputs; ``window=None`` runs the whole input at once.

    ``max_batch`` bounds how many windows go through the model together (default: all of them).
    """
    if not inputs:
        raise ValueError("inputs holds no modality")
    shapes = {tuple(t.shape[-2:]) for t in inputs.values()}
    if len(shapes) != 1:
        raise ValueError(f"modalities differ in height/width: {sorted(shapes)}")
    first = next(iter(inputs.values()))
    batch = first.shape[0]
    height, width = shapes.pop()

    if window is None:
        logits = model(inputs)
        _check_logits(logits, batch, num_classes, height, width)
        return logits.float()

    pad_h, pad_w = max(0, window - height), max(0, window - width)
    if pad_h or pad_w:
        inputs = {k: F.pad(v, (0, pad_w, 0, pad_h)) for k, v in inputs.items()}
    full_h, full_w = height + pad_h, width + pad_w
    origins = [
        (y, x) for y in window_origins(full_h, window) for x in window_origins(full_w, window)
    ]

    crops = {
        k: torch.cat([v[..., y : y + window, x : x + window] for y, x in origins], dim=0)
        for k, v in inputs.items()
    }
    total = batch * len(origins)
    step = max_batch or total
    pieces = []
    for start in range(0, total, step):
        chunk = {k: v[start : start + step] for k, v in crops.items()}
        logits = model(chunk)
        _check_logits(logits, logits.shape[0], num_classes, window, window)
        pieces.append(logits.float())
    window_logits = torch.cat(pieces, dim=0).view(len(origins), batch, num_classes, window, window)

    summed = first.new_zeros((batch, num_classes, full_h, full_w), dtype=torch.float32)
    counts = first.new_zeros((1, 1, full_h, full_w), dtype=torch.float32)
    for (y, x), logits in zip(origins, window_logits):
        summed[..., y : y + window, x : x + window] += logits
        counts[..., y : y + window, x : x + window] += 1
    return (summed / counts)[..., :height, :width]


def _check_logits(logits: torch.Tensor, batch: int, classes: int, height: int, width: int) -> None:
    expected = (batch, classes, height, width)
    if tuple(logits.shape) != expected:
        raise ValueError(
            f"model returned logits of shape {tuple(logits.shape)}, expected {expected}"
        )
