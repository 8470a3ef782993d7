"""Every model the later Cryo-Bench roster added trains one smoke trial inside a real sweep, and
SICD sweeps feed each model the view Cryo-Bench ran it on."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

SMOKE = Path(__file__).resolve().parents[2] / "sweeps" / "smoke.yaml"

NEW_MODELS = ["croma", "spectralgpt", "ramen", "satlas", "gfm_swin", "thor", "prithvi_eo2"]


def _light_smoke(folder: Path) -> Path:
    """The smoke spec with frozen encoders and no weights kept: these models have 80-300 M
    parameters, and every trial's checkpoints of them take gigabytes."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec["space"]["depth"] = {"fractions": [0.0]}
    spec["keep_checkpoints"] = "none"
    path = folder / "light-smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _one_trial_each(cryotune, dataset: str, models: list[str], name: str, data_root, workspace):
    """The smoke spec on ``dataset``: one one-epoch trial per model, random weights, frozen
    encoders, no weights kept."""
    workspace.mkdir(parents=True, exist_ok=True)
    return cryotune(
        "sweep",
        dataset,
        "--config",
        str(_light_smoke(workspace.parent)),
        "--models",
        ",".join(models),
        "--trials",
        "1",
        "--max-epochs",
        "1",
        "--name",
        name,
        "--data-root",
        str(data_root),
        "--workspace",
        str(workspace),
        timeout=900,
    )


def test_each_added_model_completes_a_smoke_trial_with_random_weights(
    cryotune, data_root, tmp_path
):
    workspace = tmp_path / "runs"
    done = _one_trial_each(cryotune, "glid", NEW_MODELS, "roster", data_root, workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for model in NEW_MODELS:
        record = json.loads((workspace / "roster" / "records" / f"glid__{model}.json").read_text())
        assert record["status"] == "complete", (model, record.get("errors"))
        assert record["weights"]["sha256"] == "random"
        assert 0 <= record["best"]["val_miou"] <= 100
        assert record["best"]["test_metrics"]["miou"] >= 0
        assert record["model_info"]["encoder_params"] > 80e6
        assert record["checkpoint"] is None
    assert not list(workspace.rglob("*.pt"))  # keep_checkpoints: none


def test_sicd_sweeps_an_optical_only_model_on_the_rgb_proxy_and_a_sar_model_on_sar(
    cryotune, data_root, tmp_path
):
    workspace = tmp_path / "runs"
    done = _one_trial_each(cryotune, "sicd", ["ssl4eo_moco", "dofa"], "views", data_root, workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sicd/dofa reads sicd view sar (as in Cryo-Bench's runs) -> all VV,VH" in done.stdout
    assert "sicd/ssl4eo_moco reads sicd view optical" in done.stdout
    expected = {"ssl4eo_moco": ("optical", ["B4", "B3", "B2"]), "dofa": ("sar", ["VV", "VH"])}
    for model, (view, bands) in expected.items():
        record = json.loads((workspace / "views" / "records" / f"sicd__{model}.json").read_text())
        assert record["status"] == "complete", (model, record.get("errors"))
        info = record["model_info"]
        assert info["view"] == view and info["view_source"] == "as in Cryo-Bench's runs"
        fed = info["band_mapping"]["inputs"]
        assert sorted(b for b in next(iter(fed.values())) if b in bands) == sorted(bands)
        assert record["best"]["test_metrics"]["pixels"] > 0
