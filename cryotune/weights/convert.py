"""Conversions from a release to the file cryotune stores, declared per source (``convert``).

A conversion reads the release with the trainer's own reader (tensors only), writes the result,
and keeps it only if the trainer's strict loader loads it into the model's encoder built at its
published size for every band it declares (on the meta device: no memory, no initialisation).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from cryotune.errors import WeightsError
from cryotune.models.encoders.spec import EncoderSpec
from cryotune.models.weights import load_encoder_weights, read_checkpoint, release_encoder_part


def encoder_only(spec: EncoderSpec, release: Path, out: Path) -> None:
    """Keep the encoder's tensors, under the release's names; decoders and the rest go."""
    torch.save(release_encoder_part(read_checkpoint(release), spec, release), out)


CONVERSIONS: dict[str, Callable[[EncoderSpec, Path, Path], None]] = {
    "encoder_only": encoder_only,
}


def check_loads(
    spec: EncoderSpec, path: Path, overrides: Mapping[str, object] | None = None
) -> str:
    """Loads ``path`` strictly into ``spec``'s encoder for all its declared bands (``overrides``
    shrink it, as in tests); returns the file's sha256, or raises WeightsError."""
    from cryotune.models.catalog import reference_mapping

    with torch.device("meta"):
        encoder = spec.builder(spec, reference_mapping(spec), **(overrides or {}))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
        return load_encoder_weights(encoder, spec, path)


def convert(
    name: str,
    spec: EncoderSpec,
    release: Path,
    out: Path,
    overrides: Mapping[str, object] | None = None,
) -> str:
    """Writes ``release`` converted by ``name`` to ``out`` and proves it loads; its sha256."""
    try:
        conversion = CONVERSIONS[name]
    except KeyError:
        raise WeightsError(
            f"model '{spec.key}': unknown conversion '{name}'; known: {', '.join(CONVERSIONS)}"
        ) from None
    conversion(spec, release, out)
    return check_loads(spec, out, overrides)
