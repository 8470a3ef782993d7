"""CROMA: 2-D ALiBi attention, the variant the dataset's modalities pick, depth, and
``CROMA_large.pt``'s layout (one state dict per encoder, keys as antofuller/CROMA names them)."""

import itertools
import math

import pytest
import torch

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError, WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.depth import apply_finetune_depth
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.croma import Attention, alibi_2d, alibi_slopes
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

DIM, DEPTH, HEADS = 32, 4, 4
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (1, 3)}
FULL = {"embed_dim": 1024, "depth": 12, "num_heads": 16, "tapped_layers": (3, 5, 7, 11)}
SPEC = get_encoder_spec("croma")


def _build(dataset, **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, "croma")
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def _inputs(mapping, size=16, batch=2):
    generator = torch.Generator().manual_seed(0)
    return {
        m: torch.randn(batch, len(b), size, size, generator=generator)
        for m, b in mapping.inputs.items()
    }


def test_parameter_counts_match_the_published_architecture():
    assert count_params("croma") == pytest.approx(SPEC.published_params, rel=0.02)
    with torch.device("meta"):
        optical, _ = _build("glid", **FULL)
        sar, _ = _build("caffe", **FULL)
    # Alone, either encoder is 12 ViT-L layers: half of the 304M ViT-L (as MAE, He et al. 2022, lists it).
    for encoder in (optical, sar):
        assert sum(p.numel() for p in encoder.parameters()) == pytest.approx(304e6 / 2, rel=0.02)
    assert SPEC.input_size == 120 and SPEC.patch_size == 8 and SPEC.num_blocks == 12
    assert SPEC.tapped_layers == (3, 5, 7, 11) and "B10" not in SPEC.bands["optical"]


def test_the_datasets_modalities_pick_optical_sar_or_joint():
    optical, _ = _build("glid")
    assert optical.modalities == ("optical",) and not hasattr(optical, "s1_encoder")
    assert len(optical.s2_encoder.transformer.layers) == DEPTH
    sar, _ = _build("sicd")
    assert sar.modalities == ("sar",) and not hasattr(sar, "s2_encoder")
    joint, _ = _build("gld")
    assert joint.modalities == ("optical", "sar")
    assert len(joint.s2_encoder.transformer.layers) == 2 * DEPTH
    assert len(joint.s1_encoder.transformer.layers) == DEPTH
    assert joint.blocks() == list(joint.joint_encoder.layers)
    assert joint.weights_variant is None


@pytest.mark.parametrize("dataset", ["glid", "caffe", "gld"])
def test_forward_and_backward_give_one_map_per_tap_at_stride_8(dataset):
    encoder, mapping = _build(dataset)
    maps = encoder(_inputs(mapping, size=24))
    assert [m.shape for m in maps] == [(2, DIM, 3, 3)] * 2
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_full_size_sar_encoder_runs_at_120_px():
    encoder, mapping = _build("caffe", **FULL)
    encoder.eval()
    with torch.no_grad():
        maps = encoder(_inputs(mapping, size=120, batch=1))
    assert [m.shape for m in maps] == [(1, 1024, 15, 15)] * 4


def test_alibi_matches_the_official_double_loop():
    slopes = alibi_slopes(16)
    assert slopes[0] == pytest.approx(2**-0.5) and slopes[-1] == pytest.approx(2**-8)
    assert alibi_slopes(6) == pytest.approx([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    points = list(itertools.product(range(3), range(3)))
    reference = torch.tensor(
        [[-math.dist(p, q) * s for p in points for q in points] for s in slopes]
    ).view(1, 16, 9, 9)
    torch.testing.assert_close(alibi_2d(16, 3, 3), reference)
    assert alibi_2d(4, 2, 5).shape == (1, 4, 10, 10)


def test_attention_adds_the_bias_to_the_scaled_scores_like_the_official_einsum():
    torch.manual_seed(0)
    attention = Attention(DIM, HEADS)
    x = torch.randn(2, 9, DIM)
    bias = alibi_2d(HEADS, 3, 3)
    q, k, v = attention.to_qkv(attention.input_norm(x)).chunk(3, -1)
    q, k, v = (t.view(2, 9, HEADS, -1).transpose(1, 2) for t in (q, k, v))
    scores = torch.einsum("bhid,bhjd->bhij", q, k) * (DIM // HEADS) ** -0.5 + bias
    out = torch.einsum("bhij,bhjd->bhid", scores.softmax(-1), v).transpose(1, 2).reshape(2, 9, -1)
    torch.testing.assert_close(attention(x, bias), attention.to_out(out))


def test_depth_trains_trailing_layers_and_their_norm_and_the_unimodal_encoders_only_at_full():
    joint, _ = _build("gld")
    trainable = lambda: {n for n, p in joint.named_parameters() if p.requires_grad}  # noqa: E731
    apply_finetune_depth(joint, 0)
    assert trainable() == set()
    apply_finetune_depth(joint, 1)
    assert trainable() and all(
        n.startswith(("joint_encoder.layers.3.", "joint_encoder.norm_out.")) for n in trainable()
    )
    apply_finetune_depth(joint, DEPTH)
    assert trainable() == {n for n, _ in joint.named_parameters()}

    optical, mapping = _build("glid")
    apply_finetune_depth(optical, 2)
    assert optical.frozen_prefix() == 2
    assert all(
        n.startswith(("s2_encoder.transformer.layers.2.", "s2_encoder.transformer.layers.3."))
        or n.startswith("s2_encoder.transformer.norm_out.")
        for n, p in optical.named_parameters()
        if p.requires_grad
    )
    maps = optical(_inputs(mapping))
    sum(m.sum() for m in maps).backward()
    assert optical.s2_encoder.linear_input.weight.grad is None
    assert optical.s2_encoder.transformer.layers[3][1].net[0].weight.grad is not None


def _vit(depth, channels):
    state = {
        "linear_input.weight": torch.randn(DIM, 64 * channels),
        "linear_input.bias": torch.randn(DIM),
        "transformer.norm_out.weight": torch.randn(DIM),
        "transformer.norm_out.bias": torch.randn(DIM),
    }
    for i in range(depth):
        state |= {f"transformer.{k}": v for k, v in _self_attention_layer(f"layers.{i}").items()}
    return state


def _norm(prefix):
    return {f"{prefix}.weight": torch.randn(DIM), f"{prefix}.bias": torch.randn(DIM)}


def _ffn(prefix):
    return {
        f"{prefix}.net.0.weight": torch.randn(4 * DIM, DIM),
        f"{prefix}.net.0.bias": torch.randn(4 * DIM),
        f"{prefix}.net.3.weight": torch.randn(DIM, 4 * DIM),
        f"{prefix}.net.3.bias": torch.randn(DIM),
        **_norm(f"{prefix}.input_norm"),
    }


def _self_attention_layer(prefix):
    return {
        f"{prefix}.0.to_qkv.weight": torch.randn(3 * DIM, DIM),
        f"{prefix}.0.to_out.weight": torch.randn(DIM, DIM),
        f"{prefix}.0.to_out.bias": torch.randn(DIM),
        **_norm(f"{prefix}.0.input_norm"),
        **_ffn(f"{prefix}.1"),
    }


def official_checkpoint():
    """``CROMA_large.pt``'s layout: per-module state dicts, as ``PretrainedCROMA`` reads them."""
    joint = {**_norm("norm_out")}
    for i in range(DEPTH):
        joint |= {
            f"layers.{i}.0.to_qkv.weight": torch.randn(3 * DIM, DIM),
            f"layers.{i}.0.to_out.weight": torch.randn(DIM, DIM),
            f"layers.{i}.0.to_out.bias": torch.randn(DIM),
            **_norm(f"layers.{i}.0.input_norm"),
            f"layers.{i}.1.to_q.weight": torch.randn(DIM, DIM),
            f"layers.{i}.1.to_k.weight": torch.randn(DIM, DIM),
            f"layers.{i}.1.to_v.weight": torch.randn(DIM, DIM),
            f"layers.{i}.1.to_out.weight": torch.randn(DIM, DIM),
            f"layers.{i}.1.to_out.bias": torch.randn(DIM),
            **_norm(f"layers.{i}.1.input_norm"),
            **_ffn(f"layers.{i}.2"),
        }
    gap = {
        **_norm("0"),
        "1.weight": torch.randn(4 * DIM, DIM),
        "1.bias": torch.randn(4 * DIM),
        "3.weight": torch.randn(DIM, 4 * DIM),
        "3.bias": torch.randn(DIM),
    }
    return {
        "s1_encoder": _vit(DEPTH, 2),
        "s2_encoder": _vit(2 * DEPTH, 12),
        "joint_encoder": joint,
        "s1_GAP_FFN": gap,
        "s2_GAP_FFN": {k: v.clone() for k, v in gap.items()},
    }


@pytest.mark.parametrize("dataset", ["gld", "glid", "sicd"])
def test_the_official_checkpoint_loads_strictly_into_every_variant(tmp_path, dataset):
    checkpoint = official_checkpoint()
    path = tmp_path / "CROMA_large.pt"
    torch.save(checkpoint, path)
    encoder, mapping = _build(dataset)
    digest = load_encoder_weights(encoder, SPEC, path)
    assert len(digest) == 64
    state = encoder.state_dict()
    if "optical" in encoder.modalities:
        torch.testing.assert_close(
            state["s2_encoder.transformer.layers.1.1.net.3.weight"],
            checkpoint["s2_encoder"]["transformer.layers.1.1.net.3.weight"],
        )
    if encoder.modalities == ("optical", "sar"):
        torch.testing.assert_close(
            state["joint_encoder.layers.2.1.to_k.weight"],
            checkpoint["joint_encoder"]["layers.2.1.to_k.weight"],
        )
    with torch.no_grad():
        assert all(torch.isfinite(m).all() for m in encoder(_inputs(mapping)))


def test_missing_and_unknown_keys_are_named(tmp_path):
    checkpoint = official_checkpoint()
    del checkpoint["joint_encoder"]["layers.1.1.to_v.weight"]
    checkpoint["s1_encoder"]["transformer.extra.weight"] = torch.zeros(1)
    path = tmp_path / "CROMA_large.pt"
    torch.save(checkpoint, path)
    encoder, _ = _build("gld")
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, path)
    assert "missing encoder keys (1): joint_encoder.layers.1.1.to_v.weight" in str(error.value)
    assert "unexpected keys (1): s1_encoder.transformer.extra.weight" in str(error.value)


def test_mismatched_input_sizes_are_refused():
    encoder, mapping = _build("gld")
    inputs = _inputs(mapping)
    inputs["sar"] = inputs["sar"][..., :8, :8]
    with pytest.raises(DataError, match="optical and SAR inputs must share one size"):
        encoder(inputs)


@pytest.mark.parametrize(("dataset", "classes"), [("caffe", 4), ("glid", 2)])
def test_segmenter_runs_on_a_dataset_batch(dataset, classes, dataset_batch):
    config = TrialConfig(dataset=dataset, model="croma", depth=1, weights="random", batch_size=2)
    built = build_segmenter(config, get_dataset(dataset))
    assert built.input_size == 120 and built.info["num_blocks"] == 12
    with torch.no_grad():
        logits = built.model(dataset_batch(built, (120, 120)))
    assert logits.shape == (2, classes, 120, 120)
