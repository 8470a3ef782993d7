"""SpectralGPT+: 3-D spectral-spatial tokens, 4 x 768 stacked channels, depth, and the
``SpectralGPT+.pth`` layout (MAE-style ``{"model": ...}`` with the decoder to drop)."""

import argparse

import numpy as np
import pytest
import torch

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.depth import apply_finetune_depth
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

DIM, DEPTH, HEADS = 32, 3, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (0, 2)}
SPEC = get_encoder_spec("spectralgpt")


def _build(dataset="gld", **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, "spectralgpt")
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def _image(size=16, batch=2, seed=0):
    return torch.randn(batch, 12, size, size, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_and_geometry_match_the_published_model():
    assert count_params("spectralgpt") == pytest.approx(SPEC.published_params, rel=0.02)
    assert SPEC.input_size == 128 and SPEC.patch_size == 8 and SPEC.tapped_layers == (3, 5, 7, 11)
    assert len(SPEC.bands["optical"]) == 12 and "B10" not in SPEC.bands["optical"]


def test_full_size_forward_gives_3072_channels_at_stride_8():
    with torch.device("meta"):
        meta, _ = _build(embed_dim=768, depth=12, num_heads=12, tapped_layers=(3, 5, 7, 11))
    assert meta.out_channels == [3072] * 4
    encoder, _ = _build(embed_dim=768, depth=4, num_heads=12, tapped_layers=(1, 3))
    encoder.eval()
    with torch.no_grad():
        maps = encoder({"optical": _image(size=128, batch=1)})
    assert [m.shape for m in maps] == [(1, 3072, 16, 16)] * 2


def test_forward_and_backward_at_a_small_input():
    encoder, _ = _build()
    maps = encoder({"optical": _image(size=24)})
    assert [m.shape for m in maps] == [(2, 4 * DIM, 3, 3)] * 2
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_each_band_triplet_is_one_spectral_group():
    encoder, _ = _build()
    image = _image()
    shifted = image.clone()
    shifted[:, 4] += 1.0  # B5: the second group (B4, B5, B6)
    with torch.no_grad():
        before = encoder.embed({"optical": image}).tokens.view(2, 4, 4, DIM)
        after = encoder.embed({"optical": shifted}).tokens.view(2, 4, 4, DIM)
    changed = [not torch.allclose(before[:, g], after[:, g]) for g in range(4)]
    assert changed == [False, True, False, False]


def test_maps_stack_the_groups_embedding_major_as_pangaea_does():
    encoder, _ = _build()
    grid = encoder.embed({"optical": _image()})
    tokens = torch.randn(2, 4 * 2 * 2, DIM)
    maps = grid.to_map(tokens)
    expected = tokens.permute(0, 2, 1).reshape(2, DIM * 4, 2, 2)
    torch.testing.assert_close(maps, expected)
    assert maps[0, 5, 1, 0] == tokens[0, 1 * 4 + 2, 1]  # channel d*4+g: d=1, g=1, cell (1, 0)


def test_the_position_code_is_resampled_for_other_inputs():
    encoder, _ = _build()
    assert encoder.embed.pos_embed_spatial.shape == (1, 256, DIM)
    with torch.no_grad():
        maps = encoder({"optical": _image(size=40, batch=1)})
    assert maps[0].shape == (1, 4 * DIM, 5, 5)


def test_depth_trains_trailing_blocks_and_embeddings_only_at_full_depth():
    encoder, _ = _build()
    apply_finetune_depth(encoder, 1)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("layers.2.") for n in trainable)
    assert encoder.frozen_prefix() == 2
    apply_finetune_depth(encoder, DEPTH)
    assert encoder.embed.pos_embed_spatial.requires_grad
    assert [float(getattr(b.drop_path, "drop_prob", 0.0)) for b in encoder.layers] == [
        0.0,
        0.25,
        0.5,
    ]


def official_checkpoint():
    """SpectralGPT's MAE pretraining save: encoder, final norm, decoder, mask token, args."""
    model = {
        "patch_embed.proj.weight": torch.randn(DIM, 1, 3, 8, 8),
        "patch_embed.proj.bias": torch.randn(DIM),
        "pos_embed_spatial": torch.randn(1, 256, DIM),
        "pos_embed_temporal": torch.randn(1, 4, DIM),
        "norm.weight": torch.randn(DIM),
        "norm.bias": torch.randn(DIM),
        "mask_token": torch.randn(1, 1, 16),
        "decoder_embed.weight": torch.randn(16, DIM),
        "decoder_pos_embed_spatial": torch.randn(1, 256, 16),
        "decoder_blocks.0.attn.q.weight": torch.randn(16, 16),
        "decoder_norm.weight": torch.randn(16),
        "decoder_pred.weight": torch.randn(3 * 64, 16),
    }
    for i in range(DEPTH):
        block = {
            "norm1.weight": torch.randn(DIM),
            "norm1.bias": torch.randn(DIM),
            "norm2.weight": torch.randn(DIM),
            "norm2.bias": torch.randn(DIM),
            "mlp.fc1.weight": torch.randn(4 * DIM, DIM),
            "mlp.fc1.bias": torch.randn(4 * DIM),
            "mlp.fc2.weight": torch.randn(DIM, 4 * DIM),
            "mlp.fc2.bias": torch.randn(DIM),
        }
        for proj in ("q", "k", "v", "proj"):
            block |= {
                f"attn.{proj}.weight": torch.randn(DIM, DIM),
                f"attn.{proj}.bias": torch.randn(DIM),
            }
        model |= {f"blocks.{i}.{k}": v for k, v in block.items()}
    return {
        "model": model,
        "epoch": 99,
        "args": argparse.Namespace(model="mae_vit_base_patch8_128"),
    }


def test_the_official_checkpoint_loads_strictly(tmp_path):
    checkpoint = official_checkpoint()
    path = tmp_path / "SpectralGPT+.pth"
    torch.save(checkpoint, path)
    encoder, _ = _build()
    load_encoder_weights(encoder, SPEC, path)
    state = encoder.state_dict()
    torch.testing.assert_close(
        state["layers.1.attn.k.weight"], checkpoint["model"]["blocks.1.attn.k.weight"]
    )
    torch.testing.assert_close(
        state["embed.pos_embed_temporal"], checkpoint["model"]["pos_embed_temporal"]
    )


def test_missing_and_unknown_keys_are_named(tmp_path):
    checkpoint = official_checkpoint()
    del checkpoint["model"]["blocks.2.attn.v.bias"]
    checkpoint["model"]["cls_token"] = torch.zeros(1, 1, DIM)
    path = tmp_path / "SpectralGPT+.pth"
    torch.save(checkpoint, path)
    encoder, _ = _build()
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, path)
    assert "missing encoder keys (1): layers.2.attn.v.bias" in str(error.value)
    assert "unexpected keys (1): cls_token" in str(error.value)


def test_segmenter_runs_on_a_glid_batch():
    config = TrialConfig(
        dataset="glid", model="spectralgpt", depth=0, weights="random", batch_size=2
    )
    built = build_segmenter(config, get_dataset("glid"))
    assert built.model.encoder.out_channels == [3072] * 4
    assert "optical:B1" in built.info["filled_bands"]
    rng = np.random.default_rng(0)
    sample = {"optical": rng.standard_normal((2, 3, 64, 64)).astype(np.float32)}
    with torch.no_grad():
        logits = built.model(built.mapping.apply(sample))
    assert logits.shape == (2, 2, 64, 64)
