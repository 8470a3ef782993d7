import pytest
import torch

from cryotune.errors import UsageError
from cryotune.models.depth import apply_finetune_depth, count_params, hold_frozen_in_eval
from cryotune.models.encoders.unet import UNetEncoder

torch.set_num_threads(1)


@pytest.fixture
def unet():
    return UNetEncoder(in_channels=3, topology=(4, 8, 16, 32))


def _block_outputs_need_grad(encoder, inputs):
    seen = []
    hooks = [
        b.register_forward_hook(lambda _m, _i, out: seen.append(out.requires_grad))
        for b in encoder.blocks()
    ]
    encoder(inputs)
    for hook in hooks:
        hook.remove()
    return seen


def test_depth_zero_freezes_the_whole_encoder(unet):
    assert apply_finetune_depth(unet, 0) == 0
    assert not any(p.requires_grad for p in unet.parameters())


def test_full_depth_trains_everything(unet):
    assert apply_finetune_depth(unet, 5) == count_params(unet)


def test_middle_depth_trains_exactly_the_trailing_blocks(unet):
    blocks = unet.blocks()
    trainable = apply_finetune_depth(unet, 2)
    assert trainable == count_params(blocks[3]) + count_params(blocks[4])
    assert not any(p.requires_grad for b in blocks[:3] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[3:] for p in b.parameters())


def test_depth_can_be_lowered_and_raised_again(unet):
    apply_finetune_depth(unet, 5)
    assert apply_finetune_depth(unet, 1) == count_params(unet.blocks()[-1])
    assert apply_finetune_depth(unet, 5) == count_params(unet)


@pytest.mark.parametrize("depth", [-1, 6, 2.5, True])
def test_invalid_depth_names_the_flag_and_the_range(unet, depth):
    with pytest.raises(UsageError, match=r"--depth .* out of range: valid is 0\.\.5"):
        apply_finetune_depth(unet, depth)


def test_frozen_leading_blocks_store_no_activations(unet):
    apply_finetune_depth(unet, 2)
    needs_grad = _block_outputs_need_grad(unet, {"all": torch.randn(2, 3, 16, 16)})
    assert needs_grad == [False, False, False, True, True]


def test_frozen_blocks_keep_batch_norm_statistics_in_training(unet):
    apply_finetune_depth(unet, 1)
    unet.train()
    hold_frozen_in_eval(unet, 1)
    stem_norm = unet.blocks()[0][1]
    last_norm = unet.blocks()[-1][1][1]
    before = stem_norm.running_mean.clone(), last_norm.running_mean.clone()
    unet({"all": torch.randn(2, 3, 16, 16) + 3})
    assert not stem_norm.training and last_norm.training
    assert torch.equal(stem_norm.running_mean, before[0])
    assert not torch.equal(last_norm.running_mean, before[1])
