"""Prithvi-EO-2.0-300M: Prithvi-100M's architecture at ViT-L size (embed 1024, depth 24, 16
heads), 3-D patch embedding with tubelet 1, one frame per image.

It reuses Prithvi's builder and checkpoint layout (family ``prithvi``): the 2.0 checkpoint
(terratorch's ``PrithviViT``) names its encoder ``encoder.*`` like 100M's, holds a 4-frame 3-D
sin-cos code of which the first frame is kept, and its final norm is dropped because Cryo-Bench
taps blocks 7, 11, 15, 23 without it. Bands follow Cryo-Bench's prithvi_eo_v2_300.yaml, which
names NIR ``B8`` (Prithvi-100M's spec names HLS NIR ``B8A``).
"""

from __future__ import annotations

from types import MappingProxyType

from cryotune.models.encoders.prithvi import build_prithvi
from cryotune.models.encoders.spec import EncoderSpec

PRITHVI_EO2_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")

SPEC = EncoderSpec(
    key="prithvi_eo2",
    family="prithvi",
    title="Prithvi-EO-2.0-300M: ViT-L/16 with 3-D patch embedding (tubelet 1)",
    builder=build_prithvi,
    input_size=224,
    patch_size=16,
    embed_dim=1024,
    num_blocks=24,
    tapped_layers=(7, 11, 15, 23),
    bands=MappingProxyType({"optical": PRITHVI_EO2_BANDS}),
    weights_file="Prithvi_EO_V2_300M.pt",
    weights_source="HF ibm-nasa-geospatial/Prithvi-EO-2.0-300M",
    published_params=307_000_000,
    params_source="ViT-Large 307M (Dosovitskiy et al., ICLR 2021, Table 1): Prithvi-EO-2.0-300M's "
    "encoder is a ViT-L/16 (Szwarcman et al., arXiv 2412.02732; 300M in its name) with a "
    "6-band 3-D patch projection",
    options=MappingProxyType({"num_heads": 16}),
    roster="later",
)
