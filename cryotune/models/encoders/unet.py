"""The U-Net baseline's contracting path (PANGAEA topology 64, 128, 256, 512), from scratch.

It takes every dataset band (``ANY_BANDS``: one modality ``"all"``) and trains on full tiles. Max
pooling rounds up, so any tile size works (odd sizes, non-multiples of 16) and every pixel
reaches the bottleneck; the U-Net decoder aligns each up-sampled map to its skip connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import torch
from torch import Tensor, nn

from cryotune.data.bands import ALL_MODALITY, ANY_BANDS, BandMapping
from cryotune.models.decoders import double_conv
from cryotune.models.encoders.base import Encoder, modality_input
from cryotune.models.encoders.spec import EncoderSpec

TOPOLOGY = (64, 128, 256, 512)


class UNetEncoder(Encoder):
    """Double conv stem, then one (max-pool, double conv) step per level; one block per level."""

    is_pyramid = True
    modalities = (ALL_MODALITY,)

    def __init__(self, in_channels: int, topology: Sequence[int] = TOPOLOGY, key: str = "unet"):
        super().__init__()
        self.key = key
        self.in_channels = in_channels
        widths = [*topology, topology[-1]]
        self.stem = double_conv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(
                nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
                double_conv(widths[i], widths[i + 1]),
            )
            for i in range(len(topology))
        )
        self.out_channels = widths

    def blocks(self) -> list[nn.Module]:
        return [self.stem, *self.downs]

    def embeddings(self) -> list[nn.Module]:
        return []

    def head_norms(self) -> list[nn.Module]:
        return []

    def forward(self, x: dict[str, Tensor]) -> list[Tensor]:
        h = modality_input(x, ALL_MODALITY, self.in_channels, 1, self.key)
        frozen = self.frozen_prefix()
        grad = torch.is_grad_enabled()
        features = []
        for index, block in enumerate(self.blocks()):
            with torch.set_grad_enabled(grad and index >= frozen):
                h = block(h)
            features.append(h)
        return features


def build_unet(spec: EncoderSpec, mapping: BandMapping, **overrides) -> UNetEncoder:
    """EncoderSpec builder: input channels from the band mapping (every dataset band)."""
    return UNetEncoder(len(mapping.inputs[ALL_MODALITY]), key=spec.key, **overrides)


SPEC = EncoderSpec(
    key="unet",
    family="unet",
    title="U-Net baseline (64, 128, 256, 512), trained from scratch on all dataset bands",
    builder=build_unet,
    input_size=None,
    patch_size=None,
    embed_dim=TOPOLOGY[-1],
    num_blocks=len(TOPOLOGY) + 1,
    tapped_layers=tuple(range(len(TOPOLOGY) + 1)),
    bands=ANY_BANDS,
    weights_file=None,
    weights_source="none: trained from scratch",
    published_params=None,
    params_source="not published: Cryo-Bench and PANGAEA report no parameter count for it",
    pretrained=False,
    roster="baseline",
    options=MappingProxyType({"decoder": "unet"}),
)
