"""Checkpoints in each family's official key layout (names from the original code: timm-style
ViTs for MoCo v3 / DINO / MAE / Scale-MAE / Prithvi, timm's BEiT for data2vec, OpenAI CLIP,
DOFA's Dynamic_MLP_OFA, terratorch's TerraMindViT), tiny but shaped like the real ones."""

import argparse
import hashlib

import pytest
import timm
import torch
from timm.models.beit import Beit, gen_relative_position_index

from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError, WeightsError
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.weights import (
    WEIGHTS_ENV,
    default_weights_dir,
    find_weights,
    load_encoder_weights,
    require_weights,
    weights_dir,
)

DIM, DEPTH, HEADS = 32, 2, 2
TINY = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, "tapped_layers": (0, 1)}


class Unpicklable:
    """A class a checkpoint must not be allowed to instantiate."""


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def _encoder(key, dataset="glid"):
    spec = get_encoder_spec(key)
    return spec, spec.builder(spec, map_bands(get_dataset(dataset), spec.bands, key), **TINY)


def _rand(*shape):
    return torch.randn(*shape)


def _timm_vit(in_chans, patch=16, **kwargs):
    model = timm.create_model(
        f"vit_small_patch{patch}_224",
        pretrained=False,
        num_classes=0,
        in_chans=in_chans,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=HEADS,
        **kwargs,
    )
    return {k: v.clone() for k, v in model.state_dict().items()}


def _mae_decoder():
    return {
        "mask_token": _rand(1, 1, 16),
        "decoder_embed.weight": _rand(16, DIM),
        "decoder_pos_embed": _rand(1, 197, 16),
        "decoder_blocks.0.attn.qkv.weight": _rand(48, 16),
        "decoder_norm.weight": _rand(16),
        "decoder_pred.weight": _rand(16 * 16 * 13, 16),
    }


def moco_checkpoint():
    vit = _timm_vit(13)
    state = {f"module.base_encoder.{k}": v for k, v in vit.items()}
    state |= {f"module.momentum_encoder.{k}": v.clone() for k, v in vit.items()}
    state |= {
        "module.base_encoder.head.0.weight": _rand(64, DIM),
        "module.predictor.0.weight": _rand(64, 64),
    }
    return {"epoch": 100, "arch": "vit_small", "state_dict": state}, vit


def dino_checkpoint():
    vit = _timm_vit(13)
    head = {"head.mlp.0.weight": _rand(64, DIM), "head.last_layer.weight_g": _rand(1, 64)}
    teacher = {f"backbone.{k}": v for k, v in vit.items()} | head
    student = {f"module.{k}": v.clone() for k, v in teacher.items()}
    args = argparse.Namespace(arch="vit_small", patch_size=16)
    return {"teacher": teacher, "student": student, "epoch": 100, "args": args}, vit


def mae_checkpoint(in_chans=13):
    vit = _timm_vit(in_chans)
    return {"model": vit | _mae_decoder(), "args": argparse.Namespace(model="mae")}, vit


def data2vec_checkpoint():
    model = Beit(
        in_chans=13,
        num_classes=0,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=HEADS,
        init_values=0.1,
        use_abs_pos_emb=False,
        use_shared_rel_pos_bias=True,
    )
    official = {k: v.clone() for k, v in model.state_dict().items()}
    official["rel_pos_bias.relative_position_index"] = gen_relative_position_index((14, 14))
    official["mask_token"] = _rand(1, 1, DIM)
    return {"model": official}, official


def clip_checkpoint():
    visual = {
        "conv1.weight": _rand(DIM, 3, 32, 32),
        "class_embedding": _rand(DIM),
        "positional_embedding": _rand(50, DIM),
        "ln_pre.weight": _rand(DIM),
        "ln_pre.bias": _rand(DIM),
        "ln_post.weight": _rand(DIM),
        "ln_post.bias": _rand(DIM),
        "proj": _rand(DIM, 16),
    }
    for i in range(DEPTH):
        block = f"transformer.resblocks.{i}."
        visual |= {
            block + "ln_1.weight": _rand(DIM),
            block + "ln_1.bias": _rand(DIM),
            block + "attn.in_proj_weight": _rand(3 * DIM, DIM),
            block + "attn.in_proj_bias": _rand(3 * DIM),
            block + "attn.out_proj.weight": _rand(DIM, DIM),
            block + "attn.out_proj.bias": _rand(DIM),
            block + "ln_2.weight": _rand(DIM),
            block + "ln_2.bias": _rand(DIM),
            block + "mlp.c_fc.weight": _rand(4 * DIM, DIM),
            block + "mlp.c_fc.bias": _rand(4 * DIM),
            block + "mlp.c_proj.weight": _rand(DIM, 4 * DIM),
            block + "mlp.c_proj.bias": _rand(DIM),
        }
    text = {
        "token_embedding.weight": _rand(100, 16),
        "positional_embedding": _rand(77, 16),
        "transformer.resblocks.0.attn.in_proj_weight": _rand(48, 16),
        "ln_final.weight": _rand(16),
        "text_projection": _rand(16, 16),
        "logit_scale": _rand(()),
    }
    return {f"visual.{k}": v for k, v in visual.items()} | text, visual


def prithvi_checkpoint(prefix=""):
    vit = _timm_vit(6)
    encoder = {k: v for k, v in vit.items() if k.startswith(("blocks.", "norm."))}
    encoder |= {
        "cls_token": _rand(1, 1, DIM),
        "pos_embed": _rand(1, 3 * 196 + 1, DIM),
        "patch_embed.proj.weight": _rand(DIM, 6, 1, 16, 16),
        "patch_embed.proj.bias": _rand(DIM),
    }
    decoder = _mae_decoder()
    if prefix:
        decoder = {f"decoder.{k}": v for k, v in decoder.items()}
    return {f"{prefix}{k}": v for k, v in encoder.items()} | decoder, encoder


def dofa_checkpoint():
    generator = "patch_embed.weight_generator."
    layer = generator + "transformer_encoder.layers.0."
    official = {
        generator + "weight_tokens": _rand(128, 128),
        generator + "bias_token": _rand(1, 128),
        layer + "self_attn.in_proj_weight": _rand(384, 128),
        layer + "self_attn.in_proj_bias": _rand(384),
        layer + "self_attn.out_proj.weight": _rand(128, 128),
        layer + "self_attn.out_proj.bias": _rand(128),
        layer + "linear1.weight": _rand(2048, 128),
        layer + "linear1.bias": _rand(2048),
        layer + "linear2.weight": _rand(128, 2048),
        layer + "linear2.bias": _rand(128),
        layer + "norm1.weight": _rand(128),
        layer + "norm1.bias": _rand(128),
        layer + "norm2.weight": _rand(128),
        layer + "norm2.bias": _rand(128),
        generator + "fc_weight.weight": _rand(16 * 16 * DIM, 128),
        generator + "fc_weight.bias": _rand(16 * 16 * DIM),
        generator + "fc_bias.weight": _rand(DIM, 128),
        generator + "fc_bias.bias": _rand(DIM),
        "patch_embed.fclayer.w1.weight": _rand(128, 128),
        "patch_embed.fclayer.w1.bias": _rand(128),
        "patch_embed.fclayer.w2.weight": _rand(128, 128),
        "patch_embed.fclayer.w2.bias": _rand(128),
        "cls_token": _rand(1, 1, DIM),
        "pos_embed": _rand(1, 197, DIM),
        "fc_norm.weight": _rand(DIM),
        "fc_norm.bias": _rand(DIM),
        "head.weight": _rand(45, DIM),
        "head.bias": _rand(45),
    }
    official |= {k: v for k, v in _timm_vit(3).items() if k.startswith("blocks.")}
    return official, official


def scalemae_checkpoint():
    vit = _timm_vit(3)
    extra = _mae_decoder() | {
        "mask_token_decoder": _rand(1, 1, 16),
        "fpn.fpn1.0.weight": _rand(16, 16, 2, 2),
        "fcn_high.layers.0.weight": _rand(16, 16, 3, 3),
        "fcn_low.layers.0.weight": _rand(16, 16, 3, 3),
    }
    return {"model": vit | extra, "epoch": 800}, vit


def terramind_checkpoint():
    hidden = int(2 * 4 * DIM / 3)
    official = {}
    for name, channels in (
        ("untok_sen2l2a@224", 12),
        ("untok_sen1grd@224", 2),
        ("untok_dem@224", 1),
    ):
        official |= {
            f"encoder_embeddings.{name}.proj.weight": _rand(DIM, channels * 16 * 16),
            f"encoder_embeddings.{name}.pos_emb": _rand(1, 196, DIM),
            f"encoder_embeddings.{name}.mod_emb": _rand(1, 1, DIM),
        }
    official["encoder_embeddings.tok_lulc@224.token_emb.weight"] = _rand(64, DIM)
    for i in range(DEPTH):
        block = f"encoder.{i}."
        official |= {
            block + "norm1.weight": _rand(DIM),
            block + "norm1.bias": torch.zeros(DIM),
            block + "attn.qkv.weight": _rand(3 * DIM, DIM),
            block + "attn.proj.weight": _rand(DIM, DIM),
            block + "norm2.weight": _rand(DIM),
            block + "norm2.bias": torch.zeros(DIM),
            block + "mlp.fc1.weight": _rand(hidden, DIM),
            block + "mlp.fc2.weight": _rand(DIM, hidden),
            block + "mlp.fc3.weight": _rand(hidden, DIM),
        }
    official |= {
        "encoder_norm.weight": _rand(DIM),
        "encoder_norm.bias": torch.zeros(DIM),
        "decoder.0.self_attn.qkv.weight": _rand(3 * DIM, DIM),
        "decoder_embeddings.tok_sen2l2a@224.token_emb.weight": _rand(64, DIM),
        "decoder_norm.weight": _rand(DIM),
        "decoder_proj_context.weight": _rand(DIM, DIM),
    }
    return official, official


# (model, dataset, checkpoint factory, [(encoder key, official key)] that must carry over)
LAYOUT_CASES = [
    (
        "ssl4eo_moco",
        "glid",
        moco_checkpoint,
        [("embed.pos_embed", "pos_embed"), ("layers.1.mlp.fc2.weight", "blocks.1.mlp.fc2.weight")],
    ),
    (
        "ssl4eo_dino",
        "glid",
        dino_checkpoint,
        [("embed.patch_embed.proj.weight", "patch_embed.proj.weight")],
    ),
    ("ssl4eo_mae", "glid", mae_checkpoint, [("layers.0.attn.qkv.bias", "blocks.0.attn.qkv.bias")]),
    (
        "ssl4eo_mae",
        "caffe",
        lambda: mae_checkpoint(in_chans=2),
        [("embed.patch_embed.proj.weight", "patch_embed.proj.weight")],
    ),
    (
        "ssl4eo_data2vec",
        "glid",
        data2vec_checkpoint,
        [
            (
                "embed.rel_pos_bias.relative_position_bias_table",
                "rel_pos_bias.relative_position_bias_table",
            ),
            ("layers.1.gamma_2", "blocks.1.gamma_2"),
            ("layers.0.attn.q_bias", "blocks.0.attn.q_bias"),
        ],
    ),
    (
        "remoteclip",
        "glid",
        clip_checkpoint,
        [
            ("embed.norm_pre.weight", "ln_pre.weight"),
            ("layers.1.attn.qkv.weight", "transformer.resblocks.1.attn.in_proj_weight"),
            ("layers.0.mlp.fc2.bias", "transformer.resblocks.0.mlp.c_proj.bias"),
        ],
    ),
    (
        "prithvi",
        "glid",
        prithvi_checkpoint,
        [
            ("embed.patch_embed.proj.weight", "patch_embed.proj.weight"),
            ("layers.1.norm2.weight", "blocks.1.norm2.weight"),
        ],
    ),
    (
        "prithvi",
        "glid",
        lambda: prithvi_checkpoint(prefix="encoder."),
        [("embed.cls_token", "cls_token")],
    ),
    (
        "dofa",
        "gld",
        dofa_checkpoint,
        [
            (
                "embed.patch_embed.weight_generator.fc_weight.weight",
                "patch_embed.weight_generator.fc_weight.weight",
            ),
            ("embed.pos_embed", "pos_embed"),
        ],
    ),
    (
        "scalemae",
        "glid",
        scalemae_checkpoint,
        [("layers.1.attn.proj.weight", "blocks.1.attn.proj.weight")],
    ),
    (
        "terramind",
        "gld",
        terramind_checkpoint,
        [
            (
                "embed.encoder_embeddings.untok_sen1grd@224.proj.weight",
                "encoder_embeddings.untok_sen1grd@224.proj.weight",
            ),
            ("layers.1.mlp.fc1_g.weight", "encoder.1.mlp.fc1.weight"),
            ("layers.1.mlp.fc1_x.weight", "encoder.1.mlp.fc3.weight"),
            ("head_norm.weight", "encoder_norm.weight"),
        ],
    ),
    (
        "terramind",
        "caffe",
        terramind_checkpoint,
        [
            (
                "embed.encoder_embeddings.untok_sen1grd@224.pos_emb",
                "encoder_embeddings.untok_sen1grd@224.pos_emb",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("key", "dataset", "make", "pairs"),
    LAYOUT_CASES,
    ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(LAYOUT_CASES)],
)
def test_official_checkpoint_layouts_load_into_the_encoder(tmp_path, key, dataset, make, pairs):
    checkpoint, official = make()
    path = tmp_path / "official.pth"
    torch.save(checkpoint, path)
    spec, encoder = _encoder(key, dataset)
    digest = load_encoder_weights(encoder, spec, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = encoder.state_dict()
    for ours, theirs in pairs:
        torch.testing.assert_close(loaded[ours], official[theirs].reshape(loaded[ours].shape))


def test_clip_class_and_position_embeddings_take_timm_shapes(tmp_path):
    checkpoint, visual = clip_checkpoint()
    torch.save(checkpoint, tmp_path / "clip.pt")
    spec, encoder = _encoder("remoteclip")
    load_encoder_weights(encoder, spec, tmp_path / "clip.pt")
    torch.testing.assert_close(encoder.embed.cls_token, visual["class_embedding"].view(1, 1, DIM))
    torch.testing.assert_close(encoder.embed.pos_embed, visual["positional_embedding"][None])


def test_prithvi_keeps_the_first_frame_of_its_three_frame_position_code(tmp_path):
    checkpoint, official = prithvi_checkpoint()
    torch.save(checkpoint, tmp_path / "prithvi.pt")
    spec, encoder = _encoder("prithvi")
    load_encoder_weights(encoder, spec, tmp_path / "prithvi.pt")
    torch.testing.assert_close(encoder.embed.pos_embed, official["pos_embed"][:, :197])


def test_wrong_shapes_are_listed_key_by_key(tmp_path):
    checkpoint, _ = mae_checkpoint(in_chans=3)
    torch.save(checkpoint, tmp_path / "rgb_mae.pth")
    spec, encoder = _encoder("ssl4eo_mae")
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, spec, tmp_path / "rgb_mae.pth")
    message = str(error.value)
    assert "does not fit model 'ssl4eo_mae'" in message
    assert (
        "shape mismatches (1): embed.patch_embed.proj.weight: checkpoint (32, 3, 16, 16) vs "
        in message
    )
    assert "encoder (32, 13, 16, 16)" in message and "decoder" not in message


def test_missing_and_unexpected_encoder_keys_are_listed(tmp_path):
    checkpoint, _ = moco_checkpoint()
    state = checkpoint["state_dict"]
    for name in [k for k in state if k.startswith("module.base_encoder.blocks.1.")]:
        del state[name]
    state["module.base_encoder.blocks.0.attn.extra_scale"] = torch.ones(1)
    torch.save(checkpoint, tmp_path / "moco.pth")
    spec, encoder = _encoder("ssl4eo_moco")
    before = encoder.state_dict()["layers.0.attn.qkv.weight"].clone()
    with pytest.raises(WeightsError) as error:
        load_encoder_weights(encoder, spec, tmp_path / "moco.pth")
    message = str(error.value)
    assert (
        "missing encoder keys (12): layers.1.attn.proj.bias, layers.1.attn.proj.weight" in message
    )
    assert "unexpected keys (1): layers.0.attn.extra_scale" in message
    assert "momentum" not in message and "predictor" not in message
    torch.testing.assert_close(encoder.state_dict()["layers.0.attn.qkv.weight"], before)


def test_long_key_lists_are_shortened(tmp_path):
    torch.save({"model": {}}, tmp_path / "empty.pth")
    spec, encoder = _encoder("ssl4eo_mae")
    with pytest.raises(WeightsError, match=r"missing encoder keys \(\d+\): .* and \d+ more"):
        load_encoder_weights(encoder, spec, tmp_path / "empty.pth")


def test_checkpoints_that_pickle_objects_or_are_corrupt_are_refused(tmp_path):
    spec, encoder = _encoder("ssl4eo_mae")
    torch.save({"model": {}, "trainer": Unpicklable()}, tmp_path / "objects.pth")
    with pytest.raises(WeightsError, match="pickles .*Unpicklable.* loads tensors only"):
        load_encoder_weights(encoder, spec, tmp_path / "objects.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint .*junk.pth"):
        load_encoder_weights(encoder, spec, tmp_path / "junk.pth")
    torch.save({"model": [1, 2]}, tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict of tensors"):
        load_encoder_weights(encoder, spec, tmp_path / "list.pth")


def test_models_trained_from_scratch_have_no_checkpoint_layout(tmp_path):
    torch.save({}, tmp_path / "vit.pth")
    spec, encoder = _encoder("vit")
    with pytest.raises(WeightsError, match="model 'vit' .* has no checkpoint layout"):
        load_encoder_weights(encoder, spec, tmp_path / "vit.pth")


def test_weights_folder_resolution(tmp_path, monkeypatch):
    assert weights_dir("random") is None
    assert weights_dir(None) == default_weights_dir()
    assert str(default_weights_dir()).endswith("cryotune/weights")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "env"))
    assert weights_dir(None) == tmp_path / "env"
    assert weights_dir(str(tmp_path)) == tmp_path
    with pytest.raises(UsageError, match="weights folder '.*nowhere' does not exist.*'random'"):
        weights_dir(str(tmp_path / "nowhere"))


def test_weights_are_found_in_the_folder_or_a_model_subfolder(tmp_path):
    spec = get_encoder_spec("dofa")
    assert find_weights(spec, tmp_path) is None
    nested = tmp_path / "dofa" / "DOFA_ViT_base_e100.pth"
    nested.parent.mkdir()
    nested.write_bytes(b"x")
    assert find_weights(spec, tmp_path) == nested
    top = tmp_path / "DOFA_ViT_base_e100.pth"
    top.write_bytes(b"x")
    assert find_weights(spec, tmp_path) == top
    assert require_weights(spec, str(tmp_path)) == top


def test_sar_variant_has_its_own_file(tmp_path):
    spec = get_encoder_spec("ssl4eo_mae")
    (tmp_path / "B13_vits16_mae_0099_ckpt.pth").write_bytes(b"x")
    assert find_weights(spec, tmp_path, "sar") is None
    (tmp_path / "B2_vits16_mae_ep99.pth").write_bytes(b"x")
    assert find_weights(spec, tmp_path, "sar") == tmp_path / "B2_vits16_mae_ep99.pth"


def test_missing_weights_say_which_file_where_searched_and_where_to_get_it(tmp_path):
    spec = get_encoder_spec("terramind")
    with pytest.raises(WeightsError) as error:
        require_weights(spec, str(tmp_path))
    message = str(error.value)
    assert "no weights file 'TerraMind_v1_large.pt' for model 'terramind'" in message
    assert f"searched {tmp_path}, {tmp_path / 'terramind'}" in message
    assert "HF ibm-esa-geospatial/TerraMind-1.0-large" in message
    assert "--weights random" in message
    with pytest.raises(WeightsError, match="B2_vits16_mae_ep99.pth"):
        require_weights(get_encoder_spec("ssl4eo_mae"), str(tmp_path), "sar")
    with pytest.raises(WeightsError, match=r"does not exist"):
        load_encoder_weights(_encoder("dofa")[1], get_encoder_spec("dofa"), tmp_path / "x.pth")
