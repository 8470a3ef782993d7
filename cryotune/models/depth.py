"""Finetuning depth: how many trailing encoder blocks train, and what else trains with them.

``depth`` 0 freezes the encoder; ``depth == len(encoder.blocks())`` trains all of it. In between
only the last ``depth`` blocks train, plus the head norms that follow the last block; patch and
position embeddings and everything else before the trained blocks stay frozen. Frozen parts also
stay in eval mode (no dropout, drop-path or batch-norm statistics updates), so a frozen block
computes the same features in training and evaluation.
"""

from __future__ import annotations

from torch import nn

from cryotune.errors import UsageError


def check_depth(depth: int, num_blocks: int, flag: str = "--depth") -> int:
    """Returns depth if it is a valid block count, else a UsageError naming the flag and range."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= num_blocks:
        raise UsageError(
            f"{flag} {depth!r} is out of range: valid is 0..{num_blocks} "
            f"(0 = frozen encoder, {num_blocks} = full finetuning)"
        )
    return depth


def trainable_units(encoder: nn.Module, depth: int) -> list[nn.Module]:
    """The encoder modules that train below full depth: trailing blocks, then head norms."""
    blocks = encoder.blocks()
    check_depth(depth, len(blocks))
    if depth == 0:
        return []
    return [*blocks[len(blocks) - depth :], *encoder.head_norms()]


def apply_finetune_depth(encoder: nn.Module, depth: int) -> int:
    """Sets requires_grad for ``depth`` trailing blocks; returns the encoder's trainable params."""
    num_blocks = len(encoder.blocks())
    units = trainable_units(encoder, depth)
    full = depth == num_blocks
    encoder.requires_grad_(full)
    if not full:
        for unit in units:
            unit.requires_grad_(True)
    return count_trainable(encoder)


def hold_frozen_in_eval(encoder: nn.Module, depth: int) -> None:
    """After ``model.train()``: puts the frozen part of the encoder back in eval mode."""
    if depth == len(encoder.blocks()) or not encoder.training:
        return
    encoder.eval()
    for unit in trainable_units(encoder, depth):
        unit.train()


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
