"""Map a dataset's bands onto an encoder's band list by name, as Cryo-Bench does.

Encoder bands the dataset lacks are filled with zeros after normalisation (the band mean), and
the mapping reports which; placeholder names (GLD's ``B8A`` for a thermal layer, ``SLOPE``...)
are matched by name like any other, exactly as Cryo-Bench routes them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cryotune.data.datasets import DatasetSpec
from cryotune.errors import UsageError


class AnyBands(enum.Enum):
    """Type of the ``ANY_BANDS`` sentinel (an enum member: pickles to the same object)."""

    ANY_BANDS = "any"

    def __repr__(self) -> str:
        return "ANY_BANDS"


ANY_BANDS = AnyBands.ANY_BANDS
"""The encoder takes whatever bands the dataset has (DOFA, RAMEN, the U-Net and ViT baselines)."""

ALL_MODALITY = "all"

# Central wavelengths in µm as Cryo-Bench's DOFA config lists them. SAR bands take DOFA's 3.75;
# the placeholder names NDWI, SLOPE and ELEVATION take 0.49 (the blue band), Cryo-Bench's stand-in.
WAVELENGTHS_UM: Mapping[str, float] = {
    "B1": 0.44,
    "B2": 0.49,
    "B3": 0.56,
    "B4": 0.665,
    "B5": 0.705,
    "B6": 0.74,
    "B7": 0.783,
    "B8": 0.832,
    "B8A": 0.864,
    "B9": 0.945,
    "B10": 1.373,
    "B11": 1.61,
    "B12": 2.20,
    "NDWI": 0.49,
    "SLOPE": 0.49,
    "ELEVATION": 0.49,
    "VV": 3.75,
    "VH": 3.75,
    "HH": 3.75,
    "HV": 3.75,
}


@dataclass(frozen=True)
class BandMapping:
    """Which dataset channel feeds each encoder input slot, and which slots are zero-filled.

    ``sources[m][j]`` indexes the channels of ``source_modalities[m]`` concatenated in order
    (one dataset modality of the same name, or every primary modality for ``ANY_BANDS``'s
    ``"all"``); None means the slot is filled with zeros.
    """

    inputs: dict[str, tuple[str, ...]]
    sources: dict[str, tuple[int | None, ...]]
    filled: tuple[str, ...]
    wavelengths: dict[str, tuple[float, ...]]
    source_modalities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dataset: str = ""
    encoder: str = ""
    view_source: str = ""

    @property
    def dataset_modalities(self) -> tuple[str, ...]:
        """The dataset modalities ``apply`` reads, in first-use order."""
        seen: list[str] = []
        for names in self.source_modalities.values():
            seen += [n for n in names if n not in seen]
        return tuple(seen)

    @property
    def view(self) -> str:
        """The dataset view the encoder reads: its modality names joined by ``+``."""
        return "+".join(self.dataset_modalities)

    def describe(self) -> str:
        """One line for people: what each encoder input reads, and why this view."""
        return describe_mapping(self.to_dict())

    @property
    def in_channels(self) -> dict[str, int]:
        return {m: len(b) for m, b in self.inputs.items()}

    def apply(self, sample: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per encoder modality, a float32 tensor ``(C, H, W)`` or ``(B, C, H, W)``."""
        out = {}
        for name, slots in self.sources.items():
            parts = [
                torch.as_tensor(sample[m], dtype=torch.float32)
                for m in self.source_modalities[name]
            ]
            src = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-3)
            channels = src.shape[-3]
            if None not in slots and list(slots) == list(range(channels)):
                out[name] = src
                continue
            index = torch.tensor([channels if s is None else s for s in slots], dtype=torch.long)
            if None in slots:
                src = torch.cat([src, torch.zeros_like(src.narrow(-3, 0, 1))], dim=-3)
            out[name] = src.index_select(-3, index)
        return out

    def stored_channels(
        self, modality_channels: Mapping[str, Sequence[int]]
    ) -> dict[str, tuple[int | None, ...]]:
        """Per encoder modality, the stored tile channel feeding each slot (None: zero-filled).

        ``modality_channels`` gives each dataset modality's channels in a stored tile (the tile
        cache's layout); with it a batch reader does ``apply``'s concatenation and index as one
        gather while copying, instead of materialising every modality first.
        """
        out = {}
        for name, slots in self.sources.items():
            joined = [c for m in self.source_modalities[name] for c in modality_channels[m]]
            out[name] = tuple(None if s is None else joined[s] for s in slots)
        return out

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "encoder": self.encoder,
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "sources": {k: list(v) for k, v in self.sources.items()},
            "source_modalities": {k: list(v) for k, v in self.source_modalities.items()},
            "filled": list(self.filled),
            "wavelengths": {k: list(v) for k, v in self.wavelengths.items()},
            "view": self.view,
            "view_source": self.view_source,
        }


def describe_mapping(mapping: Mapping) -> str:
    """``BandMapping.describe`` of a mapping as ``to_dict`` stored it (records, results)."""
    inputs = "; ".join(f"{m} {','.join(b)}" for m, b in mapping["inputs"].items())
    why = f" ({mapping['view_source']})" if mapping.get("view_source") else ""
    return f"{mapping['dataset']} view {mapping['view']}{why} -> {inputs}"


def wavelengths_of(bands: Sequence[str], encoder_key: str = "") -> tuple[float, ...]:
    unknown = [b for b in bands if b not in WAVELENGTHS_UM]
    if unknown:
        raise UsageError(
            f"encoder '{encoder_key}': unknown band name(s) {', '.join(unknown)}; "
            f"known: {', '.join(WAVELENGTHS_UM)}"
        )
    return tuple(WAVELENGTHS_UM[b] for b in bands)


def _offers(bands: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{m}: {','.join(b)}" for m, b in bands.items())


VIEW_PAPER = "as in Cryo-Bench's runs"
VIEW_REQUESTED = "requested"


def map_bands(
    dataset: DatasetSpec,
    encoder_bands: Mapping[str, Sequence[str]] | AnyBands,
    encoder_key: str = "",
    view: str | None = None,
) -> BandMapping:
    """Match encoder bands to dataset bands by name.

    ``view`` names the dataset modality to feed; None takes the paper's view of this encoder
    (``DatasetSpec.paper_views``), else every primary modality the encoder declares, and a
    fallback view (CaFFe's grey-as-RGB, SICD's RGB proxy) only when it reads no primary one.
    UsageError when the encoder reads none, or not the view asked for.
    """
    source = VIEW_REQUESTED
    if view is None:
        view, source = dataset.paper_view(encoder_key), VIEW_PAPER
    if view is not None and view not in {m.name for m in dataset.modalities}:
        raise UsageError(
            f"--view {view}: dataset '{dataset.key}' has no such view; valid: "
            f"{', '.join(m.name for m in dataset.modalities)}"
        )
    if encoder_bands is ANY_BANDS:
        mods = (dataset.modality(view),) if view is not None else dataset.primary_modalities
        names = tuple(b for m in mods for b in m.bands)
        return BandMapping(
            inputs={ALL_MODALITY: names},
            sources={ALL_MODALITY: tuple(range(len(names)))},
            filled=(),
            wavelengths={ALL_MODALITY: wavelengths_of(names, encoder_key)},
            source_modalities={ALL_MODALITY: tuple(m.name for m in mods)},
            dataset=dataset.key,
            encoder=encoder_key,
            view_source=source if view is not None else "every primary modality",
        )
    declared = {m: tuple(b) for m, b in encoder_bands.items()}
    for bands in declared.values():
        wavelengths_of(bands, encoder_key)
    if view is not None:
        if view not in declared:
            raise UsageError(
                f"--view {view}: encoder '{encoder_key}' takes {_offers(declared)}, not the "
                f"{view} view of dataset '{dataset.key}'; valid: "
                f"{', '.join(m.name for m in dataset.modalities if m.name in declared) or 'none'}"
            )
        chosen = {view}
    else:
        primary = {m.name for m in dataset.primary_modalities if m.name in declared}
        fallback = {m.name for m in dataset.modalities if m.fallback and m.name in declared}
        chosen = primary or fallback
        source = "the modality it reads" if primary else "fallback view"
    if not chosen:
        raise UsageError(
            f"encoder '{encoder_key}' takes {_offers(declared)}, but dataset '{dataset.key}' "
            f"offers {_offers({m.name: m.bands for m in dataset.modalities})}: no modality in "
            "common; pick an encoder that accepts one of the dataset's modalities"
        )
    inputs, sources, wavelengths, source_modalities, filled = {}, {}, {}, {}, []
    for name, bands in declared.items():
        if name not in chosen:
            continue
        position = {b: i for i, b in enumerate(dataset.modality(name).bands)}
        inputs[name] = bands
        sources[name] = tuple(position.get(b) for b in bands)
        wavelengths[name] = wavelengths_of(bands, encoder_key)
        source_modalities[name] = (name,)
        filled += [f"{name}:{b}" for b in bands if b not in position]
    return BandMapping(
        inputs=inputs,
        sources=sources,
        filled=tuple(filled),
        wavelengths=wavelengths,
        source_modalities=source_modalities,
        dataset=dataset.key,
        encoder=encoder_key,
        view_source=source,
    )
