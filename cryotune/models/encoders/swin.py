"""What SatlasNet's and GFM's Swin-B encoders share: a pyramid of four stages whose depth unit is
one Swin block, the patch merging that opens a stage riding with that stage's first block.

Each builder registers the module tree of its official implementation (torchvision's
``features`` for SatlasNet, Microsoft Swin's ``patch_embed`` / ``layers`` for GFM), so
checkpoint names carry over; the encoder runs that tree unit by unit and taps each tapped stage
after its last unit (``widths[i]`` channels at stride ``patch * 2**i``) or, with
``merged_taps`` (GFM-Swin, as PANGAEA), after the patch merging that follows it
(``widths[i + 1]`` at stride ``patch * 2**(i + 1)``; the last stage as it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cryotune.data.bands import BandMapping
from cryotune.errors import UsageError
from cryotune.models.encoders.base import Encoder, modality_input
from cryotune.models.encoders.options import check_overrides, single_modality
from cryotune.models.encoders.spec import EncoderSpec


@dataclass(frozen=True)
class SwinSize:
    """Stage-0 width, blocks and heads per stage, tapped stages: the spec's or a test's."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    tapped_stages: tuple[int, ...]

    @property
    def widths(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]


def _per_stage(value: object, stages: int, doubling: bool) -> tuple[int, ...]:
    if isinstance(value, int):
        return tuple(value * 2**i if doubling else value for i in range(stages))
    return tuple(int(v) for v in value)


def swin_size(spec: EncoderSpec, overrides: Mapping[str, object]) -> SwinSize:
    """The spec's Swin geometry with test overrides: ``depth`` and ``num_heads`` are per-stage
    sequences or one int (``num_heads`` then doubles per stage, as Swin's heads do)."""
    check_overrides(spec, overrides)
    default_depths = tuple(spec.option("depths"))
    stages = len(default_depths)
    depths = _per_stage(overrides.get("depth", default_depths), stages, doubling=False)
    heads = _per_stage(overrides.get("num_heads", spec.option("num_heads")), stages, doubling=True)
    if len(depths) != stages or len(heads) != stages or min(depths) < 1:
        raise UsageError(
            f"encoder '{spec.key}': depth {list(depths)} and num_heads {list(heads)} need "
            f"{stages} stages of at least one block"
        )
    taps = tuple(sorted(set(overrides.get("tapped_layers", spec.tapped_layers))))
    if not taps or taps[0] < 0 or taps[-1] >= stages:
        raise UsageError(
            f"encoder '{spec.key}': tapped stages {list(taps)} must lie in 0..{stages - 1}"
        )
    return SwinSize(int(overrides.get("embed_dim", spec.embed_dim)), depths, heads, taps)


class SwinUnit(nn.Module):
    """One depth unit: a Swin block on NHWC tokens, after the stage's patch merging if it opens
    a stage. A container: the encoder runs ``merge`` and ``block`` itself, since a merged tap
    is read between them."""

    def __init__(self, block: nn.Module, merge: nn.Module | None = None):
        super().__init__()
        self.merge = merge
        self.block = block


@dataclass(frozen=True)
class SwinLayout:
    """References into the registered tree: held outside the module registry so that the
    state dict keeps the official names only once."""

    embed: nn.Module
    units: tuple[SwinUnit, ...]
    stage_ends: tuple[int, ...]


class SwinEncoder(Encoder):
    """Base of the Swin pyramids: subclasses register their official tree, then ``arrange``."""

    is_pyramid = True

    def __init__(
        self,
        key: str,
        spec: EncoderSpec,
        mapping: BandMapping,
        size: SwinSize,
        merged_taps: bool = False,
    ):
        """``merged_taps``: tap each stage after the patch merging that follows it (PANGAEA's
        GFM-Swin: the last stage, which has none, is tapped as it is)."""
        super().__init__()
        self.key = key
        self.modality = single_modality(spec, mapping)
        self.modalities = (self.modality,)
        self.in_chans = len(mapping.inputs[self.modality])
        self.patch_size = int(spec.patch_size)
        self.size = size
        self.taps = size.tapped_stages
        self.merged_taps = merged_taps
        last = len(size.depths) - 1
        self.out_channels = [size.widths[min(i + 1, last) if merged_taps else i] for i in self.taps]

    def arrange(
        self, embed: nn.Module, stages: Sequence[tuple[nn.Module | None, Sequence[nn.Module]]]
    ) -> None:
        """``stages``: per stage, the patch merging that opens it (None for the first) and its
        blocks, all modules of the registered tree."""
        units: list[SwinUnit] = []
        ends = []
        for merge, blocks in stages:
            units += [SwinUnit(block, merge if i == 0 else None) for i, block in enumerate(blocks)]
            ends.append(len(units) - 1)
        self._layout = SwinLayout(embed, tuple(units), tuple(ends))

    def blocks(self) -> list[nn.Module]:
        return list(self._layout.units)

    def embeddings(self) -> list[nn.Module]:
        return [self._layout.embed]

    def forward(self, x: dict[str, Tensor]) -> list[Tensor]:
        image = modality_input(x, self.modality, self.in_chans, self.patch_size, self.key)
        frozen = self.frozen_prefix()
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen == 0):
            tokens = self._layout.embed(image)
        ends = self._layout.stage_ends
        taps = {ends[i] for i in self.taps}
        after_merge = {ends[i] for i in self.taps if self.merged_taps and i < len(ends) - 1}
        last = max(taps) + (1 if max(taps) in after_merge else 0)
        maps = []
        for index, unit in enumerate(self._layout.units[: last + 1]):
            with torch.set_grad_enabled(grad and index >= frozen):
                if unit.merge is not None:
                    tokens = unit.merge(tokens)
                    if index - 1 in after_merge:
                        maps.append(tokens.permute(0, 3, 1, 2).contiguous())
                if index > max(taps):
                    break
                tokens = unit.block(tokens)
            if index in taps - after_merge:
                maps.append(tokens.permute(0, 3, 1, 2).contiguous())
        return maps
