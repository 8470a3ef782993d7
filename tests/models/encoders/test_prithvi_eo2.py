"""Prithvi-EO-2.0-300M: Prithvi's 3-D patch embedding at ViT-L size, taps 7, 11, 15, 23, and the
Prithvi_EO_V2_300M.pt layout (encoder.* with a 4-frame position code, decoder.* beside it)."""

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError, WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.depth import apply_finetune_depth
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.position import sincos_3d, with_class_slot
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

SPEC = get_encoder_spec("prithvi_eo2")
DIM, DEPTH, HEADS = 32, 4, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (1, 3)}


def _build(dataset="gsdd", **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, SPEC.key)
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def test_parameter_count_and_geometry_match_the_published_model():
    assert count_params("prithvi_eo2") == pytest.approx(SPEC.published_params, rel=0.02)
    assert (SPEC.embed_dim, SPEC.num_blocks, SPEC.option("num_heads")) == (1024, 24, 16)
    assert SPEC.tapped_layers == (7, 11, 15, 23) and SPEC.family == "prithvi"
    assert SPEC.bands == {"optical": ("B2", "B3", "B4", "B8", "B11", "B12")}


def test_prithvi_100m_keeps_its_own_geometry():
    prithvi = get_encoder_spec("prithvi")
    assert (prithvi.embed_dim, prithvi.num_blocks, prithvi.tapped_layers) == (768, 12, (11,))
    assert prithvi.bands == {"optical": ("B2", "B3", "B4", "B8A", "B11", "B12")}


def test_full_size_forward_maps_the_four_tapped_layers():
    encoder, mapping = _build(embed_dim=1024, depth=24, num_heads=16, tapped_layers=(7, 11, 15, 23))
    assert not encoder.is_pyramid and encoder.out_channels == [1024] * 4
    encoder.eval()
    with torch.no_grad():
        maps = encoder({"optical": torch.randn(1, 6, 32, 32)})
    assert [tuple(m.shape) for m in maps] == [(1, 1024, 2, 2)] * 4


def test_forward_backward_and_depth():
    encoder, mapping = _build("glid")
    assert mapping.filled == ("optical:B8", "optical:B11", "optical:B12")
    maps = encoder({"optical": torch.randn(2, 6, 64, 64)})
    assert [tuple(m.shape) for m in maps] == [(2, DIM, 4, 4)] * 2
    sum(m.square().mean() for m in maps).backward()
    apply_finetune_depth(encoder, 2)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layers.2.", "layers.3.")) for n in trainable)
    apply_finetune_depth(encoder, DEPTH)
    assert encoder.embed.patch_embed.proj.weight.requires_grad
    with pytest.raises(UsageError, match="--view sar: encoder 'prithvi_eo2'.*sicd"):
        map_bands(get_dataset("sicd"), SPEC.bands, SPEC.key, view="sar")


def official_checkpoint():
    """terratorch PrithviMAE state: encoder.* (4-frame 3-D sin-cos buffer, final norm),
    decoder.* (mask token, decoder blocks, prediction)."""
    encoder = {
        "cls_token": torch.randn(1, 1, DIM),
        "pos_embed": with_class_slot(sincos_3d(4, 14, 14, DIM)),
        "patch_embed.proj.weight": torch.randn(DIM, 6, 1, 16, 16),
        "patch_embed.proj.bias": torch.randn(DIM),
        "norm.weight": torch.randn(DIM),
        "norm.bias": torch.randn(DIM),
    }
    for i in range(DEPTH):
        block = Block(DIM, HEADS, mlp_ratio=4.0, qkv_bias=True)
        encoder |= {f"blocks.{i}.{k}": v.clone() for k, v in block.state_dict().items()}
    decoder = {
        "mask_token": torch.randn(1, 1, 16),
        "decoder_embed.weight": torch.randn(16, DIM),
        "decoder_pos_embed": torch.randn(1, 785, 16),
        "decoder_blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "decoder_norm.weight": torch.randn(16),
        "decoder_pred.weight": torch.randn(6 * 16 * 16, 16),
    }
    state = {f"encoder.{k}": v for k, v in encoder.items()}
    return state | {f"decoder.{k}": v for k, v in decoder.items()}


def test_the_official_checkpoint_loads_strictly_keeping_the_first_frame(tmp_path):
    state = official_checkpoint()
    torch.save(state, tmp_path / SPEC.weights_file)
    encoder, _ = _build()
    load_encoder_weights(encoder, SPEC, tmp_path / SPEC.weights_file)
    loaded = encoder.state_dict()
    torch.testing.assert_close(loaded["embed.pos_embed"], state["encoder.pos_embed"][:, :197])
    torch.testing.assert_close(
        loaded["embed.patch_embed.proj.weight"], state["encoder.patch_embed.proj.weight"]
    )
    torch.testing.assert_close(
        loaded["layers.3.attn.proj.bias"], state["encoder.blocks.3.attn.proj.bias"]
    )


def test_a_missing_or_foreign_key_is_named(tmp_path):
    state = official_checkpoint()
    del state["encoder.blocks.2.mlp.fc1.bias"]
    state["encoder.temporal_embed_enc.scale"] = torch.ones(1)
    torch.save(state, tmp_path / SPEC.weights_file)
    encoder, _ = _build()
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, tmp_path / SPEC.weights_file)
    assert "missing encoder keys (1): layers.2.mlp.fc1.bias" in str(error.value)
    assert "unexpected keys (1): temporal_embed_enc.scale" in str(error.value)


def test_segmenter_runs_on_a_gsdd_batch():
    config = TrialConfig(
        dataset="gsdd", model="prithvi_eo2", depth=0, weights="random", batch_size=2
    )
    built = build_segmenter(config, get_dataset("gsdd"))
    assert built.input_size == 224 and built.info["encoder_trainable_params"] == 0
    rng = np.random.default_rng(0)
    sample = {"optical": rng.standard_normal((2, 10, 32, 32)).astype(np.float32)}
    logits = built.model(built.mapping.apply(sample))
    assert logits.shape == (2, 2, 32, 32)
    logits.sum().backward()
    assert all(p.grad is None for p in built.model.encoder.parameters())
