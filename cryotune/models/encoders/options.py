"""What every builder reads from its spec, band mapping and size overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryotune.data.bands import BandMapping
from cryotune.errors import UsageError
from cryotune.models.encoders.spec import EncoderSpec

OVERRIDES = ("embed_dim", "depth", "num_heads", "tapped_layers")


@dataclass(frozen=True)
class Size:
    """Width, depth, heads and taps of one build: the spec's, or smaller ones for tests."""

    embed_dim: int
    depth: int
    num_heads: int
    tapped_layers: tuple[int, ...]


def check_overrides(spec: EncoderSpec, overrides: Mapping[str, object]) -> None:
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise UsageError(
            f"encoder '{spec.key}': unknown overrides {unknown}; valid: {', '.join(OVERRIDES)}"
        )


def build_size(spec: EncoderSpec, overrides: Mapping[str, object]) -> Size:
    check_overrides(spec, overrides)
    return Size(
        embed_dim=int(overrides.get("embed_dim", spec.embed_dim)),
        depth=int(overrides.get("depth", spec.num_blocks)),
        num_heads=int(overrides.get("num_heads", spec.option("num_heads"))),
        tapped_layers=tuple(overrides.get("tapped_layers", spec.tapped_layers)),
    )


def declared_modalities(spec: EncoderSpec, mapping: BandMapping) -> list[str]:
    """The spec's modalities in its own order (``ANY_BANDS``: the mapping's single one)."""
    return list(spec.bands) if isinstance(spec.bands, Mapping) else list(mapping.inputs)


def fed_modalities(spec: EncoderSpec, mapping: BandMapping) -> list[str]:
    """The declared modalities the mapping feeds, in the spec's order; at least one."""
    fed = [m for m in declared_modalities(spec, mapping) if m in mapping.inputs]
    if not fed:
        raise UsageError(
            f"encoder '{spec.key}' reads {declared_modalities(spec, mapping)}, but the band "
            f"mapping feeds {list(mapping.inputs)}"
        )
    return fed


def single_modality(spec: EncoderSpec, mapping: BandMapping) -> str:
    """The one modality a single-input encoder reads: the first declared one that is fed.

    SSL4EO-MAE has an optical and a SAR checkpoint; a dataset with both gets the optical one.
    """
    return fed_modalities(spec, mapping)[0]


def weights_variant(spec: EncoderSpec, modality: str) -> str | None:
    """``modality`` when the spec has a separate checkpoint for it (SSL4EO-MAE's SAR encoder)."""
    variants = spec.option("variant_weights", {})
    return modality if modality in variants else None
