"""GFM Swin-B: Swin v1 at 192 px / window 6, Microsoft's key layout in gfm.pth (downsample at the
end of a stage, SimMIM's teacher, decoder and projector beside the encoder), and agreement with
timm's reference Swin on the same weights."""

import numpy as np
import pytest
import timm
import torch
from timm.models.swin_transformer import checkpoint_filter_fn

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import WeightsError
from cryotune.models.catalog import count_params
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.segmenter import build_segmenter
from cryotune.models.weights import load_encoder_weights

torch.set_num_threads(1)

SPEC = get_encoder_spec("gfm_swin")
DIM, DEPTHS, HEADS, WINDOW = 16, (2, 2, 2, 2), (1, 2, 4, 8), 6
TINY = {"embed_dim": DIM, "depth": DEPTHS, "num_heads": HEADS}


class SimMIMConfig:
    """Stands in for the yacs config SimMIM's save_checkpoint pickles beside the weights."""


def _build(dataset="glid", **overrides):
    mapping = map_bands(get_dataset(dataset), SPEC.bands, SPEC.key)
    return SPEC.builder(SPEC, mapping, **{**TINY, **overrides}), mapping


def test_parameter_count_and_geometry_match_the_published_model():
    assert count_params("gfm_swin") == pytest.approx(SPEC.published_params, rel=0.02)
    assert (SPEC.input_size, SPEC.patch_size, SPEC.option("window_size")) == (192, 4, 6)
    assert SPEC.option("depths") == (2, 2, 18, 2) and SPEC.option("num_heads") == (4, 8, 16, 32)
    assert SPEC.bands == {"optical": ("B4", "B3", "B2")} and SPEC.weights_file == "gfm.pth"


@pytest.mark.parametrize(
    ("taps", "shapes"),
    [
        # PANGAEA's GFMSwin_Encoder: each stage after its patch merging, output_dim
        # [256, 512, 1024, 1024] in Cryo-Bench's configs/encoder/gfmswin.yaml.
        ("merged", [(1, 256, 24, 24), (1, 512, 12, 12), (1, 1024, 6, 6), (1, 1024, 6, 6)]),
        ("stages", [(1, 128, 48, 48), (1, 256, 24, 24), (1, 512, 12, 12), (1, 1024, 6, 6)]),
    ],
)
def test_full_size_pyramid_at_192_px(taps, shapes):
    full = {"embed_dim": 128, "depth": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)}
    encoder, _ = _build(taps=taps, **full)
    assert len(encoder.blocks()) == 24
    assert encoder.out_channels == [s[1] for s in shapes]
    encoder.eval()
    with torch.no_grad():
        maps = encoder({"optical": torch.randn(1, 3, 192, 192)})
    assert [tuple(m.shape) for m in maps] == shapes


def test_the_paper_taps_are_the_default_and_the_stage_taps_an_option_in_the_record():
    paper = build_segmenter(
        TrialConfig(dataset="glid", model="gfm_swin", weights="random"), get_dataset("glid")
    )
    assert paper.model.encoder.out_channels == [256, 512, 1024, 1024]
    assert "swin_taps" in paper.info["protocol_settings"]
    stages = build_segmenter(
        TrialConfig(dataset="glid", model="gfm_swin", weights="random", swin_taps="stages"),
        get_dataset("glid"),
    )
    assert stages.model.encoder.out_channels == [128, 256, 512, 1024]


def _rand(*shape):
    return torch.randn(*shape)


def microsoft_swin(prefix=""):
    """Microsoft Swin v1 (SimMIM's SwinTransformerForSimMIM) state dict names and shapes."""
    area, table = WINDOW * WINDOW, (2 * WINDOW - 1) ** 2
    state = {
        "patch_embed.proj.weight": _rand(DIM, 3, 4, 4),
        "patch_embed.proj.bias": _rand(DIM),
        "patch_embed.norm.weight": _rand(DIM),
        "patch_embed.norm.bias": _rand(DIM),
        "mask_token": _rand(1, 1, DIM),
        "norm.weight": _rand(8 * DIM),
        "norm.bias": _rand(8 * DIM),
    }
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        dim, resolution = DIM * 2**i, 48 // 2**i
        for j in range(depth):
            block = f"layers.{i}.blocks.{j}."
            state |= {
                block + "norm1.weight": _rand(dim),
                block + "norm1.bias": _rand(dim),
                block + "attn.relative_position_bias_table": _rand(table, heads),
                block + "attn.relative_position_index": torch.randint(0, table, (area, area)),
                block + "attn.qkv.weight": _rand(3 * dim, dim) * dim**-0.5,
                block + "attn.qkv.bias": _rand(3 * dim),
                block + "attn.proj.weight": _rand(dim, dim) * dim**-0.5,
                block + "attn.proj.bias": _rand(dim),
                block + "norm2.weight": _rand(dim),
                block + "norm2.bias": _rand(dim),
                block + "mlp.fc1.weight": _rand(4 * dim, dim) * dim**-0.5,
                block + "mlp.fc1.bias": _rand(4 * dim),
                block + "mlp.fc2.weight": _rand(dim, 4 * dim) * (4 * dim) ** -0.5,
                block + "mlp.fc2.bias": _rand(dim),
            }
            if j % 2 and resolution > WINDOW:
                windows = (resolution // WINDOW) ** 2
                state[block + "attn_mask"] = torch.zeros(windows, area, area)
        if i < len(DEPTHS) - 1:
            state |= {
                f"layers.{i}.downsample.reduction.weight": _rand(2 * dim, 4 * dim) * dim**-0.5,
                f"layers.{i}.downsample.norm.weight": _rand(4 * dim),
                f"layers.{i}.downsample.norm.bias": _rand(4 * dim),
            }
    return {f"{prefix}{k}": v for k, v in state.items()}


def official_checkpoint():
    """GFM's SimMIM state: encoder, ImageNet teacher, pixel decoder, projector."""
    model = microsoft_swin("encoder.")
    model |= {
        "teacher.patch_embed.proj.weight": _rand(DIM, 3, 4, 4),
        "teacher.layers.0.blocks.0.attn.qkv.weight": _rand(3 * DIM, DIM),
        "teacher.layers.0.downsample.reduction.weight": _rand(2 * DIM, 4 * DIM),
        "teacher.norm.weight": _rand(8 * DIM),
        "decoder.0.weight": _rand(32 * 32 * 3, 8 * DIM, 1, 1),
        "decoder.0.bias": _rand(32 * 32 * 3),
        "projector.weight": _rand(8 * DIM, 8 * DIM),
        "projector.bias": _rand(8 * DIM),
    }
    return {"model": model, "epoch": 99}


def test_the_official_checkpoint_loads_strictly_and_matches_timm_swin(tmp_path):
    checkpoint = official_checkpoint()
    torch.save(checkpoint, tmp_path / "gfm.pth")
    encoder, _ = _build(taps="stages")
    merged, _ = _build()
    load_encoder_weights(encoder, SPEC, tmp_path / "gfm.pth")
    load_encoder_weights(merged, SPEC, tmp_path / "gfm.pth")
    model = checkpoint["model"]
    units = encoder.blocks()
    torch.testing.assert_close(
        units[2].merge.reduction.weight, model["encoder.layers.0.downsample.reduction.weight"]
    )
    torch.testing.assert_close(
        units[7].block.mlp.fc2.bias, model["encoder.layers.3.blocks.1.mlp.fc2.bias"]
    )

    reference = timm.create_model(
        "swin_base_patch4_window7_224",
        pretrained=False,
        img_size=192,
        window_size=WINDOW,
        embed_dim=DIM,
        depths=DEPTHS,
        num_heads=HEADS,
        num_classes=0,
    )
    encoder_part = {k.removeprefix("encoder."): v for k, v in model.items() if "encoder." in k}
    state = checkpoint_filter_fn(encoder_part, reference)
    reference.load_state_dict({k: v for k, v in state.items() if k != "mask_token"})
    image = torch.randn(2, 3, 192, 192)
    encoder.eval()
    merged.eval()
    reference.eval()
    with torch.no_grad():
        ours = encoder({"optical": image})
        theirs = reference.forward_intermediates(image, intermediates_only=True)
        after_merge = [
            reference.layers[i + 1].downsample(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            for i, t in enumerate(theirs[:3])
        ] + [theirs[3]]
        ours_merged = merged({"optical": image})
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(ours_merged, after_merge, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_missing_or_foreign_key_is_named(tmp_path):
    checkpoint = official_checkpoint()
    del checkpoint["model"]["encoder.layers.1.downsample.norm.bias"]
    checkpoint["model"]["encoder.absolute_pos_embed"] = torch.zeros(1, 2304, DIM)
    torch.save(checkpoint, tmp_path / "gfm.pth")
    encoder, _ = _build()
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, SPEC, tmp_path / "gfm.pth")
    assert "missing encoder keys (1): layers.1.downsample.norm.bias" in str(error.value)
    assert "unexpected keys (1): absolute_pos_embed" in str(error.value)


def test_a_training_checkpoint_with_a_pickled_config_is_refused_with_advice(tmp_path):
    checkpoint = official_checkpoint() | {"config": SimMIMConfig()}
    torch.save(checkpoint, tmp_path / "gfm.pth")
    encoder, _ = _build()
    with pytest.raises(WeightsError, match="SimMIMConfig beside its tensors.*re-save"):
        load_encoder_weights(encoder, SPEC, tmp_path / "gfm.pth")


def test_segmenter_runs_on_a_caffe_batch():
    config = TrialConfig(dataset="caffe", model="gfm_swin", depth=1, weights="random", batch_size=2)
    built = build_segmenter(config, get_dataset("caffe"))
    assert built.input_size == 192 and built.info["modalities"] == ["optical"]
    rng = np.random.default_rng(0)
    sample = {"sar": rng.standard_normal((2, 1, 96, 96)).astype(np.float32)}
    sample["optical"] = np.repeat(sample["sar"], 3, axis=1)
    logits = built.model(built.mapping.apply(sample))
    assert logits.shape == (2, 4, 96, 96)
    logits.sum().backward()
    trained = {n for n, p in built.model.encoder.named_parameters() if p.requires_grad}
    last_block = built.model.encoder.layers[3].blocks[1]
    assert trained == {f"layers.3.blocks.1.{n}" for n, _ in last_block.named_parameters()}
