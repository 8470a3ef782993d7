"""SatlasNet Sentinel2_SwinB_SI_MS: torchvision swin_v2_b with 9 bands, its pyramid on Cryo-Bench
data, and SatlasPretrain's checkpoint layout (backbone.backbone.*, FPN, heads)."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.swin_transformer import (
    PatchMergingV2,
    SwinTransformer,
    SwinTransformerBlockV2,
)
from torchvision.ops import FeaturePyramidNetwork

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError, WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

SPEC = get_encoder_spec("satlas")
# torchvision's Swin_V2_B_Weights list 87,930,848 parameters (torchvision model docs); the encoder
# drops the 1000-class head (1024 x 1000 + 1000) and the final norm (2 x 1024), and its 4 x 4 stem
# takes 9 bands instead of 3 (6 x 4 x 4 x 128 more).
SWIN_V2_B_9_BANDS = 87_930_848 - (1024 * 1000 + 1000) - 2 * 1024 + 6 * 4 * 4 * 128
DIM, DEPTHS, HEADS = 16, (2, 2, 2, 2), (1, 2, 4, 8)
TINY = {"embed_dim": DIM, "depth": DEPTHS, "num_heads": HEADS}


def _build(dataset="gsdd", **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, SPEC.key)
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def test_parameter_count_and_geometry_match_the_published_model():
    assert count_params("satlas") == pytest.approx(SPEC.published_params, rel=0.02)
    assert (SPEC.input_size, SPEC.patch_size, SPEC.num_blocks) == (128, 4, 24)
    assert SPEC.bands == {"optical": ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B11", "B12")}
    assert SPEC.weights_file == "sentinel2_swinb_si_ms.pth"


def test_full_size_pyramid_at_128_px():
    encoder, mapping = _build(embed_dim=128, depth=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
    assert encoder.features[0][0].in_channels == 9
    assert encoder.out_channels == [128, 256, 512, 1024]
    encoder.eval()
    with torch.no_grad():
        maps = encoder({"optical": torch.randn(1, 9, 128, 128)})
    assert [tuple(m.shape) for m in maps] == [
        (1, 128, 32, 32),
        (1, 256, 16, 16),
        (1, 512, 8, 8),
        (1, 1024, 4, 4),
    ]


def test_dataset_bands_map_onto_the_nine_satlas_bands():
    _, gsdd = _build("gsdd")
    assert gsdd.filled == ()
    _, glid = _build("glid")
    assert glid.filled == tuple(f"optical:{b}" for b in ("B5", "B6", "B7", "B8", "B11", "B12"))
    _, caffe = _build("caffe")
    assert caffe.inputs == {"optical": SPEC.bands["optical"]}
    with pytest.raises(UsageError, match="--view sar: encoder 'satlas'.*sicd"):
        map_bands(get_dataset("sicd"), SPEC.bands, SPEC.key, view="sar")


def official_checkpoint():
    """SatlasPretrain's Model: backbone.backbone = torchvision swin_v2_b (9-band stem, its norm,
    head and attention tables included), intermediates.0 = FPN, intermediates.1 = upsampling,
    heads = task heads."""
    swin = SwinTransformer(
        patch_size=[4, 4],
        embed_dim=DIM,
        depths=list(DEPTHS),
        num_heads=list(HEADS),
        window_size=[8, 8],
        block=SwinTransformerBlockV2,
        downsample_layer=PatchMergingV2,
    )
    swin.features[0][0] = nn.Conv2d(9, DIM, kernel_size=4, stride=4)
    fpn = FeaturePyramidNetwork([DIM, 2 * DIM, 4 * DIM, 8 * DIM], 128)
    state = {f"backbone.backbone.{k}": v.clone() for k, v in swin.state_dict().items()}
    state |= {f"intermediates.0.fpn.{k}": v for k, v in fpn.state_dict().items()}
    state |= {
        "intermediates.1.layers.0.0.weight": torch.randn(128, 128, 3, 3),
        "heads.0.layers.0.0.weight": torch.randn(128, 128, 3, 3),
        "heads.0.layers.0.0.bias": torch.randn(128),
    }
    return state


def test_the_official_checkpoint_loads_strictly(tmp_path):
    state = official_checkpoint()
    assert "backbone.backbone.features.1.0.attn.relative_coords_table" in state
    path = tmp_path / SPEC.weights_file
    torch.save(state, path)
    encoder, mapping = _build()
    load_encoder_weights(encoder, SPEC, path)
    loaded = encoder.state_dict()
    for ours in (
        "features.0.0.weight",
        "features.4.reduction.weight",
        "features.5.1.attn.logit_scale",
        "features.7.1.attn.cpb_mlp.2.weight",
        "features.7.1.mlp.3.bias",
    ):
        torch.testing.assert_close(loaded[ours], state[f"backbone.backbone.{ours}"])
    assert not any(k.endswith(("relative_coords_table", "relative_position_index")) for k in loaded)
    with torch.no_grad():
        maps = encoder({"optical": torch.randn(1, 9, 64, 64)})
    assert all(torch.isfinite(m).all() for m in maps)


def test_a_missing_or_foreign_key_is_named(tmp_path):
    state = official_checkpoint()
    del state["backbone.backbone.features.3.1.attn.qkv.bias"]
    state["backbone.backbone.features.9.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "satlas.pth")
    encoder, _ = _build()
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, tmp_path / "satlas.pth")
    assert "missing encoder keys (1): features.3.1.attn.qkv.bias" in str(error.value)
    assert "unexpected keys (1): features.9.weight" in str(error.value)


def test_an_rgb_checkpoint_does_not_fit_the_nine_band_stem(tmp_path):
    state = official_checkpoint()
    state["backbone.backbone.features.0.0.weight"] = torch.randn(DIM, 3, 4, 4)
    torch.save(state, tmp_path / "sentinel2_swinb_si_rgb.pth")
    encoder, _ = _build()
    with pytest.raises(WeightsError, match=r"features.0.0.weight: checkpoint \(16, 3, 4, 4\)"):
        load_encoder_weights(encoder, SPEC, tmp_path / "sentinel2_swinb_si_rgb.pth")


def test_segmenter_runs_on_a_glid_batch_with_upernet_on_the_pyramid():
    config = TrialConfig(dataset="glid", model="satlas", depth=2, weights="random", batch_size=2)
    built = build_segmenter(config, get_dataset("glid"))
    assert built.input_size == 128 and built.info["num_blocks"] == 24
    assert built.info["encoder_params"] == SWIN_V2_B_9_BANDS
    rng = np.random.default_rng(0)
    sample = {"optical": rng.standard_normal((2, 3, 64, 64)).astype(np.float32)}
    logits = built.model(built.mapping.apply(sample))
    assert logits.shape == (2, 2, 64, 64)
    logits.sum().backward()
    trained = [n for n, p in built.model.encoder.named_parameters() if p.requires_grad]
    assert "features.6.reduction.weight" in trained
    assert all(n.startswith(("features.6.", "features.7.")) for n in trained)
