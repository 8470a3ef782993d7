"""The source registry: one entry per checkpoint file cryotune loads, and no invented checksum."""

from __future__ import annotations

import re

import pytest

from cryotune.errors import UnknownNameError, UsageError
from cryotune.models.encoders import ENCODERS
from cryotune.models.weights import weights_file
from cryotune.weights.convert import CONVERSIONS
from cryotune.weights.sources import SOURCES, HubFile, shortest_names, source_for, sources_of


def _files_cryotune_loads() -> set[tuple[str, str | None, str]]:
    files = set()
    for spec in ENCODERS.values():
        if not spec.pretrained:
            continue
        for variant in (None, *spec.option("variant_weights", {})):
            files.add((spec.key, variant, weights_file(spec, variant)))
    return files


def test_every_checkpoint_cryotune_loads_has_exactly_one_source():
    registered = [(s.model, s.variant, s.file) for s in SOURCES]
    assert len(registered) == len(set(registered))
    assert set(registered) == _files_cryotune_loads()


def test_hub_sources_are_the_repositories_the_encoder_specs_name():
    for source in SOURCES:
        if isinstance(source.origin, HubFile):
            assert source.origin.repo in ENCODERS[source.model].weights_source, source.label


def test_a_sha256_is_written_only_with_where_it_is_published():
    for source in SOURCES:
        assert source.sha256_note, source.label
        if source.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", source.sha256), source.label
            assert "recorded" not in source.sha256_note, source.label


def test_declared_conversions_exist():
    assert {s.convert for s in SOURCES if s.convert} <= set(CONVERSIONS)


def test_models_name_their_files():
    assert [s.file for s in sources_of(["ssl4eo_mae"])] == [
        "B13_vits16_mae_0099_ckpt.pth",
        "B2_vits16_mae_ep99.pth",
    ]
    assert [s.label for s in sources_of(["ssl4eo_mae:sar", "dofa", "dofa"])] == [
        "ssl4eo_mae:sar",
        "dofa",
    ]
    assert shortest_names(sources_of(["ssl4eo_mae", "croma"])) == ["ssl4eo_mae", "croma"]
    assert shortest_names(sources_of(["ssl4eo_mae:optical"])) == ["ssl4eo_mae:optical"]


def test_bad_names_list_what_is_valid():
    with pytest.raises(
        UnknownNameError, match=r"unknown model with a checkpoint 'dofaa'; valid: .*dofa"
    ):
        sources_of(["dofaa"])
    with pytest.raises(
        UsageError, match="model 'unet' is trained from scratch: it has no checkpoint"
    ):
        sources_of(["unet"])
    with pytest.raises(
        UsageError,
        match=r"'ssl4eo_mae' has no checkpoint 'rgb'; valid: ssl4eo_mae:optical, ssl4eo_mae:sar",
    ):
        sources_of(["ssl4eo_mae:rgb"])
    with pytest.raises(UnknownNameError):
        source_for("ssl4eo_mae", "rgb")
