"""The encoder registry: one EncoderSpec per model key, numbers from Cryo-Bench (cryobench.md §2).

Adding a model is one spec here and, where its architecture is new, one builder module (and,
for a new checkpoint layout, one entry in ``cryotune.models.weights.LAYOUTS``).
"""

from __future__ import annotations

from importlib import import_module
from types import MappingProxyType

from cryotune.data.bands import ANY_BANDS
from cryotune.errors import UnknownNameError
from cryotune.models.encoders.data2vec import build_data2vec
from cryotune.models.encoders.dofa import build_dofa
from cryotune.models.encoders.prithvi import build_prithvi
from cryotune.models.encoders.scalemae import build_scalemae
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.encoders.terramind import build_terramind
from cryotune.models.encoders.vit import build_timm_vit

S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S2L2A_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
RGB_BANDS = ("B4", "B3", "B2")
HLS_BANDS = ("B2", "B3", "B4", "B8A", "B11", "B12")
SAR_BANDS = ("VV", "VH")

_VIT_B = "ViT-Base 86M (Dosovitskiy et al., ICLR 2021, Table 1; 3 input bands)"
_VIT_L = "ViT-Large 307M (Dosovitskiy et al., ICLR 2021, Table 1)"
_SSL4EO_PARAMS = (
    "ViT-S/16 at 13 bands: torchgeo's SSL4EO-S12 ViT-S/16 weights hold 22.67M float32 values "
    "(90.7 MB, HF torchgeo/vit_small_patch16_224_sentinel2_all_moco)"
)
_SSL4EO_SOURCE = (
    "SSL4EO-S12 authors (github.com/zhu-xlab/SSL4EO-S12): Google Drive for the 13-band files, "
    "HF wangyi111/SSL4EO-S12 for the SAR MAE"
)


def _options(**values: object) -> MappingProxyType:
    return MappingProxyType(values)


def _ssl4eo(key: str, family: str, method: str, weights: str, **options: object) -> EncoderSpec:
    return EncoderSpec(
        key=key,
        family=family,
        title=f"SSL4EO-S12 ViT-S/16, {method}",
        builder=options.pop("builder", build_timm_vit),
        input_size=224,
        patch_size=16,
        embed_dim=384,
        num_blocks=12,
        tapped_layers=(3, 5, 7, 11),
        bands=options.pop("bands", MappingProxyType({"optical": S2_BANDS})),
        weights_file=weights,
        weights_source=_SSL4EO_SOURCE,
        published_params=22_670_000,
        params_source=_SSL4EO_PARAMS,
        options=_options(num_heads=6, timm_model="vit_small_patch16_224", **options),
    )


_SPECS: tuple[EncoderSpec, ...] = (
    EncoderSpec(
        key="vit",
        family="vit",
        title="ViT-B/16 baseline, trained from scratch on all dataset bands",
        builder=build_timm_vit,
        input_size=224,
        patch_size=16,
        embed_dim=768,
        num_blocks=12,
        tapped_layers=(3, 5, 7, 11),
        bands=ANY_BANDS,
        weights_file=None,
        weights_source="none: trained from scratch",
        published_params=86_000_000,
        params_source=_VIT_B,
        pretrained=False,
        roster="baseline",
        options=_options(
            num_heads=12, timm_model="vit_base_patch16_224", published_bands=RGB_BANDS
        ),
    ),
    EncoderSpec(
        key="dofa",
        family="dofa",
        title="DOFA ViT-B/16, wavelength-conditioned dynamic patch embedding",
        builder=build_dofa,
        input_size=224,
        patch_size=16,
        embed_dim=768,
        num_blocks=12,
        tapped_layers=(3, 5, 7, 11),
        bands=ANY_BANDS,
        weights_file="DOFA_ViT_base_e100.pth",
        weights_source="HF XShadow/DOFA",
        published_params=111_000_000,
        params_source="DOFA ViT-Base: ViT-B/16 plus its wavelength hypernetwork, 111M as users "
        "of DOFA_ViT_base_e100.pth list it (~447 MB of float32); architecture from Xiong et "
        "al., arXiv 2403.15356 and zhu-xlab/DOFA",
        options=_options(num_heads=12, wv_planes=128),
    ),
    EncoderSpec(
        key="prithvi",
        family="prithvi",
        title="Prithvi-100M: ViT-B/16 with 3-D patch embedding (tubelet 1)",
        builder=build_prithvi,
        input_size=224,
        patch_size=16,
        embed_dim=768,
        num_blocks=12,
        tapped_layers=(11,),
        bands=MappingProxyType({"optical": HLS_BANDS}),
        weights_file="Prithvi_100M.pt",
        weights_source="HF ibm-nasa-geospatial/Prithvi-100M",
        published_params=86_000_000,
        params_source="encoder of Prithvi-100M (Jakubik et al., arXiv 2310.18660): "
        + _VIT_B
        + "; the 100M of the name include the MAE decoder",
        options=_options(num_heads=12),
    ),
    EncoderSpec(
        key="remoteclip",
        family="clip",
        title="RemoteCLIP ViT-B/32 image tower (CLIP pre-norm, quick GELU)",
        builder=build_timm_vit,
        input_size=224,
        patch_size=32,
        embed_dim=768,
        num_blocks=12,
        tapped_layers=(3, 5, 7, 11),
        bands=MappingProxyType({"optical": RGB_BANDS}),
        weights_file="RemoteCLIP-ViT-B-32.pt",
        weights_source="HF chendelong/RemoteCLIP",
        published_params=87_850_000,
        params_source="open_clip ViT-B-32 image tower, 87.85M incl. its 768x512 output "
        "projection (open_clip docs/model_profile.csv)",
        options=_options(num_heads=12, timm_model="vit_base_patch32_clip_quickgelu_224"),
    ),
    EncoderSpec(
        key="scalemae",
        family="scalemae",
        title="Scale-MAE ViT-L/16, GSD-aware position encoding (input_res 1.0)",
        builder=build_scalemae,
        input_size=224,
        patch_size=16,
        embed_dim=1024,
        num_blocks=24,
        tapped_layers=(7, 11, 15, 23),
        bands=MappingProxyType({"optical": RGB_BANDS}),
        weights_file="scalemae-vitlarge-800.pth",
        weights_source="GitHub release bair-climate-initiative/scale-mae base-800 "
        "(github.com/bair-climate-initiative/scale-mae/releases/download/base-800/"
        "scalemae-vitlarge-800.pth)",
        published_params=307_000_000,
        params_source=_VIT_L,
        options=_options(num_heads=16, input_res=1.0),
    ),
    _ssl4eo("ssl4eo_moco", "mocov3", "MoCo v3", "B13_vits16_moco_0099.pth", position="moco"),
    _ssl4eo("ssl4eo_dino", "dino", "DINO", "B13_vits16_dino_0099_ckpt.pth"),
    _ssl4eo(
        "ssl4eo_mae",
        "mae",
        "MAE (optical; SAR VV,VH encoder for SAR-only data)",
        "B13_vits16_mae_0099_ckpt.pth",
        position="mae",
        bands=MappingProxyType({"optical": S2_BANDS, "sar": SAR_BANDS}),
        variant_weights=MappingProxyType({"sar": "B2_vits16_mae_ep99.pth"}),
    ),
    _ssl4eo(
        "ssl4eo_data2vec",
        "data2vec",
        "data2vec (BEiT-style: shared relative position bias, layer scale)",
        "B13_vits16_data2vec_0099_ckpt.pth",
        builder=build_data2vec,
        init_values=0.1,
    ),
    EncoderSpec(
        key="terramind",
        family="terramind",
        title="TerraMind v1 large: ViT-L, SwiGLU, S2L2A and S1GRD patch embeddings",
        builder=build_terramind,
        input_size=224,
        patch_size=16,
        embed_dim=1024,
        num_blocks=24,
        tapped_layers=(7, 11, 15, 23),
        bands=MappingProxyType({"optical": S2L2A_BANDS, "sar": SAR_BANDS}),
        weights_file="TerraMind_v1_large.pt",
        weights_source="HF ibm-esa-geospatial/TerraMind-1.0-large (manual download)",
        published_params=307_000_000,
        params_source=_VIT_L + "; TerraMind v1 large's encoder is a ViT-L whose SwiGLU MLP "
        "(2/3 of the x4 width) keeps that budget without biases (terratorch "
        "terramind_v1_large; Jakubik et al., arXiv 2504.11171)",
        options=_options(
            num_heads=16,
            modality_embeddings=MappingProxyType(
                {"optical": "untok_sen2l2a@224", "sar": "untok_sen1grd@224"}
            ),
        ),
    ),
)

# Encoders whose spec lives in their own module (exposed as ``SPEC``), one line each:
_SPEC_MODULES: tuple[str, ...] = (
    "cryotune.models.encoders.unet",
    "cryotune.models.encoders.croma",
    "cryotune.models.encoders.spectralgpt",
    "cryotune.models.encoders.ramen",
    "cryotune.models.encoders.satlas",
    "cryotune.models.encoders.gfm_swin",
    "cryotune.models.encoders.thor",
    "cryotune.models.encoders.prithvi_eo2",
)

ENCODERS: dict[str, EncoderSpec] = {
    spec.key: spec for spec in (*_SPECS, *(import_module(name).SPEC for name in _SPEC_MODULES))
}


def get_encoder_spec(key: str) -> EncoderSpec:
    try:
        return ENCODERS[key]
    except KeyError:
        raise UnknownNameError("model", key, ENCODERS) from None
