import dataclasses
from types import MappingProxyType

import pytest
import torch

from cryotune.config import TrialConfig
from cryotune.data.datasets import get_dataset
from cryotune.errors import UsageError, WeightsError
from cryotune.models.depth import count_params
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.segmenter import CustomEncoder, build_segmenter
from cryotune.models.weights import file_sha256

torch.set_num_threads(1)


def _build(dataset, model, depth, weights="random", batch_size=8):
    config = TrialConfig(
        dataset=dataset, model=model, depth=depth, weights=weights, batch_size=batch_size
    )
    return build_segmenter(config, get_dataset(dataset))


@pytest.fixture(scope="module")
def vit_depth_3():
    return _build("glid", "vit", 3)


@pytest.fixture(scope="module")
def vit_depth_0():
    return _build("glid", "vit", 0)


@pytest.mark.parametrize(
    ("dataset", "size", "classes"), [("glid", (37, 50), 2), ("caffe", (24, 24), 4)]
)
def test_unet_end_to_end_on_full_odd_tiles(dataset, size, classes, dataset_batch):
    built = _build(dataset, "unet", 5)
    assert built.input_size is None and built.spec.key == "unet"
    assert built.info["weights"] == "random" and built.info["weights_sha256"] is None
    assert built.info["modalities"] == ["all"]
    logits = built.model(dataset_batch(built, size))
    assert logits.shape == (2, classes, *size)
    logits.sum().backward()
    assert all(p.grad is not None for p in built.model.parameters())


def test_vit_end_to_end_on_caffe_grey_as_rgb_as_cryobench_ran_it(dataset_batch):
    built = _build("caffe", "vit", 12)
    assert built.input_size == 224
    assert built.mapping.inputs == {"all": ("B4", "B3", "B2")}
    assert built.info["view"] == "optical" and built.info["paper_view"] == "optical"
    logits = built.model(dataset_batch(built, (32, 48)))
    assert logits.shape == (2, 4, 32, 48)
    logits.sum().backward()
    assert built.model.encoder.blocks()[0].attn.qkv.weight.grad is not None


def test_vit_info_describes_the_trial(vit_depth_3):
    info = vit_depth_3.info
    assert info["depth"] == 3 and info["num_blocks"] == 12 and info["decoder"] == "upernet"
    # GLID feeds it RGB: torchvision's ViT_B_16 (86,567,656) without head and final norm
    assert info["encoder_params"] == 86_567_656 - 769_000 - 1536
    assert info["total_params"] == info["encoder_params"] + count_params(vit_depth_3.model.decoder)
    assert info["filled_bands"] == []
    assert info["trainable_params"] == info["encoder_trainable_params"] + count_params(
        vit_depth_3.model.decoder
    )


def test_vit_trainable_params_for_frozen_middle_and_full_depth(vit_depth_3, vit_depth_0):
    blocks = vit_depth_3.model.encoder.blocks()
    per_block = count_params(blocks[0])
    encoder_total = count_params(vit_depth_3.model.encoder)
    assert vit_depth_3.info["encoder_trainable_params"] == 3 * per_block
    assert vit_depth_0.info["encoder_trainable_params"] == 0
    assert _build("glid", "vit", 12).info["encoder_trainable_params"] == encoder_total


def test_embeddings_train_only_at_full_depth_and_decoder_always(vit_depth_3, vit_depth_0):
    encoder = vit_depth_3.model.encoder
    assert not any(p.requires_grad for m in encoder.embeddings() for p in m.parameters())
    assert all(p.requires_grad for p in vit_depth_3.model.decoder.parameters())
    assert all(p.requires_grad for p in vit_depth_0.model.decoder.parameters())


def test_train_mode_keeps_frozen_blocks_in_eval(vit_depth_3):
    model = vit_depth_3.model.train()
    blocks = model.encoder.blocks()
    assert not any(m.training for b in blocks[:9] for m in b.modules())
    assert all(m.training for b in blocks[9:] for m in b.modules())
    assert model.decoder.training
    model.eval()
    assert not any(m.training for m in model.modules())


def test_frozen_blocks_store_no_activations(vit_depth_3, dataset_batch):
    model = vit_depth_3.model.train()
    seen = []
    hooks = [
        b.register_forward_hook(lambda _m, _i, out: seen.append(out.requires_grad))
        for b in model.encoder.blocks()
    ]
    model(dataset_batch(vit_depth_3, (32, 32)))
    for hook in hooks:
        hook.remove()
    assert seen == [False] * 9 + [True] * 3


@pytest.mark.parametrize("depth", [13, 99])
def test_invalid_depth_is_a_usage_error_naming_the_flag_and_range(depth):
    with pytest.raises(UsageError, match=r"--depth .* valid is 0\.\.12"):
        _build("glid", "vit", depth)


@pytest.mark.parametrize(
    ("dataset", "file", "fetch", "source"),
    [
        ("glid", "B13_vits16_mae_0099_ckpt.pth", "ssl4eo_mae:optical", "drive.google.com"),
        ("caffe", "B2_vits16_mae_ep99.pth", "ssl4eo_mae:sar", "HF wangyi111/SSL4EO-S12"),
    ],
)
def test_pretrained_model_without_weights_names_file_source_and_fetch_command(
    tmp_path, dataset, file, fetch, source
):
    with pytest.raises(WeightsError) as error:
        _build(dataset, "ssl4eo_mae", 0, weights=str(tmp_path))
    message = str(error.value)
    assert f"no weights file '{file}'" in message and source in message
    assert f"`cryotune weights fetch {fetch} --weights {tmp_path}`" in message


def test_ssl4eo_mae_depth_semantics_and_sar_variant(dataset_batch):
    frozen = _build("caffe", "ssl4eo_mae", 0)
    assert frozen.info["modalities"] == ["sar"] and frozen.info["filled_bands"] == ["sar:VH"]
    assert frozen.info["encoder_trainable_params"] == 0
    middle = _build("caffe", "ssl4eo_mae", 6)
    blocks = middle.model.encoder.blocks()
    assert middle.info["encoder_trainable_params"] == 6 * count_params(blocks[0])
    full = _build("caffe", "ssl4eo_mae", 12)
    assert full.info["encoder_trainable_params"] == count_params(full.model.encoder)
    logits = middle.model(dataset_batch(middle, (32, 32)))
    assert logits.shape == (2, 4, 32, 32)


def test_upernet_models_refuse_single_tile_batches_and_unet_takes_them(dataset_batch):
    with pytest.raises(UsageError, match=r"--batch-size 1: .* valid: 2 or more"):
        _build("glid", "vit", 0, batch_size=1)
    built = _build("glid", "unet", 5, batch_size=1)
    assert built.info["decoder"] == "unet"
    assert built.model.train()(dataset_batch(built, (40, 40), batch=1)).shape == (1, 2, 40, 40)


def test_custom_encoder_builds_from_its_own_spec_weights_and_decoder_width(tmp_path, vit_depth_3):
    # a benchmark's own encoder: the registry's "vit" spec at 4 blocks, its state_dict on disk
    vit = get_encoder_spec("vit")
    spec = dataclasses.replace(
        vit,
        input_size=32,
        patch_size=8,
        embed_dim=32,
        num_blocks=4,
        tapped_layers=(0, 1, 2, 3),
        options=MappingProxyType({**vit.options, "num_heads": 2}),
    )
    config = TrialConfig(dataset="glid", model="ssl4eo_mae", depth=2, weights="random")
    made = build_segmenter(config, get_dataset("glid"), CustomEncoder(spec)).model.encoder
    weights = tmp_path / "encoder.pt"
    torch.save({k: torch.full_like(v, 0.5) for k, v in made.state_dict().items()}, weights)

    built = build_segmenter(config, get_dataset("glid"), CustomEncoder(spec, weights, 16))
    assert built.spec is spec and built.info["num_blocks"] == 4 and built.info["depth"] == 2
    assert built.info["weights"] == str(weights)
    assert built.info["weights_sha256"] == file_sha256(weights)
    assert all(bool((v == 0.5).all()) for v in built.model.encoder.state_dict().values())
    assert built.model.decoder.ppm.bottleneck[0].out_channels == 16
    # the registry's own path is unchanged: 512 channels
    assert vit_depth_3.model.decoder.ppm.bottleneck[0].out_channels == 512
