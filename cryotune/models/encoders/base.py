"""The Encoder contract and the one forward loop every ViT-like encoder shares.

A ViT-like encoder is an ``embed`` module (patch and position embeddings: input dict ->
TokenGrid), a stack of ``layers`` (the blocks, the unit of finetuning depth) and an optional
``head_norm`` applied to the last block's output. The loop runs the leading blocks whose
parameters are frozen, with everything before them, under ``torch.no_grad()``: partial
finetuning then stores no activations for the frozen part.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cryotune.errors import DataError, UsageError


class Encoder(nn.Module, ABC):
    """Maps inputs per modality to feature maps ``(B, C_i, h_i, w_i)`` of the tapped layers.

    ``modalities`` names the input keys it reads; ``weights_variant`` names the checkpoint
    variant it needs (``"sar"`` for SSL4EO-MAE's SAR encoder), None for the spec's own file.
    """

    out_channels: list[int]
    is_pyramid: bool
    modalities: tuple[str, ...]
    weights_variant: str | None = None

    @abstractmethod
    def blocks(self) -> list[nn.Module]:
        """The depth unit, in forward order."""

    @abstractmethod
    def embeddings(self) -> list[nn.Module]:
        """Patch and position embeddings: they train only at full depth."""

    def head_norms(self) -> list[nn.Module]:
        """Norms applied after the last block; they train with it."""
        return []

    @abstractmethod
    def forward(self, x: dict[str, Tensor]) -> list[Tensor]: ...

    def frozen_prefix(self) -> int:
        """How many leading blocks are frozen along with every parameter before them."""
        blocks = self.blocks()
        inside = {id(p) for m in [*blocks, *self.head_norms()] for p in m.parameters()}
        if any(p.requires_grad for p in self.parameters() if id(p) not in inside):
            return 0
        count = 0
        for block in blocks:
            if any(p.requires_grad for p in block.parameters()):
                break
            count += 1
        return count


@dataclass
class TokenGrid:
    """Tokens ``(B, N, C)``: ``prefix`` tokens (class token), then ``groups`` grids of h x w.

    ``groups`` > 1 when several modalities are embedded side by side (TerraMind); their maps
    are averaged, as TerraMind's ``merge_method="mean"`` does. ``block_kwargs`` go to every
    block (BEiT's shared relative position bias).
    """

    tokens: Tensor
    height: int
    width: int
    prefix: int = 0
    groups: int = 1
    block_kwargs: dict[str, Tensor] = field(default_factory=dict)

    def to_map(self, tokens: Tensor) -> Tensor:
        grid = tokens[:, self.prefix :]
        batch, _, channels = grid.shape
        grid = grid.reshape(batch, self.groups, self.height * self.width, channels).mean(1)
        return grid.transpose(1, 2).reshape(batch, channels, self.height, self.width)


def modality_input(
    x: Mapping[str, Tensor], modality: str, channels: int, patch_size: int, encoder: str
) -> Tensor:
    """The ``(B, C, H, W)`` input of one modality, checked against what the encoder was built for."""
    if modality not in x:
        raise DataError(
            f"encoder '{encoder}' reads modality '{modality}' but got {sorted(x)}; "
            "feed it through the BandMapping it was built for"
        )
    image = x[modality]
    if image.ndim != 4 or image.shape[1] != channels:
        raise DataError(
            f"encoder '{encoder}' expects {modality} input (B, {channels}, H, W), "
            f"got {tuple(image.shape)}"
        )
    height, width = image.shape[-2:]
    if height % patch_size or width % patch_size:
        raise DataError(
            f"encoder '{encoder}': input {height}x{width} px is not a multiple of its patch "
            f"size {patch_size}; crop to a multiple of {patch_size}"
        )
    return image


def check_taps(tapped_layers: Sequence[int], depth: int, encoder: str) -> tuple[int, ...]:
    taps = tuple(sorted(set(tapped_layers)))
    if not taps or taps[0] < 0 or taps[-1] >= depth:
        raise UsageError(
            f"encoder '{encoder}': tapped layers {list(tapped_layers)} must lie in 0..{depth - 1} "
            f"for {depth} blocks"
        )
    return taps


class ViTEncoder(Encoder):
    """A plain (non-pyramid) ViT-like encoder: embed -> layers -> tapped maps at one scale.

    ``head_norm`` applies to the last block's output, or with ``norm_every_tap`` to every
    tapped layer's (THOR as Cryo-Bench taps it, ``forward_intermediates(norm=True)``).
    """

    is_pyramid = False

    def __init__(
        self,
        key: str,
        embed: nn.Module,
        layers: Sequence[nn.Module],
        embed_dim: int,
        tapped_layers: Sequence[int],
        modalities: Sequence[str],
        head_norm: nn.Module | None = None,
        weights_variant: str | None = None,
        norm_every_tap: bool = False,
    ):
        super().__init__()
        self.key = key
        self.embed = embed
        self.layers = nn.ModuleList(layers)
        self.head_norm = head_norm
        self.taps = check_taps(tapped_layers, len(self.layers), key)
        normed = self.taps if norm_every_tap else (len(self.layers) - 1,)
        self.normed_taps = frozenset(normed if head_norm is not None else ())
        self.out_channels = [embed_dim] * len(self.taps)
        self.modalities = tuple(modalities)
        self.weights_variant = weights_variant

    def blocks(self) -> list[nn.Module]:
        return list(self.layers)

    def embeddings(self) -> list[nn.Module]:
        return [self.embed]

    def head_norms(self) -> list[nn.Module]:
        return [self.head_norm] if self.head_norm is not None else []

    def forward(self, x: dict[str, Tensor]) -> list[Tensor]:
        frozen = self.frozen_prefix()
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen == 0):
            grid = self.embed(x)
        tokens = grid.tokens
        maps = []
        for index, layer in enumerate(self.layers[: self.taps[-1] + 1]):
            with torch.set_grad_enabled(grad and index >= frozen):
                tokens = layer(tokens, **grid.block_kwargs)
                if index in self.taps:
                    out = self.head_norm(tokens) if index in self.normed_taps else tokens
                    maps.append(grid.to_map(out))
        return maps
