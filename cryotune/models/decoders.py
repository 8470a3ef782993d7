"""Segmentation decoders: UPerNet (with a rescaling neck for plain ViTs) and the U-Net decoder.

UPerNet follows PANGAEA-bench, which Cryo-Bench forks: 512 channels, pool scales 1, 2, 3, 6,
dropout 0.1 before the classifier. Plain ViTs yield one resolution; the neck turns their tapped
layers into a pyramid (x4, x2, x1, x0.5) the way PANGAEA's Feature2Pyramid does. Every decoder
maps a list of encoder feature maps (fine to coarse) to logits at the requested (H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cryotune.errors import UnknownNameError

UPERNET_CHANNELS = 512
POOL_SCALES = (1, 2, 3, 6)
DROPOUT = 0.1
NECK_SCALES = (4.0, 2.0, 1.0, 0.5)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def neck_scales(num_layers: int) -> tuple[float, ...]:
    """PANGAEA's rescale per tapped layer: four layers get x4, x2, x1, x0.5; fewer share them."""
    return tuple(NECK_SCALES[int(i / num_layers * len(NECK_SCALES))] for i in range(num_layers))


NECK_POOLS = ("floor", "ceil")
"""Rounding of the neck's x0.5 max-pool: PANGAEA floors (a 15x15 map gives 7x7); ``ceil`` keeps
the last row and column of odd maps (8x8) and a 1x1 map at 1x1."""


def _rescale_op(channels: int, scale: float, pool: str = "floor") -> nn.Module:
    if scale == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
        )
    if scale == 2:
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    if scale == 1:
        return nn.Identity()
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=pool == "ceil")
    raise ValueError(f"neck scale {scale} is not one of {NECK_SCALES}")


class ViTNeck(nn.Module):
    """Turns same-resolution ViT feature maps into a pyramid: up-convolutions and max-pooling."""

    def __init__(self, channels: Sequence[int], scales: Sequence[float], pool: str = "floor"):
        super().__init__()
        if len(channels) != len(scales):
            raise ValueError(f"{len(channels)} feature maps but {len(scales)} neck scales")
        if pool not in NECK_POOLS:
            raise ValueError(f"neck pool {pool!r} is not one of {NECK_POOLS}")
        self.scales = tuple(scales)
        self.pool = pool
        self.ops = nn.ModuleList(_rescale_op(c, s, pool) for c, s in zip(channels, scales))

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [op(f) for op, f in zip(self.ops, features)]


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling on the coarsest map, fused back by a 3x3 conv."""

    def __init__(self, in_channels: int, channels: int, pool_scales: Sequence[int]):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), *_conv_bn_relu(in_channels, channels, 1))
            for s in pool_scales
        )
        self.bottleneck = _conv_bn_relu(in_channels + len(pool_scales) * channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        pooled = [_resize(stage(x), x.shape[-2:]) for stage in self.stages]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class UPerNet(nn.Module):
    """UPerNet head (PPM on the coarsest level + FPN); a neck first for non-pyramid encoders."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        is_pyramid: bool,
        channels: int = UPERNET_CHANNELS,
        pool_scales: Sequence[int] = POOL_SCALES,
        dropout: float = DROPOUT,
        neck_pool: str = "floor",
    ):
        super().__init__()
        if not in_channels:
            raise ValueError("UPerNet needs at least one feature map")
        self.in_channels = list(in_channels)
        self.neck = (
            None if is_pyramid else ViTNeck(in_channels, neck_scales(len(in_channels)), neck_pool)
        )
        self.ppm = PyramidPooling(in_channels[-1], channels, pool_scales)
        self.lateral_convs = nn.ModuleList(_conv_bn_relu(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(
            _conv_bn_relu(channels, channels, 3) for _ in in_channels[:-1]
        )
        self.fpn_bottleneck = _conv_bn_relu(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, features: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"UPerNet built for {len(self.in_channels)} feature maps, got {len(features)}"
            )
        if self.neck is not None:
            features = self.neck(features)
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features)]
        laterals.append(self.ppm(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]
        outs.append(laterals[-1])
        finest = outs[0].shape[-2:]
        fused = self.fpn_bottleneck(torch.cat([_resize(o, finest) for o in outs], dim=1))
        return _resize(self.classifier(self.dropout(fused)), size)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """(3x3 conv, batch norm, ReLU) twice: the U-Net building block of both paths."""
    return nn.Sequential(
        *_conv_bn_relu(in_channels, out_channels, 3),
        *_conv_bn_relu(out_channels, out_channels, 3),
    )


def _align(x: Tensor, size: Sequence[int]) -> Tensor:
    """Pads, or crops with negative padding, x to the skip map's size, split over both sides."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class UNetUp(nn.Module):
    """One U-Net up step: transposed conv x2, align to the skip, concatenate, double conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2)
        self.conv = double_conv(in_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = _align(self.up(x), skip.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


class UNetDecoder(nn.Module):
    """The U-Net expanding path over the encoder's maps, fine to coarse (PANGAEA's topology)."""

    def __init__(self, in_channels: Sequence[int], num_classes: int):
        super().__init__()
        if len(in_channels) < 2:
            raise ValueError("the U-Net decoder needs at least two feature maps")
        self.in_channels = list(in_channels)
        ups = []
        below = in_channels[-1]
        for level in range(len(in_channels) - 2, -1, -1):
            out = in_channels[level - 1] if level > 0 else in_channels[0]
            ups.append(UNetUp(below, in_channels[level], out))
            below = out
        self.ups = nn.ModuleList(ups)
        self.classifier = nn.Conv2d(below, num_classes, kernel_size=1)

    def forward(self, features: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"U-Net decoder built for {len(self.in_channels)} feature maps, got {len(features)}"
            )
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return _resize(self.classifier(x), size)


DecoderBuilder = Callable[[Sequence[int], bool, int, str, int | None], nn.Module]

DECODERS: dict[str, DecoderBuilder] = {
    "upernet": lambda channels, is_pyramid, num_classes, neck_pool, width: UPerNet(
        channels, num_classes, is_pyramid, width or UPERNET_CHANNELS, neck_pool=neck_pool
    ),
    "unet": lambda channels, is_pyramid, num_classes, neck_pool, width: UNetDecoder(
        channels, num_classes
    ),
}


SINGLE_SAMPLE_UNSAFE = frozenset({"upernet"})
"""Decoders that cannot train on a batch of one tile (batch norm over a 1x1 pooled map)."""


def build_decoder(
    key: str,
    in_channels: Sequence[int],
    is_pyramid: bool,
    num_classes: int,
    neck_pool: str = "floor",
    channels: int | None = None,
) -> nn.Module:
    """The decoder named by an encoder spec's ``options["decoder"]`` (UPerNet by default);
    ``channels`` narrows UPerNet below the paper's width (a CPU benchmark's budget)."""
    if key not in DECODERS:
        raise UnknownNameError("decoder", key, DECODERS)
    return DECODERS[key](in_channels, is_pyramid, num_classes, neck_pool, channels)
