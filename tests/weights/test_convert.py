"""Conversions keep what the trainer's strict loader loads, and nothing that fails it."""

from __future__ import annotations

import pytest
import torch
from weights_hosts import TINY, terramind_checkpoint

from cryotune.errors import WeightsError
from cryotune.models.encoders import get_encoder_spec
from cryotune.weights.convert import check_loads, convert


def test_encoder_only_drops_the_decoder_and_still_loads_strictly(tmp_path):
    release = terramind_checkpoint()
    torch.save(release, tmp_path / "release.pt")
    spec = get_encoder_spec("terramind")
    digest = convert("encoder_only", spec, tmp_path / "release.pt", tmp_path / "out.pt", TINY)
    stored = torch.load(tmp_path / "out.pt", weights_only=True)
    assert not [k for k in stored if k.startswith("decoder")]
    assert all(value.equal(release[key]) for key, value in stored.items())
    assert (
        "encoder.1.mlp.fc3.weight" in stored
        and "encoder_embeddings.untok_sen1grd@224.pos_emb" in stored
    )
    assert check_loads(spec, tmp_path / "out.pt", TINY) == digest


def test_a_file_of_another_size_does_not_pass(tmp_path):
    torch.save(terramind_checkpoint(), tmp_path / "release.pt")
    spec = get_encoder_spec("terramind")
    with pytest.raises(WeightsError, match="does not fit model 'terramind'.*shape mismatches"):
        convert("encoder_only", spec, tmp_path / "release.pt", tmp_path / "out.pt")


def test_layouts_that_merge_keys_are_kept_whole(tmp_path):
    torch.save({"s1_encoder": {}, "s2_encoder": {}}, tmp_path / "croma.pt")
    with pytest.raises(WeightsError, match="model 'croma' .* keeps the release whole"):
        convert("encoder_only", get_encoder_spec("croma"), tmp_path / "croma.pt", tmp_path / "o")
    with pytest.raises(WeightsError, match="unknown conversion 'zip'; known: encoder_only"):
        convert("zip", get_encoder_spec("croma"), tmp_path / "croma.pt", tmp_path / "o")
