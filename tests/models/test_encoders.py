import numpy as np
import pytest
import torch
from timm.models.beit import gen_relative_position_index

from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError, UnknownNameError, UsageError
from cryotune.models.catalog import count_params, published_mapping
from cryotune.models.encoders import ENCODERS, get_encoder_spec
from cryotune.models.encoders.data2vec import relative_position_index
from cryotune.models.encoders.position import sincos_2d, sincos_3d
from cryotune.models.encoders.terramind import ImageEncoderEmbedding

ISSUE_MODELS = (
    "vit",
    "dofa",
    "prithvi",
    "remoteclip",
    "scalemae",
    "ssl4eo_moco",
    "ssl4eo_dino",
    "ssl4eo_mae",
    "ssl4eo_data2vec",
    "terramind",
)
TINY = {"embed_dim": 32, "depth": 3, "num_heads": 2, "tapped_layers": (0, 2)}


def _build(key, dataset, **overrides):
    spec = get_encoder_spec(key)
    mapping = map_bands(get_dataset(dataset), spec.bands, key)
    return spec.builder(spec, mapping, **overrides), mapping


def _inputs(mapping, size, batch=2):
    generator = torch.Generator().manual_seed(0)
    return {
        m: torch.randn(batch, len(b), size, size, generator=generator)
        for m, b in mapping.inputs.items()
    }


def test_registry_holds_the_issue_models_with_their_cryo_bench_geometry():
    assert set(ISSUE_MODELS) <= set(ENCODERS)
    assert get_encoder_spec("terramind").tapped_layers == (7, 11, 15, 23)
    assert get_encoder_spec("scalemae").num_blocks == 24
    assert get_encoder_spec("prithvi").tapped_layers == (11,)
    assert get_encoder_spec("remoteclip").patch_size == 32
    assert not get_encoder_spec("vit").pretrained
    for key in ISSUE_MODELS[1:]:
        spec = get_encoder_spec(key)
        assert spec.pretrained and spec.weights_file and spec.weights_source, key


def test_unknown_model_lists_the_valid_keys():
    with pytest.raises(UnknownNameError, match="unknown model 'no_such_model'.*dofa.*terramind"):
        get_encoder_spec("no_such_model")


@pytest.mark.parametrize("key", ISSUE_MODELS)
def test_encoder_builds_at_published_size_with_one_map_per_tapped_layer(key):
    spec = get_encoder_spec(key)
    mapping = published_mapping(spec)
    encoder = spec.builder(spec, mapping)
    params = sum(p.numel() for p in encoder.parameters())
    assert params == pytest.approx(spec.published_params, rel=0.02)
    assert len(encoder.blocks()) == spec.num_blocks
    assert encoder.out_channels == [spec.embed_dim] * len(spec.tapped_layers)
    assert not encoder.is_pyramid
    with torch.no_grad():
        maps = encoder(_inputs(mapping, 2 * spec.patch_size, batch=1))
    assert [m.shape for m in maps] == [(1, spec.embed_dim, 2, 2)] * len(spec.tapped_layers)


# torchvision's ViT_B_16_Weights list 86,567,656 parameters (torchvision model docs): ViT-B/16 at
# 224 px on RGB with a 1000-class head (768 x 1000 + 1000) and a final LayerNorm (2 x 768), neither
# of which an encoder whose maps feed a decoder keeps.
VIT_B_16_ENCODER = 86_567_656 - (768 * 1000 + 1000) - 2 * 768


def test_the_vit_baseline_is_vit_b_16_at_the_published_size():
    spec = get_encoder_spec("vit")
    with torch.device("meta"):
        rgb = spec.builder(spec, published_mapping(spec))
    assert sum(p.numel() for p in rgb.parameters()) == VIT_B_16_ENCODER
    # The catalog lists it at all 13 Sentinel-2 bands: 10 more input planes of 16 x 16 x 768.
    assert count_params("vit") == VIT_B_16_ENCODER + 10 * 16 * 16 * 768


FEEDS = [(key, "glid") for key in ISSUE_MODELS] + [
    ("vit", "gld"),
    ("dofa", "gld"),
    ("dofa", "caffe"),
    ("terramind", "gld"),
    ("terramind", "caffe"),
    ("ssl4eo_mae", "caffe"),
    ("ssl4eo_mae", "sicd"),
    ("ssl4eo_dino", "caffe"),
]


@pytest.mark.parametrize(("key", "dataset"), FEEDS)
def test_forward_and_backward_through_a_dataset_band_mapping(key, dataset):
    encoder, mapping = _build(key, dataset, **TINY)
    patch = get_encoder_spec(key).patch_size
    maps = encoder(_inputs(mapping, 2 * patch))
    assert [m.shape for m in maps] == [(2, 32, 2, 2)] * 2
    sum(m.square().mean() for m in maps).backward()
    params = [p for p in encoder.parameters() if p.requires_grad]
    assert params and all(p.grad is not None for p in params)


def test_sar_data_gets_each_encoders_sar_variant():
    mae, _ = _build("ssl4eo_mae", "caffe", **TINY)
    assert mae.modalities == ("sar",) and mae.weights_variant == "sar"
    assert mae.embed.patch_embed.proj.in_channels == 2
    optical_mae, _ = _build("ssl4eo_mae", "gld", **TINY)
    assert optical_mae.modalities == ("optical",) and optical_mae.weights_variant is None
    terramind, _ = _build("terramind", "caffe", **TINY)
    assert list(terramind.embed.encoder_embeddings) == ["untok_sen1grd@224"]
    both, _ = _build("terramind", "gld", **TINY)
    assert list(both.embed.encoder_embeddings) == ["untok_sen2l2a@224", "untok_sen1grd@224"]
    dofa, _ = _build("dofa", "caffe", **TINY)
    assert dofa.embed.wavelengths.tolist() == [3.75]


def test_optical_only_encoders_refuse_the_sar_view_and_read_sicds_rgb_proxy():
    spec = get_encoder_spec("scalemae")
    with pytest.raises(UsageError, match="--view sar: encoder 'scalemae'.*sicd"):
        map_bands(get_dataset("sicd"), spec.bands, spec.key, view="sar")
    assert map_bands(get_dataset("sicd"), spec.bands, spec.key).view == "optical"


def test_dofa_patch_kernel_follows_the_wavelengths_of_the_dataset_bands():
    encoder, mapping = _build("dofa", "gld", **TINY)
    assert encoder.embed.wavelengths.tolist() == pytest.approx(list(mapping.wavelengths["all"]))
    image = _inputs(mapping, 32)["all"]
    waves = encoder.embed.wavelengths
    with torch.no_grad():
        same = encoder.embed.patch_embed(image, waves)
        shifted = encoder.embed.patch_embed(image, waves + 0.3)
    assert same.shape == (2, 2, 2, 32)
    assert not torch.allclose(same, shifted)


def _grad_flags(encoder, inputs):
    flags = []
    hooks = [
        layer.register_forward_hook(lambda m, a, out: flags.append(out.requires_grad))
        for layer in encoder.blocks()
    ]
    maps = encoder(inputs)
    for hook in hooks:
        hook.remove()
    return maps, flags


@pytest.mark.parametrize("key", ["ssl4eo_dino", "terramind", "ssl4eo_data2vec"])
def test_frozen_leading_blocks_run_without_grad_and_get_none(key):
    encoder, mapping = _build(key, "gld", embed_dim=32, depth=4, num_heads=2, tapped_layers=(1, 3))
    inputs = _inputs(mapping, 32)
    reference, all_flags = _grad_flags(encoder, inputs)
    assert all_flags == [True] * 4

    encoder.requires_grad_(False)
    for layer in encoder.blocks()[2:]:
        layer.requires_grad_(True)
    assert encoder.frozen_prefix() == 2
    maps, flags = _grad_flags(encoder, inputs)
    assert flags == [False, False, True, True]
    for ours, theirs in zip(maps, reference):
        torch.testing.assert_close(ours, theirs)
    sum(m.sum() for m in maps).backward()
    assert all(p.grad is None for layer in encoder.blocks()[:2] for p in layer.parameters())
    assert all(p.grad is None for p in encoder.embed.parameters())
    assert all(p.grad is not None for layer in encoder.blocks()[2:] for p in layer.parameters())


def test_trainable_embeddings_keep_every_block_on_the_graph():
    encoder, mapping = _build("ssl4eo_moco", "glid", **TINY)
    encoder.blocks()[0].requires_grad_(False)
    assert encoder.frozen_prefix() == 0
    _, flags = _grad_flags(encoder, _inputs(mapping, 32))
    assert flags == [True, True, True]


def test_terramind_head_norm_follows_the_last_block_only():
    encoder, mapping = _build("terramind", "glid", **TINY)
    assert encoder.head_norms() == [encoder.head_norm]
    maps = encoder(_inputs(mapping, 32))
    sum(m.sum() for m in maps).backward()
    assert encoder.head_norm.weight.grad is not None


@pytest.mark.parametrize("size", [32, 48, 96])
def test_inputs_of_any_multiple_of_the_patch_size_resample_position_codes(size):
    for key in ("ssl4eo_moco", "prithvi", "scalemae", "ssl4eo_data2vec", "terramind"):
        encoder, mapping = _build(key, "glid", **TINY)
        with torch.no_grad():
            maps = encoder(_inputs(mapping, size, batch=1))
        assert maps[0].shape == (1, 32, size // 16, size // 16), key


def test_bad_inputs_name_what_the_encoder_expects():
    encoder, mapping = _build("ssl4eo_dino", "glid", **TINY)
    good = _inputs(mapping, 32)
    with pytest.raises(DataError, match="ssl4eo_dino.*40x40.*multiple of its patch size 16"):
        encoder({"optical": torch.zeros(1, 13, 40, 40)})
    with pytest.raises(DataError, match=r"expects optical input \(B, 13, H, W\)"):
        encoder({"optical": good["optical"][:, :3]})
    with pytest.raises(DataError, match="reads modality 'optical'.*'sar'"):
        encoder({"sar": good["optical"]})


def test_data2vec_refuses_inputs_beyond_its_relative_position_table():
    encoder, mapping = _build("ssl4eo_data2vec", "glid", **TINY)
    with pytest.raises(UsageError, match="at most 224x224 px"):
        encoder(_inputs(mapping, 240, batch=1))


def test_bad_overrides_and_taps_are_usage_errors():
    spec = get_encoder_spec("vit")
    mapping = map_bands(get_dataset("glid"), spec.bands, "vit")
    with pytest.raises(UsageError, match="unknown overrides.*width.*valid: embed_dim"):
        spec.builder(spec, mapping, width=3)
    with pytest.raises(UsageError, match=r"tapped layers \[3, 5\] must lie in 0..1"):
        spec.builder(spec, mapping, embed_dim=32, depth=2, num_heads=2, tapped_layers=(3, 5))


def _mae_1d(dim, positions):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def test_sincos_codes_match_the_published_mae_moco_and_prithvi_formulas():
    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0)))
    mae = np.concatenate([_mae_1d(32, grid[0]), _mae_1d(32, grid[1])], axis=1)
    np.testing.assert_allclose(sincos_2d(5, 5, 64).numpy(), mae, atol=1e-6)

    grid_w, grid_h = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(16.0) / 16)
    out_w, out_h = grid_w.flatten()[:, None] * omega, grid_h.flatten()[:, None] * omega
    moco = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    torch.testing.assert_close(sincos_2d(5, 5, 64, rows_first=True), moco)

    w_embed = np.tile(_mae_1d(24, np.arange(4.0)), (2 * 3, 1))
    h_embed = np.tile(np.repeat(_mae_1d(24, np.arange(3.0)), 4, axis=0), (2, 1))
    t_embed = np.repeat(_mae_1d(16, np.arange(2.0)), 3 * 4, axis=0)
    prithvi = np.concatenate([w_embed, h_embed, t_embed], axis=1)
    np.testing.assert_allclose(sincos_3d(2, 3, 4, 64).numpy(), prithvi, atol=1e-6)


def test_scalemae_position_code_scales_positions_by_the_input_resolution():
    encoder, mapping = _build("scalemae", "glid", **TINY)
    code = encoder.embed.position_code(3, 3)
    assert code.shape == (1, 10, 32)
    torch.testing.assert_close(code[0, 1:], sincos_2d(3, 3, 32))
    torch.testing.assert_close(code[0, 0], torch.zeros(32))
    doubled = get_encoder_spec("scalemae").option("input_res") * 2
    assert not torch.allclose(sincos_2d(3, 3, 32, scale=doubled), code[0, 1:])


def test_data2vec_indexes_its_shared_bias_table_exactly():
    torch.testing.assert_close(
        relative_position_index(14, 14, (14, 14)), gen_relative_position_index((14, 14))
    )
    small = relative_position_index(2, 3, (14, 14))
    full = gen_relative_position_index((14, 14))
    assert small[1, 2] == full[1, 2] and small[1, 4] == full[1, 15]
    assert small.shape == (7, 7) and small[0, 0] == full[0, 0]


def test_terramind_projects_patches_in_height_width_channel_order():
    embedding = ImageEncoderEmbedding(num_channels=2, patch_size=2, dim=8, grid=(2, 2))
    with torch.no_grad():
        embedding.proj.weight.copy_(torch.eye(8))
        embedding.pos_emb.zero_()
        embedding.mod_emb.zero_()
    image = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens, rows, cols = embedding(image)
    assert (rows, cols) == (2, 2)
    expected = image[0, :, 0:2, 2:4].permute(1, 2, 0).flatten()
    torch.testing.assert_close(tokens[0, 1], expected)
