"""A pair's search space: depth resolved to block counts of the encoder, baselines at full depth."""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cryotune.sweep.space import PairSpace
from cryotune.sweep.spec import SearchSpace


def _space(**data) -> SearchSpace:
    return SearchSpace.model_validate(data)


def test_fraction_range_searches_every_block_count():
    space = PairSpace.resolve(_space(depth={"fraction_range": [0.25, 1.0]}), 12, pretrained=True)
    assert space.searched["depth"] == IntDistribution(3, 12)
    assert space.searched["lr"] == FloatDistribution(1e-6, 1e-3, log=True)
    assert space.fixed == {} and space.max_depth == 12


def test_fractions_round_and_blocks_clip_to_the_encoder():
    fractions = PairSpace.resolve(_space(depth={"fractions": [0, 0.5, 0.51, 1]}), 12, True)
    assert fractions.searched["depth"] == CategoricalDistribution((0, 6, 12))
    blocks = PairSpace.resolve(_space(depth={"blocks": [0, 4, 30]}), 24, True)
    assert blocks.searched["depth"] == CategoricalDistribution((0, 4, 24))
    assert blocks.max_depth == 24


def test_baselines_train_every_block_and_search_the_rest():
    space = PairSpace.resolve(
        _space(weight_decay={"low": 1e-4, "high": 1e-1}, batch_size=[4, 8]), 4, pretrained=False
    )
    assert space.fixed == {"depth": 4} and space.max_depth == 4
    assert set(space.searched) == {"lr", "weight_decay", "batch_size"}
    assert space.params({"lr": 1e-3}) == {"depth": 4, "lr": 1e-3}


def test_grid_of_a_discrete_space():
    space = PairSpace.resolve(
        _space(lr={"grid": [1e-4, 1e-5, 1e-4]}, depth={"fractions": [0, 1]}), 12, True
    )
    assert space.grid() == {"lr": [1e-5, 1e-4], "depth": [0, 12]}
    assert space.grid_size() == 4
    assert space.to_dict()["searched"]["depth"] == {"choices": [0, 12]}
