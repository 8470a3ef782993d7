"""RAMEN: band codes per pixel (any bands), the resolution set by input_res / res, one token set
per optical / SAR group, depth, and ``ramen_base_99.ckpt``'s Lightning layout."""

import pytest
import torch
from timm.models.vision_transformer import Block

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError, UsageError, WeightsError
from cryotune.models.catalog import count_params, reference_mapping
from cryotune.models.depth import apply_finetune_depth
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.ramen import RADAR_CODES, band_groups
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

DIM, DEPTH, HEADS = 32, 3, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (0, 2)}
SPEC = get_encoder_spec("ramen")


def _build(dataset, **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, "ramen")
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def _inputs(mapping, height=40, width=None, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, len(mapping.inputs["all"]), height, width or height)
    return {"all": torch.randn(*shape, generator=generator)}


def test_parameter_count_and_settings_match_the_published_model():
    assert count_params("ramen") == pytest.approx(SPEC.published_params, rel=0.02)
    assert SPEC.embed_dim == 768 and SPEC.num_blocks == 12 and SPEC.tapped_layers == (3, 5, 7, 11)


@pytest.mark.parametrize(
    ("dataset", "geometry"),
    [
        # pangaea-bench/outputs/*/.hydra/overrides.yaml of Cryo-Bench's RAMEN runs
        ("glid", (512, 3.0, 24.0, 64)),
        ("sicd", (128, 40.0, 80.0, 64)),
        # no saved run: ramen_monotemporal.yaml defaults, input_size ${dataset.img_size}
        ("caffe", (1024, 10.0, 40.0, 256)),
        ("gld", (300, 10.0, 40.0, 75)),
        ("gsdd", (512, 10.0, 40.0, 128)),
    ],
)
def test_input_size_and_gsds_are_cryobenchs_run_on_each_dataset(dataset, geometry):
    spec = get_dataset(dataset)
    options = SPEC.options_for(spec)
    assert (SPEC.input_size_for(spec), options["input_res"], options["res"]) == geometry[:3]
    assert options["token_grid"] == geometry[3]
    encoder, _ = _build(dataset)
    assert (encoder.embed.input_res, encoder.embed.res) == geometry[1:3]


@pytest.mark.parametrize("dataset", ["glid", "sicd"])
def test_the_papers_crop_gives_a_64_by_64_token_grid(dataset):
    encoder, mapping = _build(dataset, depth=1, tapped_layers=(0,))
    size = SPEC.input_size_for(get_dataset(dataset))
    encoder.eval()
    with torch.no_grad():
        maps = encoder(_inputs(mapping, size, batch=1))
    assert [m.shape[-2:] for m in maps] == [(64, 64)]


def test_optical_and_sar_bands_form_one_token_set_each():
    optical, _ = _build("glid")
    assert [g.kind for g in optical.embed.groups] == ["optical"]
    assert optical.embed.groups[0].codes == (665.0, 560.0, 490.0)
    assert not hasattr(optical.embed, "radar_projector")
    both, mapping = _build("gld")
    assert [g.kind for g in both.embed.groups] == ["optical", "sar"]
    assert both.embed.groups[1].codes == ("asc_vv",)
    assert both.out_channels == [2 * DIM] * 2
    sar, _ = _build("sicd")
    assert [g.codes for g in sar.embed.groups] == [("asc_vv", "asc_vh")]
    assert not hasattr(sar.embed, "spectral_projector")
    with pytest.raises(UsageError, match="no RAMEN band code for FOO"):
        band_groups(("B2", "FOO"), "ramen")


@pytest.mark.parametrize(
    ("size", "grid"), [((40, 40), (10, 10)), ((80, 80), (20, 20)), ((40, 80), (10, 20))]
)
def test_the_feature_grid_is_the_input_scaled_by_input_res_over_res(size, grid):
    encoder, mapping = _build("gld")
    maps = encoder(_inputs(mapping, *size))
    assert [m.shape for m in maps] == [(2, 2 * DIM, *grid)] * 2
    sum(m.square().mean() for m in maps).backward()
    unused = {f"embed.radar_projector.{c}_param" for c in RADAR_CODES if c != "asc_vv"}
    assert all(p.grad is not None for n, p in encoder.named_parameters() if n not in unused)


def test_too_small_inputs_are_refused():
    encoder, mapping = _build("glid")
    with pytest.raises(DataError, match="2x2 px at input_res 3.0 gives no token.*at least 8 px"):
        encoder(_inputs(mapping, 2))


def test_band_order_does_not_matter_only_band_names_do():
    rgb, mapping = _build("glid")
    spec_order = reference_mapping(SPEC, ("B2", "B3", "B4"))
    bgr = SPEC.builder(SPEC, spec_order, **TINY)
    bgr.load_state_dict(rgb.state_dict())
    image = _inputs(mapping)["all"]
    with torch.no_grad():
        ours = rgb({"all": image})
        flipped = bgr({"all": image.flip(1)})
    for a, b in zip(ours, flipped):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_full_width_forward():
    encoder, mapping = _build(
        "caffe", embed_dim=768, depth=12, num_heads=12, tapped_layers=(3, 5, 7, 11)
    )
    encoder.eval()
    with torch.no_grad():
        maps = encoder(_inputs(mapping, 60, batch=1))
    assert [m.shape for m in maps] == [(1, 768, 15, 15)] * 4


def test_depth_trains_trailing_blocks_with_the_final_norm():
    encoder, _ = _build("gld")
    apply_finetune_depth(encoder, 1)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layers.2.", "head_norm.")) for n in trainable)
    apply_finetune_depth(encoder, DEPTH)
    assert encoder.embed.resampler.temperature.requires_grad


def _mlp(prefix, dim=DIM):
    return {
        f"{prefix}.mlp.0.weight": torch.randn(2 * dim, dim),
        f"{prefix}.mlp.0.bias": torch.randn(2 * dim),
        f"{prefix}.mlp.2.weight": torch.randn(dim, 2 * dim),
        f"{prefix}.mlp.2.bias": torch.randn(dim),
        f"{prefix}.mlp.3.weight": torch.randn(dim),
        f"{prefix}.mlp.3.bias": torch.randn(dim),
    }


def official_checkpoint():
    """A Lightning checkpoint of RamenViT: its own names under "state_dict", L-TAE and all
    three projectors included (timm ``Block`` names for the blocks)."""
    state = {
        "cls_token": torch.randn(1, 1, DIM),
        **_mlp("spectral_projector"),
        **_mlp("radar_projector"),
        **{f"radar_projector.{c}_param": torch.randn(DIM) for c in RADAR_CODES},
        **_mlp("dem_projector"),
        **{f"dem_projector.{c}_param": torch.randn(DIM) for c in ("dsm", "dtm", "slope")},
        "resampler.mlp.0.weight": torch.randn(DIM // 4, DIM),
        "resampler.mlp.0.bias": torch.randn(DIM // 4),
        "resampler.mlp.2.weight": torch.randn(4, DIM // 4),
        "resampler.mlp.2.bias": torch.randn(4),
        "resampler.temperature": torch.tensor(0.7),
        "ltae.inconv.0.weight": torch.randn(DIM, DIM),
        "ltae.attention_heads.Q": torch.randn(16, 16),
        "ltae.in_norm.weight": torch.randn(DIM),
        "in_norm.weight": torch.randn(DIM),
        "in_norm.bias": torch.randn(DIM),
        "norm.weight": torch.randn(DIM),
        "norm.bias": torch.randn(DIM),
    }
    for i in range(4):
        state[f"resampler.experts.{i}.weight"] = torch.randn(DIM, DIM, 1, 1)
        state[f"resampler.experts.{i}.bias"] = torch.randn(DIM)
    for i in range(DEPTH):
        block = Block(DIM, HEADS, mlp_ratio=4.0, qkv_bias=True)
        state |= {f"blocks.{i}.{k}": v.clone() for k, v in block.state_dict().items()}
    return {"epoch": 99, "global_step": 1000, "state_dict": state}


@pytest.mark.parametrize("dataset", ["gld", "glid", "caffe"])
def test_the_official_checkpoint_loads_strictly(tmp_path, dataset):
    checkpoint = official_checkpoint()
    path = tmp_path / "ramen_base_99.ckpt"
    torch.save(checkpoint, path)
    encoder, mapping = _build(dataset)
    load_encoder_weights(encoder, SPEC, path)
    state = encoder.state_dict()
    original = checkpoint["state_dict"]
    torch.testing.assert_close(
        state["layers.1.attn.qkv.weight"], original["blocks.1.attn.qkv.weight"]
    )
    torch.testing.assert_close(state["head_norm.bias"], original["norm.bias"])
    torch.testing.assert_close(
        state["embed.resampler.temperature"], original["resampler.temperature"]
    )
    if dataset != "glid":
        torch.testing.assert_close(
            state["embed.radar_projector.asc_vv_param"], original["radar_projector.asc_vv_param"]
        )
    with torch.no_grad():
        assert all(torch.isfinite(m).all() for m in encoder(_inputs(mapping)))


def test_missing_and_unknown_keys_are_named(tmp_path):
    checkpoint = official_checkpoint()
    del checkpoint["state_dict"]["resampler.experts.2.bias"]
    checkpoint["state_dict"]["pos_embed"] = torch.zeros(1, 226, DIM)
    path = tmp_path / "ramen_base_99.ckpt"
    torch.save(checkpoint, path)
    encoder, _ = _build("glid")
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, path)
    assert "missing encoder keys (1): embed.resampler.experts.2.bias" in str(error.value)
    assert "unexpected keys (1): pos_embed" in str(error.value)


@pytest.mark.parametrize(("dataset", "classes", "channels"), [("caffe", 4, 768), ("gld", 2, 1536)])
def test_segmenter_runs_on_a_dataset_batch(dataset, classes, channels, dataset_batch):
    config = TrialConfig(dataset=dataset, model="ramen", depth=2, weights="random", batch_size=2)
    built = build_segmenter(config, get_dataset(dataset))
    assert built.input_size == get_dataset(dataset).tile_size and built.info["filled_bands"] == []
    assert (built.info["input_res"], built.info["res"]) == (10.0, 40.0)
    assert built.model.encoder.out_channels == [channels] * 4
    with torch.no_grad():
        logits = built.model(dataset_batch(built, (40, 40)))
    assert logits.shape == (2, classes, 40, 40)
