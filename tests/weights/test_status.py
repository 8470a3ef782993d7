"""The status of each file in a real weights folder: missing, unverified, verified, wrong hash."""

from __future__ import annotations

import hashlib

import pytest

from cryotune.errors import UsageError, WeightsError
from cryotune.weights.ledger import Ledger
from cryotune.weights.sources import source_for
from cryotune.weights.status import folder_states, human_size, resolve_folder

DOFA, SCALEMAE = source_for("dofa"), source_for("scalemae")


def _record(folder, source, body: bytes, sha256_from="hub"):
    path = folder / source.file
    path.write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    Ledger(folder).record(
        source.file,
        path,
        model=source.model,
        sha256=digest,
        source=source.origin.describe(),
        sha256_from=sha256_from,
        source_sha256=digest,
    )
    return digest


def test_each_status(tmp_path):
    digest = _record(tmp_path, DOFA, b"dofa")
    (tmp_path / "scalemae").mkdir()
    (tmp_path / "scalemae" / SCALEMAE.file).write_bytes(b"scale")
    states = {s.source.label: s for s in folder_states(tmp_path)}
    assert states["dofa"].status == "verified"
    assert (states["dofa"].sha256, states["dofa"].expected_from) == (digest, "hub")
    assert states["dofa"].size == 4
    assert states["scalemae"].status == "unverified"
    assert states["scalemae"].name == "scalemae/scalemae-vitlarge-800.pth"
    assert states["croma"].status == "missing" and states["croma"].path is None

    (tmp_path / DOFA.file).write_bytes(b"DOFA")
    changed = {s.source.label: s for s in folder_states(tmp_path)}["dofa"]
    assert changed.status == "wrong-hash" and changed.expected == digest
    assert changed.to_dict()["sha256"] == hashlib.sha256(b"DOFA").hexdigest()


def test_a_record_of_another_model_is_not_taken_for_this_one(tmp_path):
    (tmp_path / DOFA.file).write_bytes(b"dofa")
    Ledger(tmp_path).record(
        DOFA.file,
        tmp_path / DOFA.file,
        model="croma",
        sha256="0" * 64,
        source="x",
        sha256_from="hub",
        source_sha256="0" * 64,
    )
    assert folder_states(tmp_path, (DOFA,))[0].status == "unverified"


def test_an_unreadable_record_says_what_to_do(tmp_path):
    (tmp_path / "cryotune-weights.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"cryotune-weights.json is unreadable .* move it away"):
        folder_states(tmp_path)


def test_the_folder_is_the_flags_else_the_environments_else_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("CRYOTUNE_WEIGHTS", raising=False)
    assert resolve_folder(str(tmp_path / "new")) == tmp_path / "new"
    assert str(resolve_folder(None)).endswith("cryotune/weights")
    monkeypatch.setenv("CRYOTUNE_WEIGHTS", str(tmp_path))
    assert resolve_folder(None) == tmp_path
    with pytest.raises(UsageError, match="--weights random means no checkpoints"):
        resolve_folder("random")


def test_sizes_read_as_people_write_them():
    assert [human_size(n) for n in (None, 999, 1500, 2_600_000_000)] == [
        "size unknown",
        "999 B",
        "1.5 kB",
        "2.6 GB",
    ]
