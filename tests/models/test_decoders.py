import pytest
import torch
from torch import nn

from cryotune.errors import UnknownNameError
from cryotune.models.decoders import (
    DECODERS,
    NECK_SCALES,
    UNetDecoder,
    UPerNet,
    ViTNeck,
    build_decoder,
    neck_scales,
)

torch.set_num_threads(1)


def _maps(batch, channels, sizes):
    return [torch.randn(batch, c, s, s) for c, s in zip(channels, sizes)]


def test_upernet_defaults_match_cryo_bench():
    head = UPerNet([96, 192, 384, 768], num_classes=2, is_pyramid=True)
    assert head.classifier.in_channels == 512
    assert [stage[0].output_size for stage in head.ppm.stages] == [1, 2, 3, 6]
    assert head.dropout.p == pytest.approx(0.1)
    assert head.neck is None


def test_upernet_on_pyramid_features_returns_logits_at_the_requested_size():
    head = UPerNet([16, 32, 64, 128], num_classes=4, is_pyramid=True, channels=32)
    features = _maps(2, [16, 32, 64, 128], [16, 8, 4, 2])
    logits = head(features, (64, 64))
    assert logits.shape == (2, 4, 64, 64)


def test_neck_rescales_plain_vit_layers_by_four_two_one_and_a_half():
    assert neck_scales(4) == (4.0, 2.0, 1.0, 0.5)
    neck = ViTNeck([24] * 4, neck_scales(4))
    out = neck(_maps(2, [24] * 4, [4] * 4))
    assert [tuple(o.shape[-2:]) for o in out] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert isinstance(neck.ops[0][0], nn.ConvTranspose2d)
    assert isinstance(neck.ops[3], nn.MaxPool2d)


def test_upernet_on_plain_vit_features_upsamples_logits_to_the_input():
    head = UPerNet([24] * 4, num_classes=2, is_pyramid=False, channels=32)
    logits = head(_maps(2, [24] * 4, [4] * 4), (64, 48))
    assert logits.shape == (2, 2, 64, 48)


def test_upernet_takes_a_single_tapped_layer_like_prithvi():
    assert neck_scales(1) == (4.0,)
    head = UPerNet([24], num_classes=3, is_pyramid=False, channels=16)
    assert head(_maps(2, [24], [2]), (32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(("side", "floor", "ceil"), [(15, 7, 8), (7, 3, 4), (4, 2, 2)])
def test_the_neck_floors_odd_maps_as_pangaea_and_ceils_on_request(side, floor, ceil):
    """CROMA at 120 px (15x15 tokens) gives 7x7 in PANGAEA's Feature2Pyramid, RemoteCLIP at
    224 px (7x7) 3x3."""
    for pool, expected in (("floor", floor), ("ceil", ceil)):
        neck = ViTNeck([8] * 4, NECK_SCALES, pool)
        assert neck(_maps(1, [8] * 4, [side] * 4))[3].shape[-2:] == (expected, expected)


def test_one_by_one_vit_maps_from_tiny_crops_pass_the_ceil_neck():
    """The floor neck would pool them to nothing: ``check_crop`` refuses such crops first."""
    head = UPerNet([24] * 4, num_classes=2, is_pyramid=False, channels=16, neck_pool="ceil")
    assert head(_maps(2, [24] * 4, [1] * 4), (32, 32)).shape == (2, 2, 32, 32)


def test_upernet_backward_reaches_every_parameter():
    head = UPerNet([24] * 4, num_classes=2, is_pyramid=False, channels=16)
    head(_maps(2, [24] * 4, [4] * 4), (32, 32)).sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_upernet_rejects_a_wrong_number_of_feature_maps():
    head = UPerNet([24] * 4, num_classes=2, is_pyramid=False, channels=16)
    with pytest.raises(ValueError, match="4 feature maps, got 3"):
        head(_maps(2, [24] * 3, [4] * 3), (32, 32))


@pytest.mark.parametrize("size", [33, 50, 7])
def test_unet_decoder_restores_odd_sizes_from_ceil_pooled_maps(size):
    channels = [8, 16, 32, 64, 64]
    sizes = [size]
    for _ in channels[1:]:
        sizes.append(-(-sizes[-1] // 2))
    decoder = UNetDecoder(channels, num_classes=3)
    features = [torch.randn(2, c, s, s, requires_grad=True) for c, s in zip(channels, sizes)]
    logits = decoder(features, (size, size))
    assert logits.shape == (2, 3, size, size)
    logits.sum().backward()
    assert all(f.grad is not None for f in features)


def test_unet_decoder_follows_the_pangaea_topology():
    decoder = UNetDecoder([64, 128, 256, 512, 512], num_classes=2)
    steps = [
        (up.up.in_channels, up.conv[0].in_channels, up.conv[-3].out_channels) for up in decoder.ups
    ]
    assert steps == [(512, 1024, 256), (256, 512, 128), (128, 256, 64), (64, 128, 64)]


def test_build_decoder_names_the_valid_decoders():
    assert set(DECODERS) == {"upernet", "unet"}
    assert isinstance(build_decoder("unet", [8, 16], True, 2), UNetDecoder)
    with pytest.raises(UnknownNameError, match="unknown decoder 'fpn'; valid: unet, upernet"):
        build_decoder("fpn", [8, 16], True, 2)
