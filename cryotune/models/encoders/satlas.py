"""SatlasNet Sentinel-2 Swin-B (``Sentinel2_SwinB_SI_MS``): torchvision's ``swin_v2_b`` with a
9-band patch projection, as allenai/satlaspretrain_models and PANGAEA build it.

The encoder keeps torchvision's ``features`` tree (``features.0`` patch embedding, odd indices
the four stages, even ones the patch merging between them), so SatlasPretrain's
``backbone.backbone.features.*`` names load after stripping the prefix. Like PANGAEA it taps the
raw stage outputs (no final norm); the FPN, upsampling and heads in the checkpoint are dropped.
"""

from __future__ import annotations

from types import MappingProxyType

from torch import nn
from torchvision.models.swin_transformer import (
    PatchMergingV2,
    SwinTransformer,
    SwinTransformerBlockV2,
)

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.swin import SwinEncoder, swin_size

SATLAS_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B11", "B12")
FIXED_TABLES = ("relative_coords_table", "relative_position_index")
"""Swin V2 attention tables computed from the window size; kept out of the state dict."""


class SatlasSwin(SwinEncoder):
    """torchvision Swin V2 ``features`` run as a 4-stage pyramid."""

    def __init__(self, spec: EncoderSpec, mapping: BandMapping, **overrides):
        size = swin_size(spec, overrides)
        super().__init__(spec.key, spec, mapping, size)
        swin = SwinTransformer(
            patch_size=[self.patch_size, self.patch_size],
            embed_dim=size.embed_dim,
            depths=list(size.depths),
            num_heads=list(size.num_heads),
            window_size=[int(spec.option("window_size"))] * 2,
            stochastic_depth_prob=float(spec.option("drop_path_rate")),
            block=SwinTransformerBlockV2,
            downsample_layer=PatchMergingV2,
        )
        self.features = swin.features
        stem = self.features[0][0]
        self.features[0][0] = nn.Conv2d(
            self.in_chans, size.embed_dim, kernel_size=stem.kernel_size, stride=stem.stride
        )
        for module in self.features.modules():
            buffers = dict(module.named_buffers(recurse=False))
            for name in FIXED_TABLES:
                if name in buffers:
                    module.register_buffer(name, buffers[name], persistent=False)
        stages = [
            (None if i == 0 else self.features[2 * i], list(self.features[2 * i + 1]))
            for i in range(len(size.depths))
        ]
        self.arrange(self.features[0], stages)


def build_satlas(spec: EncoderSpec, mapping: BandMapping, **overrides) -> SatlasSwin:
    return SatlasSwin(spec, mapping, **overrides)


SPEC = EncoderSpec(
    key="satlas",
    family="satlas",
    title="SatlasNet Sentinel-2 Swin-B (torchvision Swin V2, single image, 9 bands)",
    builder=build_satlas,
    input_size=128,
    patch_size=4,
    embed_dim=128,
    num_blocks=24,
    tapped_layers=(0, 1, 2, 3),
    bands=MappingProxyType({"optical": SATLAS_S2_BANDS}),
    weights_file="sentinel2_swinb_si_ms.pth",
    weights_source="HF allenai/satlas-pretrain",
    published_params=87_930_848,
    params_source="torchvision swin_v2_b, 87,930,848 parameters with its 1000-class head "
    "(torchvision model docs, Swin_V2_B_Weights); SatlasPretrain builds exactly that model "
    "(allenai/satlaspretrain_models) with a 9-band patch projection, and the encoder keeps "
    "its features without head and final norm",
    options=MappingProxyType(
        {
            "depths": (2, 2, 18, 2),
            "num_heads": (4, 8, 16, 32),
            "window_size": 8,
            "drop_path_rate": 0.5,
        }
    ),
)
