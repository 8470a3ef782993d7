"""EncoderSpec: everything cryotune needs to know about one encoder, declared once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from cryotune.data.bands import AnyBands

if TYPE_CHECKING:
    from cryotune.data.datasets import DatasetSpec
    from cryotune.models.encoders.base import Encoder


ROSTERS = {
    "paper": "one of the 14 GFMs of the Cryo-Bench paper",
    "baseline": "a baseline of the paper, trained from scratch",
    "later": "added in the later Cryo-Bench repository",
}


def token_grid(input_size: int, input_res: float, res: float) -> int:
    """Tokens per side of an input of ``input_size`` px at GSD ``input_res`` resampled to ``res``
    (PANGAEA's RAMEN ``effective_size``)."""
    return int(input_size * input_res / res)


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder: architecture facts, bands per modality, checkpoint and provenance.

    ``builder(spec, mapping, **overrides)`` returns the Encoder for a BandMapping; overrides
    (``embed_dim``, ``depth``, ``num_heads``, ``tapped_layers``) shrink it for tests without
    changing its checkpoint layout. ``num_blocks`` is the finetuning depth range 0..num_blocks.
    ``published_params`` is the parameter count ``params_source`` reports for the architecture
    at ``options["published_bands"]`` (if given) or at the spec's own bands. ``roster`` says where
    the model comes from in Cryo-Bench: one of ``ROSTERS``. ``per_dataset`` returns the options
    Cryo-Bench's runs set per dataset (RAMEN's input size and GSDs); they override ``options``
    and, as ``input_size``, the spec's input size.
    """

    key: str
    family: str
    title: str
    builder: Callable[..., Encoder]
    input_size: int | None
    patch_size: int | None
    embed_dim: int
    num_blocks: int
    tapped_layers: tuple[int, ...]
    bands: Mapping[str, tuple[str, ...]] | AnyBands
    weights_file: str | None
    weights_source: str
    published_params: int | None
    params_source: str
    pretrained: bool = True
    roster: str = "paper"
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    per_dataset: Callable[[DatasetSpec], Mapping[str, object]] | None = None

    def __post_init__(self) -> None:
        if self.roster not in ROSTERS:
            raise ValueError(f"{self.key}: roster {self.roster!r} is not one of {list(ROSTERS)}")

    def option(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)

    def options_for(self, dataset: DatasetSpec | None) -> Mapping[str, object]:
        """The options of a run on ``dataset`` (the spec's own without one)."""
        if dataset is None or self.per_dataset is None:
            return self.options
        return MappingProxyType({**self.options, **self.per_dataset(dataset)})

    def token_grid_for(self, dataset: DatasetSpec | None, input_size: int | None) -> int | None:
        """Tokens per side where that is not input / patch: RAMEN's grid is the input scaled by
        input_res / res; otherwise the ``token_grid`` option, if any."""
        options = self.options_for(dataset)
        if input_size is not None and "res" in options and "input_res" in options:
            return token_grid(input_size, float(options["input_res"]), float(options["res"]))
        grid = options.get("token_grid")
        return None if grid is None else int(grid)

    def input_size_for(self, dataset: DatasetSpec | None) -> int | None:
        """Crop and sliding-window size on ``dataset``; None: whole tiles (the U-Net)."""
        size = self.options_for(dataset).get("input_size", self.input_size)
        return None if size is None else int(size)
