"""The search space of one pair: the spec's space resolved against an encoder's block count.

Depth is always a block count by the time it reaches a trial: fractions round to blocks, block
counts clip to the encoder's, and baselines trained from scratch (no pretrained weights) keep
every block trainable, so only their other dimensions are searched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from cryotune.sweep.spec import FloatSpace, SearchSpace


def _float_distribution(space: FloatSpace) -> BaseDistribution:
    if space.grid is not None:
        return CategoricalDistribution(tuple(sorted(set(space.grid))))
    return FloatDistribution(space.low, space.high, log=True)


@dataclass(frozen=True)
class PairSpace:
    """Searched dimensions (Optuna distributions) plus the values fixed for this encoder."""

    num_blocks: int
    searched: dict[str, BaseDistribution]
    fixed: dict[str, int | float] = field(default_factory=dict)

    @classmethod
    def resolve(cls, space: SearchSpace, num_blocks: int, pretrained: bool) -> PairSpace:
        searched: dict[str, BaseDistribution] = {"lr": _float_distribution(space.lr)}
        fixed: dict[str, int | float] = {}
        depth = _depth(space, num_blocks) if pretrained else num_blocks
        if isinstance(depth, int):
            fixed["depth"] = depth
        else:
            searched["depth"] = depth
        if space.weight_decay is not None:
            searched["weight_decay"] = _float_distribution(space.weight_decay)
        if space.batch_size is not None:
            sizes = tuple(sorted(set(space.batch_size)))
            if len(sizes) == 1:
                fixed["batch_size"] = sizes[0]
            else:
                searched["batch_size"] = CategoricalDistribution(sizes)
        return cls(num_blocks=num_blocks, searched=searched, fixed=fixed)

    @property
    def max_depth(self) -> int:
        """The deepest finetuning a trial of this pair may get (what sizes its resources)."""
        depth = self.searched.get("depth")
        if isinstance(depth, IntDistribution):
            return depth.high
        if isinstance(depth, CategoricalDistribution):
            return max(depth.choices)
        return int(self.fixed.get("depth", 0))

    def grid(self) -> dict[str, list]:
        """The grid for Optuna's GridSampler (every searched dimension must be discrete)."""
        out = {}
        for name, dist in self.searched.items():
            if isinstance(dist, CategoricalDistribution):
                out[name] = list(dist.choices)
            elif isinstance(dist, IntDistribution):
                out[name] = list(range(dist.low, dist.high + 1, dist.step))
            else:
                raise ValueError(f"{name} is continuous and has no grid")
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def params(self, suggested: dict) -> dict:
        """A trial's hyper-parameters: the suggested values plus the fixed ones."""
        return {**self.fixed, **suggested}

    def to_dict(self) -> dict:
        """JSON description for records and the plan file."""
        searched = {}
        for name, dist in self.searched.items():
            if isinstance(dist, CategoricalDistribution):
                searched[name] = {"choices": list(dist.choices)}
            elif isinstance(dist, IntDistribution):
                searched[name] = {"low": dist.low, "high": dist.high, "int": True}
            else:
                searched[name] = {"low": dist.low, "high": dist.high, "log": dist.log}
        return {"num_blocks": self.num_blocks, "searched": searched, "fixed": dict(self.fixed)}


def _depth(space: SearchSpace, num_blocks: int) -> int | BaseDistribution:
    """A fixed block count, or the distribution of block counts to search."""
    depth = space.depth
    if depth.fraction_range is not None:
        low, high = (round(f * num_blocks) for f in depth.fraction_range)
        return low if low == high else IntDistribution(low, high)
    if depth.blocks is not None:
        choices = sorted({min(b, num_blocks) for b in depth.blocks})
    else:
        choices = sorted({round(f * num_blocks) for f in depth.fractions})
    return choices[0] if len(choices) == 1 else CategoricalDistribution(tuple(choices))
