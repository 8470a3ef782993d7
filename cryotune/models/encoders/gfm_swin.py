"""GFM Swin-B (Mendieta et al., ICCV 2023): Microsoft's Swin v1 at 192 px with window 6, as
GFM's SimMIM code and PANGAEA's ``GFMSwin_Encoder`` build it.

The module tree keeps Microsoft's names (``patch_embed``, ``layers.i.blocks.j``,
``layers.i.downsample`` at the end of stage i), so the ``encoder.*`` part of ``gfm.pth`` loads as
it is; timm's Swin blocks and patch merging hold the same parameters. As PANGAEA's
``GFMSwin_Encoder`` (whose ``BasicLayer`` runs its blocks, then its patch merging), each stage is
tapped after the patch merging that follows it, the last stage as it is: 256, 512, 1024 and 1024
channels at strides 8, 16, 32 and 32 (24, 12, 6, 6 at 192 px; ``only_output_last`` is unused
there). ``swin_taps: stages`` taps the stage outputs instead: 128..1024 at strides 4..32.
"""

from __future__ import annotations

from types import MappingProxyType

from timm.layers import PatchEmbed, trunc_normal_
from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock
from torch import nn

from cryotune.data.bands import BandMapping
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.swin import SwinEncoder, swin_size


class BasicLayer(nn.Module):
    """One stage as Microsoft's Swin stores it: its blocks, then the patch merging that ends it
    (None for the last stage). A container: the encoder runs its parts unit by unit."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


def _init_like_swin(module: nn.Module) -> None:
    """Microsoft Swin's initialisation: truncated-normal linear weights, zero biases, unit norms."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            trunc_normal_(sub.weight, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class GFMSwin(SwinEncoder):
    """Swin v1 pyramid with any input that is a multiple of the patch size (windows pad)."""

    def __init__(self, spec: EncoderSpec, mapping: BandMapping, taps: str = "merged", **overrides):
        size = swin_size(spec, overrides)
        super().__init__(spec.key, spec, mapping, size, merged_taps=taps == "merged")
        window = int(spec.option("window_size"))
        grid = int(spec.input_size) // self.patch_size
        self.patch_embed = PatchEmbed(
            img_size=spec.input_size,
            patch_size=self.patch_size,
            in_chans=self.in_chans,
            embed_dim=size.embed_dim,
            norm_layer=nn.LayerNorm,
            strict_img_size=False,
            output_fmt="NHWC",
        )
        total = sum(size.depths)
        rate = float(spec.option("drop_path_rate"))
        drop_path = [rate * i / max(total - 1, 1) for i in range(total)]
        layers, first = [], 0
        for i, (depth, heads) in enumerate(zip(size.depths, size.num_heads)):
            dim, resolution = size.widths[i], max(grid // 2**i, 1)
            blocks = [
                SwinTransformerBlock(
                    dim,
                    input_resolution=(resolution, resolution),
                    num_heads=heads,
                    window_size=window,
                    shift_size=0 if j % 2 == 0 else window // 2,
                    dynamic_mask=True,
                    drop_path=drop_path[first + j],
                )
                for j in range(depth)
            ]
            first += depth
            last = i == len(size.depths) - 1
            layers.append(BasicLayer(blocks, None if last else PatchMerging(dim)))
        self.layers = nn.ModuleList(layers)
        _init_like_swin(self)
        stages = [
            (None if i == 0 else self.layers[i - 1].downsample, list(layer.blocks))
            for i, layer in enumerate(self.layers)
        ]
        self.arrange(self.patch_embed, stages)


def build_gfm_swin(spec: EncoderSpec, mapping: BandMapping, **overrides) -> GFMSwin:
    return GFMSwin(spec, mapping, **overrides)


TAP_MODES = ("merged", "stages")


SPEC = EncoderSpec(
    key="gfm_swin",
    family="gfm",
    title="GFM Swin-B: Swin v1 (embed 128, depths 2,2,18,2, window 6), continual pretraining",
    builder=build_gfm_swin,
    input_size=192,
    patch_size=4,
    embed_dim=128,
    num_blocks=24,
    tapped_layers=(0, 1, 2, 3),
    bands=MappingProxyType({"optical": ("B4", "B3", "B2")}),
    weights_file="gfm.pth",
    weights_source="manual download: GFM's released gfm.pth (github.com/mmendiet/GFM, as "
    "PANGAEA's configs/encoder/gfmswin.yaml expects it in pretrained_models/)",
    published_params=88_000_000,
    params_source="Swin-B 88M (Liu et al., ICCV 2021, Table 1; with its 1000-class head); GFM "
    "continues pretraining that architecture at 192 px with window 6, and the encoder drops "
    "head and final norm",
    options=MappingProxyType(
        {
            "depths": (2, 2, 18, 2),
            "num_heads": (4, 8, 16, 32),
            "window_size": 6,
            "drop_path_rate": 0.1,
            "tap_modes": TAP_MODES,
        }
    ),
)
