"""The Swin pyramid both Swin-B encoders share: sizes, depth units (patch merging rides with the
first block of its stage), taps at stage ends, frozen units run without autograd."""

import pytest
import torch

from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError, UsageError
from cryotune.models.depth import apply_finetune_depth, hold_frozen_in_eval
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.swin import SwinUnit, swin_size

torch.set_num_threads(1)

TINY = {"embed_dim": 16, "depth": (2, 2, 2, 2), "num_heads": 1}


def _build(key, dataset="glid", **overrides):
    spec = get_encoder_spec(key)
    mapping = map_bands(get_dataset(dataset), spec.bands, key)
    return spec.builder(spec, mapping, **{**TINY, **overrides}), mapping


def _inputs(mapping, size=64, batch=2):
    generator = torch.Generator().manual_seed(0)
    return {
        m: torch.randn(batch, len(b), size, size, generator=generator)
        for m, b in mapping.inputs.items()
    }


def test_size_overrides_take_per_stage_values_or_one_int():
    spec = get_encoder_spec("gfm_swin")
    assert swin_size(spec, {}).depths == (2, 2, 18, 2)
    assert swin_size(spec, {}).widths == [128, 256, 512, 1024]
    size = swin_size(spec, {"depth": 1, "num_heads": 2, "embed_dim": 8})
    assert size.depths == (1, 1, 1, 1) and size.num_heads == (2, 4, 8, 16)
    assert size.widths == [8, 16, 32, 64]
    with pytest.raises(UsageError, match="need 4 stages"):
        swin_size(spec, {"depth": (2, 2)})
    with pytest.raises(UsageError, match=r"tapped stages \[4\] must lie in 0..3"):
        swin_size(spec, {"tapped_layers": (4,)})
    with pytest.raises(UsageError, match="unknown overrides.*window"):
        swin_size(spec, {"window": 7})


@pytest.mark.parametrize("key", ["satlas", "gfm_swin"])
def test_each_block_is_a_unit_and_merging_opens_a_stage(key):
    encoder, _ = _build(key)
    units = encoder.blocks()
    assert len(units) == 8 and all(isinstance(u, SwinUnit) for u in units)
    assert [u.merge is not None for u in units] == [False, False] + [True, False] * 3
    merges = [u.merge for u in units if u.merge is not None]
    assert [m.reduction.in_features for m in merges] == [64, 128, 256]
    names = {id(p) for p in encoder.parameters()}
    unit_params = [p for u in units for p in u.parameters()]
    embed_params = list(encoder.embeddings()[0].parameters())
    assert {id(p) for p in unit_params + embed_params} == names
    assert len(unit_params) + len(embed_params) == len(names)


@pytest.mark.parametrize(("key", "choice"), [("satlas", {}), ("gfm_swin", {"taps": "stages"})])
def test_taps_are_stage_outputs_at_strides_4_to_32(key, choice):
    encoder, mapping = _build(key, tapped_layers=(0, 2, 3), **choice)
    assert encoder.is_pyramid and encoder.out_channels == [16, 64, 128]
    maps = encoder(_inputs(mapping, 64))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 64, 4, 4), (2, 128, 2, 2)]
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in encoder.parameters())


@pytest.mark.parametrize("taps", [(0, 2, 3), (1,)])
def test_gfm_swin_taps_each_stage_after_the_merging_that_follows_it(taps):
    encoder, mapping = _build("gfm_swin", tapped_layers=taps)
    widths = {0: (32, 8), 1: (64, 4), 2: (128, 2), 3: (128, 2)}
    assert encoder.out_channels == [widths[t][0] for t in taps]
    maps = encoder(_inputs(mapping, 64))
    assert [tuple(m.shape) for m in maps] == [(2, widths[t][0], *[widths[t][1]] * 2) for t in taps]


def test_inputs_must_be_multiples_of_the_patch_size():
    encoder, mapping = _build("gfm_swin")
    with pytest.raises(DataError, match="not a multiple of its patch size 4"):
        encoder({"optical": torch.randn(1, 3, 30, 30)})


@pytest.mark.parametrize("key", ["satlas", "gfm_swin"])
def test_depth_trains_trailing_units_with_the_merging_that_opens_their_stage(key):
    encoder, mapping = _build(key)
    units = encoder.blocks()
    embed = encoder.embeddings()[0]

    def trains(module):
        return all(p.requires_grad for p in module.parameters())

    apply_finetune_depth(encoder, 0)
    assert not any(p.requires_grad for p in encoder.parameters())
    apply_finetune_depth(encoder, 3)
    assert [trains(u) for u in units] == [False] * 5 + [True] * 3
    assert trains(units[6].merge) and not trains(units[4].merge)
    assert not trains(embed)
    apply_finetune_depth(encoder, 8)
    assert trains(embed) and all(trains(u) for u in units)

    apply_finetune_depth(encoder, 3)
    encoder.train()
    hold_frozen_in_eval(encoder, 3)
    assert [u.block.training for u in units] == [False] * 5 + [True] * 3
    assert units[6].merge.training and not units[4].merge.training
    flags = []
    hooks = [
        u.block.register_forward_hook(lambda m, a, out: flags.append(out.requires_grad))
        for u in units
    ]
    encoder(_inputs(mapping, 32))
    for hook in hooks:
        hook.remove()
    assert flags == [False] * 5 + [True] * 3
