"""The model catalog behind ``cryotune models``: one row per registered encoder.

Parameter counts come from building each encoder on the meta device (no memory, no init
cost) for its reference bands, once per process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import torch

from cryotune.data.bands import ANY_BANDS, BandMapping, wavelengths_of
from cryotune.models import weights
from cryotune.models.encoders import ENCODERS, S2_BANDS, get_encoder_spec
from cryotune.models.encoders.spec import EncoderSpec


def reference_mapping(spec: EncoderSpec, any_bands: Sequence[str] = S2_BANDS) -> BandMapping:
    """Every band the spec declares, fed directly; ``ANY_BANDS`` encoders get ``any_bands``."""
    bands = (
        {"all": tuple(any_bands)}
        if spec.bands is ANY_BANDS
        else {m: tuple(b) for m, b in spec.bands.items()}
    )
    return BandMapping(
        inputs=bands,
        sources={m: tuple(range(len(b))) for m, b in bands.items()},
        filled=(),
        wavelengths={m: wavelengths_of(b, spec.key) for m, b in bands.items()},
        source_modalities={m: (m,) for m in bands},
        encoder=spec.key,
    )


def published_mapping(spec: EncoderSpec) -> BandMapping:
    """The bands the spec's published parameter count refers to."""
    return reference_mapping(spec, spec.option("published_bands", S2_BANDS))


@cache
def count_params(key: str, any_bands: tuple[str, ...] = S2_BANDS) -> int:
    """Parameters of encoder ``key`` built for its reference bands (meta device, cached)."""
    spec = get_encoder_spec(key)
    with torch.device("meta"):
        encoder = spec.builder(spec, reference_mapping(spec, any_bands))
    return sum(p.numel() for p in encoder.parameters())


def _bands(spec: EncoderSpec) -> dict[str, list[str]]:
    if isinstance(spec.bands, Mapping):
        return {m: list(b) for m, b in spec.bands.items()}
    return {"any": ["*"]}


def model_rows(weights_dir: str | None) -> list[dict]:
    """One dict per encoder: sizes, bands, depth range, taps and whether its weights are found."""
    folder = weights.weights_dir(weights_dir)
    rows = []
    for spec in ENCODERS.values():
        found = weights.find_weights(spec, folder) if spec.weights_file else None
        rows.append(
            {
                "key": spec.key,
                "family": spec.family,
                "title": spec.title,
                "roster": spec.roster,
                "params": count_params(spec.key),
                "published_params": spec.published_params,
                "input_size": spec.input_size,
                "bands": _bands(spec),
                "tapped_layers": list(spec.tapped_layers),
                "blocks": spec.num_blocks,
                "weights_file": spec.weights_file,
                "weights_found": found is not None,
                "weights_path": str(found) if found else None,
                "weights_source": spec.weights_source,
            }
        )
    return rows
