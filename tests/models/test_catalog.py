import json

import pytest

from cryotune.cli import main
from cryotune.models.catalog import model_rows
from cryotune.models.encoders import ENCODERS
from cryotune.models.weights import WEIGHTS_ENV

ROW_KEYS = {
    "key",
    "family",
    "title",
    "roster",
    "params",
    "published_params",
    "input_size",
    "bands",
    "tapped_layers",
    "blocks",
    "weights_file",
    "weights_found",
    "weights_path",
    "weights_source",
}


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def _by_key(rows):
    return {row["key"]: row for row in rows}


def test_one_row_per_registered_encoder_with_sizes_bands_and_depth_range():
    rows = _by_key(model_rows(None))
    assert list(rows) == list(ENCODERS)
    assert all(set(row) == ROW_KEYS for row in rows.values())
    terramind = rows["terramind"]
    assert terramind["blocks"] == 24 and terramind["tapped_layers"] == [7, 11, 15, 23]
    assert terramind["bands"]["sar"] == ["VV", "VH"] and len(terramind["bands"]["optical"]) == 12
    assert terramind["params"] == pytest.approx(terramind["published_params"], rel=0.02)
    assert rows["dofa"]["bands"] == {"any": ["*"]}
    # torchvision ViT_B_16 (86,567,656) without head and final norm, at 13 bands instead of 3
    assert rows["vit"]["params"] == 86_567_656 - 769_000 - 1536 + 10 * 16 * 16 * 768
    assert rows["vit"]["weights_file"] is None and rows["vit"]["weights_found"] is False


def test_weights_are_reported_missing_with_their_source_until_present(tmp_path, monkeypatch):
    rows = _by_key(model_rows(str(tmp_path)))
    assert rows["dofa"]["weights_found"] is False and rows["dofa"]["weights_path"] is None
    assert rows["dofa"]["weights_source"] == "HF XShadow/DOFA"
    (tmp_path / "DOFA_ViT_base_e100.pth").write_bytes(b"x")
    rows = _by_key(model_rows(str(tmp_path)))
    assert rows["dofa"]["weights_found"] is True
    assert rows["dofa"]["weights_path"] == str(tmp_path / "DOFA_ViT_base_e100.pth")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert _by_key(model_rows(None))["dofa"]["weights_found"] is True


def test_cryotune_models_prints_the_catalog(tmp_path, capsys):
    assert main(["models", "--json", "--weights", str(tmp_path)]) == 0
    rows = _by_key(json.loads(capsys.readouterr().out))
    assert rows["scalemae"]["input_size"] == 224 and rows["scalemae"]["blocks"] == 24
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "missing: cryotune weights fetch ssl4eo_data2vec" in table


def test_a_weights_folder_that_does_not_exist_is_a_usage_error(tmp_path, capsys):
    assert main(["models", "--weights", str(tmp_path / "nowhere")]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err


def test_models_json_lists_the_whole_cryo_bench_roster_with_weights_status(capsys):
    assert main(["models", "--json"]) == 0
    rows = _by_key(json.loads(capsys.readouterr().out))
    rosters = {
        name: sorted(k for k, r in rows.items() if r["roster"] == name)
        for name in ("paper", "baseline", "later")
    }
    assert rosters == {
        "paper": sorted(
            [
                "croma",
                "dofa",
                "gfm_swin",
                "prithvi",
                "remoteclip",
                "satlas",
                "scalemae",
                "spectralgpt",
                "ssl4eo_moco",
                "ssl4eo_dino",
                "ssl4eo_mae",
                "ssl4eo_data2vec",
                "terramind",
                "ramen",
            ]
        ),
        "baseline": ["unet", "vit"],
        "later": ["prithvi_eo2", "thor"],
    }
    for row in rows.values():
        assert row["weights_found"] is False
        assert (row["weights_file"] is None) == (row["roster"] == "baseline")
