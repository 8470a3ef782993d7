"""THOR-1.0-large as Cryo-Bench runs it: one projection per band, spectral groups, ALiBi, every
tap through the final norm, and the encoder.* half of thor_v1_vit_large.pt."""

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError, WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.depth import apply_finetune_depth
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.thor import alibi_bias, alibi_slopes
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

SPEC = get_encoder_spec("thor")
DIM, DEPTH, HEADS = 32, 3, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (0, 2)}


def _build(dataset, **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, SPEC.key)
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def _inputs(mapping, size=32, batch=2):
    generator = torch.Generator().manual_seed(0)
    return {
        m: torch.randn(batch, len(b), size, size, generator=generator)
        for m, b in mapping.inputs.items()
    }


def test_parameter_count_and_settings_match_the_published_model():
    assert count_params("thor") == pytest.approx(SPEC.published_params, rel=0.02)
    assert (SPEC.input_size, SPEC.patch_size, SPEC.embed_dim) == (256, 16, 1024)
    assert SPEC.tapped_layers == (5, 11, 17, 23) and SPEC.num_blocks == 24
    assert SPEC.bands == {
        "optical": ("B2", "B3", "B4", "B8", "B11", "B12", "SLOPE", "ELEVATION"),
        "sar": ("VV", "VH"),
    }


def test_each_fed_band_gets_a_projection_and_bands_form_cryo_bench_groups():
    glb, mapping = _build("glb")
    assert mapping.filled == ()
    assert list(glb.embed.patch_embed) == [
        "S2:Blue",
        "S2:Green",
        "S2:Red",
        "S2:NIR",
        "S2:SWIR1",
        "S2:SWIR2",
        "dem-10m:slope",
        "dem-10m:elevation",
        "S1:VV",
        "S1:VH",
    ]
    assert glb.embed.group_ids == [0, 1, 2, 3] and glb.modalities == ("optical", "sar")
    glid, _ = _build("glid")
    assert glid.embed.group_ids == [0, 1, 2] and glid.modalities == ("optical",)
    caffe, _ = _build("caffe")
    assert list(caffe.embed.patch_embed) == ["S1:VV", "S1:VH"] and caffe.embed.group_ids == [3]


def test_alibi_biases_attention_by_patch_distance_across_groups():
    slopes = alibi_slopes(16)
    assert slopes[0] == pytest.approx(2**-0.5) and slopes[-1] == pytest.approx(2**-8)
    assert len(alibi_slopes(12)) == 12
    bias = alibi_bias(torch.tensor([0.5, 0.25]), 2, 3, groups=2)
    assert bias.shape == (1, 2, 12, 12)
    torch.testing.assert_close(bias, bias.transpose(-1, -2))
    assert bias[0, 0, 0, 1] == pytest.approx(-0.5)
    assert bias[0, 1, 0, 4] == pytest.approx(-0.25 * 2**0.5)
    assert bias[0, 0, 2, 6 + 2] == 0.0
    assert (bias.diagonal(dim1=-2, dim2=-1) == 0).all()


@pytest.mark.parametrize(("dataset", "groups"), [("glb", 4), ("glid", 3), ("caffe", 1)])
def test_forward_and_backward_average_the_group_maps(dataset, groups):
    encoder, mapping = _build(dataset)
    grid = encoder.embed(_inputs(mapping, 48))
    assert grid.tokens.shape == (2, groups * 9, DIM) and grid.groups == groups
    assert grid.block_kwargs["attn_mask"].shape == (1, HEADS, groups * 9, groups * 9)
    maps = encoder(_inputs(mapping, 48))
    assert [tuple(m.shape) for m in maps] == [(2, DIM, 3, 3)] * 2
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_every_tapped_layer_goes_through_the_final_norm():
    encoder, mapping = _build("caffe")
    with torch.no_grad():
        maps = encoder(_inputs(mapping))
    for feature in maps:
        torch.testing.assert_close(feature.mean(1), torch.zeros(2, 2, 2), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            feature.var(1, unbiased=False), torch.ones(2, 2, 2), atol=1e-2, rtol=0
        )


def test_inputs_must_be_multiples_of_the_patch_size():
    encoder, mapping = _build("caffe")
    with pytest.raises(DataError, match="not a multiple of its patch size 16"):
        encoder({"sar": torch.randn(1, 2, 40, 40)})


def test_full_size_forward():
    encoder, mapping = _build("glb", embed_dim=1024, depth=24, num_heads=16, tapped_layers=(5, 23))
    encoder.eval()
    with torch.no_grad():
        maps = encoder(_inputs(mapping, 32, batch=1))
    assert [tuple(m.shape) for m in maps] == [(1, 1024, 2, 2)] * 2


def test_depth_trains_trailing_blocks_with_the_final_norm():
    encoder, _ = _build("glb")
    apply_finetune_depth(encoder, 0)
    assert not any(p.requires_grad for p in encoder.parameters())
    apply_finetune_depth(encoder, 1)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert "head_norm.weight" in trainable and "layers.2.attn.qkv.weight" in trainable
    assert all(n.startswith(("layers.2.", "head_norm.")) for n in trainable)
    apply_finetune_depth(encoder, DEPTH)
    assert encoder.embed.patch_embed["S1:VV"].weight.requires_grad


S2_NAMES = (
    "S2:Red S2:Green S2:Blue S2:NIR S2:RE1 S2:RE2 S2:RE3 S2:RE4 S2:SWIR1 S2:SWIR2 "
    "S2:CoastAerosal S2:WaterVapor"
).split()


def official_checkpoint():
    """ThorMAE's state: encoder.* (projections for THOR's pretraining bands, fixed band codes,
    ALiBi slopes, timm blocks, norm) beside the decoder and task heads."""
    state = {}
    for name in (*S2_NAMES, "S1:VV", "S1:VH", "S1:HV", "S1:HH", "S3:Oa01_reflectance"):
        state[f"encoder.ind_patch_embed.patch_embed.{name}.weight"] = torch.randn(DIM, 1, 16, 16)
        state[f"encoder.ind_patch_embed.patch_embed.{name}.bias"] = torch.randn(DIM)
    state |= {f"encoder.band_embed.group{i}": torch.randn(DIM // 4) for i in range(10)}
    state["encoder.encoder_slopes"] = torch.tensor(alibi_slopes(HEADS))
    for i in range(DEPTH):
        block = Block(DIM, HEADS, mlp_ratio=4.0, qkv_bias=True)
        state |= {f"encoder.blocks.{i}.{k}": v.clone() for k, v in block.state_dict().items()}
    state |= {
        "encoder.norm.weight": torch.randn(DIM),
        "encoder.norm.bias": torch.randn(DIM),
        "decoder_embed.weight": torch.randn(16, DIM),
        "decoder_blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "decoder_pos_embed.10": torch.randn(196, 16),
        "decode_pred.decode_pred.group0.weight": torch.randn(16, 4, 16, 16),
        "land_cover_heads.WC.weight": torch.randn(12, DIM),
    }
    return state


@pytest.mark.parametrize("dataset", ["glb", "glid", "caffe"])
def test_the_official_checkpoint_loads_strictly(tmp_path, dataset):
    state = official_checkpoint()
    path = tmp_path / SPEC.weights_file
    torch.save(state, path)
    encoder, mapping = _build(dataset)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    load_encoder_weights(encoder, SPEC, path)
    loaded = encoder.state_dict()
    torch.testing.assert_close(
        loaded["layers.1.mlp.fc2.weight"], state["encoder.blocks.1.mlp.fc2.weight"]
    )
    torch.testing.assert_close(loaded["head_norm.bias"], state["encoder.norm.bias"])
    for name in encoder.embed.patch_embed:
        ours = loaded[f"embed.patch_embed.{name}.weight"]
        if name.startswith("dem-10m:"):
            torch.testing.assert_close(ours, before[f"embed.patch_embed.{name}.weight"])
        else:
            theirs = state[f"encoder.ind_patch_embed.patch_embed.{name}.weight"]
            torch.testing.assert_close(ours, theirs)
    with torch.no_grad():
        assert all(torch.isfinite(m).all() for m in encoder(_inputs(mapping)))


def test_missing_and_unknown_keys_are_named(tmp_path):
    state = official_checkpoint()
    del state["encoder.blocks.1.norm2.bias"]
    del state["encoder.ind_patch_embed.patch_embed.S1:VH.weight"]
    state["encoder.cls_token"] = torch.zeros(1, 1, DIM)
    torch.save(state, tmp_path / SPEC.weights_file)
    encoder, _ = _build("glb")
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, tmp_path / SPEC.weights_file)
    message = str(error.value)
    assert (
        "missing encoder keys (2): embed.patch_embed.S1:VH.weight, layers.1.norm2.bias" in message
    )
    assert "unexpected keys (1): cls_token" in message


def test_segmenter_runs_on_a_caffe_sar_batch():
    config = TrialConfig(dataset="caffe", model="thor", depth=1, weights="random", batch_size=2)
    built = build_segmenter(config, get_dataset("caffe"))
    assert built.input_size == 256 and built.info["modalities"] == ["sar"]
    assert built.info["filled_bands"] == ["sar:VH"]
    rng = np.random.default_rng(0)
    sample = {"sar": rng.standard_normal((2, 1, 32, 32)).astype(np.float32)}
    sample["optical"] = np.repeat(sample["sar"], 3, axis=1)
    logits = built.model(built.mapping.apply(sample))
    assert logits.shape == (2, 4, 32, 32)
    logits.sum().backward()
    assert built.model.encoder.head_norm.weight.grad is not None
