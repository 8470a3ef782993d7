"""Which checkpoint files a set of runs needs, and the command that fetches the missing ones.

A (dataset, model) pair needs the file of the variant its encoder reads there: SSL4EO-MAE reads
CaFFe's SAR view with its SAR checkpoint, every other dataset with the optical one.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from cryotune.errors import UsageError, WeightsError
from cryotune.models.weights import RANDOM_WEIGHTS, WEIGHTS_ENV, find_weights, weights_dir
from cryotune.weights.sources import (
    SOURCES,
    WeightsSource,
    shortest_names,
    source_for,
    sources_of,
)


def pair_source(dataset: str, model: str, view: str | None = None) -> WeightsSource | None:
    """The file ``model`` loads on ``dataset`` (on ``view``); None for a model trained from
    scratch."""
    from cryotune.data.bands import map_bands
    from cryotune.data.datasets import get_dataset
    from cryotune.models.encoders import get_encoder_spec
    from cryotune.models.encoders.options import single_modality, weights_variant

    spec = get_encoder_spec(model)
    if not spec.pretrained:
        return None
    variant = None
    if spec.option("variant_weights"):
        mapping = map_bands(get_dataset(dataset), spec.bands, model, view)
        variant = weights_variant(spec, single_modality(spec, mapping))
    return source_for(model, variant)


def pairs_sources(pairs: Iterable[tuple[str, str]], view: str | None = None) -> list[WeightsSource]:
    """The files the pairs need, each once, in pair order."""
    found = (pair_source(dataset, model, view) for dataset, model in pairs)
    return list(dict.fromkeys(s for s in found if s is not None))


def datasets_sources(datasets: list[str]) -> list[WeightsSource]:
    """The files a sweep of ``datasets`` over every model that fits them needs, in the
    registry's order."""
    from cryotune.data.datasets import get_dataset
    from cryotune.sweep.plan import select_models

    for key in datasets:
        get_dataset(key)
    pairs, _ = select_models(datasets, None)
    needed = set(pairs_sources(pairs))
    return [s for s in SOURCES if s in needed]


def chosen_sources(
    models: list[str], everything: bool, datasets: list[str] | None
) -> list[WeightsSource]:
    """The files ``fetch`` was asked for: named models, ``--all`` or ``--for-datasets``."""
    if sum(map(bool, (models, everything, datasets))) != 1:
        raise UsageError(
            "name what to fetch: MODEL ..., --all or --for-datasets DATASET,... (one of them); "
            "`cryotune weights list` shows every model's file"
        )
    if everything:
        return list(SOURCES)
    return datasets_sources(datasets) if datasets else sources_of(models)


def fetch_command(sources: Iterable[WeightsSource], weights_flag: str | None) -> str:
    """``cryotune weights fetch MODEL...`` for exactly these files, into the same folder."""
    labels = shortest_names(list(sources))
    folder = ["--weights", weights_flag] if weights_flag and weights_flag != RANDOM_WEIGHTS else []
    return shlex.join(["cryotune", "weights", "fetch", *labels, *folder])


def missing_sources(sources: Iterable[WeightsSource], folder: Path) -> list[WeightsSource]:
    from cryotune.models.encoders import get_encoder_spec

    return [
        s for s in sources if find_weights(get_encoder_spec(s.model), folder, s.variant) is None
    ]


def _origin() -> str:
    if os.environ.get(WEIGHTS_ENV):
        return f"${WEIGHTS_ENV}"
    return f"the default; --weights DIR or ${WEIGHTS_ENV} choose another"


def check_pairs_weights(
    pairs: Iterable[tuple[str, str]], weights_flag: str | None, view: str | None = None
) -> None:
    """WeightsError listing every file the pairs need and the folder lacks, with the command
    that fetches exactly those."""
    if weights_flag == RANDOM_WEIGHTS:
        return
    folder = weights_dir(weights_flag)
    missing = missing_sources(pairs_sources(pairs, view), folder)
    if not missing:
        return
    where = str(folder) if weights_flag else f"{folder} ({_origin()})"
    files = ", ".join(f"{s.label} ({s.file})" for s in missing)
    raise WeightsError(
        f"missing weights in {where}: {files}; fetch them with `{fetch_command(missing, weights_flag)}`"
        ", or choose --models, or pass --weights random"
    )
