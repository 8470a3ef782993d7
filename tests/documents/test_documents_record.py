"""PairRecord: the one class that writes and reads best-config records, across versions."""

from __future__ import annotations

import json

import pytest

from cryotune.config import TrialConfig
from cryotune.documents.document import DocumentError
from cryotune.documents.record import (
    BestResult,
    PairRecord,
    RecordIds,
    RecordTrials,
    UnreadableRecord,
    leaderboard,
    read_record,
)


def _record(model: str, val: float | None, sweep: str = "s", **ids) -> PairRecord:
    complete = val is not None
    return PairRecord(
        sweep=sweep,
        dataset="glid",
        model=model,
        status="complete" if complete else "no_complete_trial",
        study_name=f"{sweep}/glid/{model}",
        optuna_storage="sqlite:///optuna.db",
        search_space={"num_blocks": 4},
        cryotune_version="test",
        trials=RecordTrials(budget=2, complete=int(complete), pruned=0, failed=1, total=2),
        seconds={"pair_wall": 2.0, "trials": 1.5},
        finished_at="2026-11-30T10:00:00+00:00",
        config=TrialConfig(dataset="glid", model=model, lr=1e-3) if complete else None,
        best=BestResult(val_miou=val) if complete else None,
        ids=RecordIds(**ids),
        repeat_command="cryotune train glid " + model if complete else None,
    )


def test_a_record_reads_back_as_written(tmp_path):
    record = _record("unet", 61.5, tune_trial_id="abc", study_trial=3)
    path = tmp_path / "glid__unet.json"
    record.write(path)
    assert json.loads(path.read_text())["schema"] == PairRecord.SCHEMA
    again = PairRecord.read(path)
    assert again == record.model_copy(update={"record_file": str(path)})
    assert again.record_file == str(path) and "record_file" not in path.read_text()


def test_a_version_1_record_is_migrated_when_read(tmp_path):
    data = _record("unet", 61.5, tune_trial_id="abc", study_trial=3).to_dict()
    ids = {k: v for k, v in data["ids"].items() if k != "study_trial"}
    old = {**data, "schema": 1, "ids": {**ids, "optuna_trial_number": 3}}
    path = tmp_path / "glid__unet.json"
    path.write_text(json.dumps(old))
    record = PairRecord.read(path)
    assert record.ids.study_trial == 3 and record.schema_version == PairRecord.SCHEMA


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"schema": 99}, "schema 99 is newer than this cryotune reads"),
        ({"trials": None}, "trials"),
        ({"status": "done"}, "status"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_record_that_is_not_one_is_named_with_what_is_wrong(tmp_path, change, says):
    path = tmp_path / "glid__unet.json"
    path.write_text(json.dumps({**_record("unet", 61.5).to_dict(), **change}))
    with pytest.raises(DocumentError, match=str(path)) as error:
        PairRecord.read(path)
    assert says in str(error.value)
    stand_in = read_record(path)
    assert isinstance(stand_in, UnreadableRecord)
    assert (stand_in.dataset, stand_in.model) == ("glid", "unet") and says in stand_in.error


def test_the_leaderboard_keeps_each_models_best_complete_record_best_first():
    records = [
        _record("unet", 60.0, sweep="a"),
        _record("unet", 64.0, sweep="b"),
        _record("dofa", 62.0),
        _record("croma", None),
    ]
    board = leaderboard(records)
    assert [(r.model, r.sweep, r.val_miou) for r in board] == [
        ("unet", "b", 64.0),
        ("dofa", "s", 62.0),
    ]
