"""What a best config trained, resolved the way cryotune resolved it: the view, depth, input
size, bands and precision behind a record, for the exporters to translate.

The record's ``model_info`` (written by the trial that built the model) is used where it holds a
value; records without it are resolved from the registries, as the trial would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryotune.config import TrialConfig
from cryotune.data.bands import map_bands
from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.documents.record import PairRecord
from cryotune.errors import DataError
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.encoders.spec import EncoderSpec


@dataclass(frozen=True)
class TrainedSetup:
    """A complete record's config with everything the trial derived from it."""

    record: PairRecord
    config: TrialConfig
    dataset: DatasetSpec
    encoder: EncoderSpec
    view: str = ""
    depth: int = 0
    input_size: int | None = None
    precision: str = "fp32"
    bands: Mapping[str, tuple[str, ...]] | None = None
    filled: tuple[str, ...] = ()
    data_root: str | None = None
    options: Mapping[str, object] | None = None

    @property
    def num_blocks(self) -> int:
        return self.encoder.num_blocks

    @property
    def weights_file(self) -> str | None:
        """The checkpoint this view of the encoder loads (S12-MAE's SAR encoder has its own)."""
        variants = self.encoder.option("variant_weights") or {}
        return variants.get(self.view, self.encoder.weights_file)

    @property
    def partial(self) -> bool:
        """Only some trailing blocks trained: neither frozen nor fully finetuned."""
        return 0 < self.depth < self.num_blocks

    @property
    def read_bands(self) -> list[str]:
        """The dataset bands the encoder read, in its input order (zero-filled slots, named
        ``MODALITY:BAND``, left out)."""
        filled = set(self.filled)
        return [
            band
            for modality, bands in (self.bands or {}).items()
            for band in bands
            if f"{modality}:{band}" not in filled
        ]


def trained_setup(record: PairRecord) -> TrainedSetup:
    """The setup behind a complete record; DataError naming the pair when it has no config."""
    if record.config is None or not record.complete:
        raise DataError(f"{record.key} of sweep {record.sweep}: no complete trial to export")
    config = record.config
    info = record.model_info or {}
    dataset = get_dataset(config.dataset)
    encoder = get_encoder_spec(config.model)
    mapping = map_bands(dataset, encoder.bands, encoder.key, config.view)
    default_depth = 0 if encoder.pretrained else encoder.num_blocks
    recorded_bands = (info.get("band_mapping") or {}).get("inputs")
    return TrainedSetup(
        record=record,
        config=config,
        dataset=dataset,
        encoder=encoder,
        view=info.get("view") or mapping.view,
        depth=int(info.get("depth", default_depth if config.depth is None else config.depth)),
        input_size=info.get("input_size", encoder.input_size_for(dataset)),
        precision=info.get("precision", config.precision),
        bands={m: tuple(b) for m, b in (recorded_bands or mapping.inputs).items()},
        filled=tuple(info.get("filled_bands", mapping.filled)),
        data_root=(record.data.root if record.data else None) or config.data_root,
        options=encoder.options_for(dataset),
    )
