"""Fetching against the loopback hosts: each file planned with its size, downloaded, checked
against the sha256 its source publishes (or the one recorded), converted where its source says
so, and loaded strictly into its encoder; one file's failure never stops the others."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from weights_hosts import (
    TINY,
    sar_mae_checkpoint,
    saved,
    scalemae_checkpoint,
    terramind_checkpoint,
)

from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.weights import find_weights, load_encoder_weights
from cryotune.weights.fetch import Remotes, plan, plan_lines, run
from cryotune.weights.ledger import LEDGER_NAME
from cryotune.weights.sources import source_for, sources_of
from cryotune.weights.status import folder_states

SCALEMAE = source_for("scalemae")
SAR_MAE = source_for("ssl4eo_mae", "sar")
TERRAMIND = source_for("terramind")


@pytest.fixture
def remotes(loopback, tmp_path) -> Remotes:
    return Remotes(
        hub_endpoint=loopback.hub, hub_cache=str(tmp_path / "hf"), mirror=loopback.hub, timeout=2
    )


def _encoder(model: str, dataset: str):
    spec = get_encoder_spec(model)
    return spec, spec.builder(spec, map_bands(get_dataset(dataset), spec.bands, model), **TINY)


def _serve(loopback, source, body: bytes, **how):
    origin = source.origin
    if origin.kind == "hf":
        return loopback.hub_file(origin.repo, origin.filename, body, **how)
    return loopback.web_file(origin.url, body, **how)


def _fetch(sources, folder, remotes, overrides=None):
    steps = plan(sources, folder, remotes)
    return steps, {o.source.label: o for o in run(steps, folder, remotes, overrides=overrides)}


def test_fetched_files_are_verified_recorded_and_load_strictly(loopback, remotes, tmp_path):
    sar, scale = saved(sar_mae_checkpoint()), saved(scalemae_checkpoint())
    _serve(loopback, SAR_MAE, sar)
    _serve(loopback, SCALEMAE, scale)
    folder = tmp_path / "weights"
    steps, outcomes = _fetch([SAR_MAE, SCALEMAE], folder, remotes)
    assert [s.remote.size for s in steps] == [len(sar), len(scale)]
    assert outcomes["ssl4eo_mae:sar"].status == "fetched"
    assert "is the sha256 the Hub publishes" in outcomes["ssl4eo_mae:sar"].message
    assert "recorded (the source publishes none)" in outcomes["scalemae"].message
    assert (folder / SAR_MAE.file).read_bytes() == sar
    assert (folder / SCALEMAE.file).read_bytes() == scale
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [SAR_MAE.file, SCALEMAE.file, LEDGER_NAME]
    )

    for model, dataset in (("ssl4eo_mae", "caffe"), ("scalemae", "glid")):
        spec, encoder = _encoder(model, dataset)
        path = find_weights(spec, folder, encoder.weights_variant)
        assert (
            load_encoder_weights(encoder, spec, path)
            == hashlib.sha256(path.read_bytes()).hexdigest()
        )

    states = {s.source.label: s for s in folder_states(folder, (SAR_MAE, SCALEMAE))}
    assert states["ssl4eo_mae:sar"].status == "verified"
    assert states["ssl4eo_mae:sar"].expected_from == "hub"
    assert states["scalemae"].expected_from == "recorded"

    _, again = _fetch([SAR_MAE, SCALEMAE], folder, remotes)
    assert {o.status for o in again.values()} == {"present"}


def test_each_failure_is_reported_and_the_rest_fetched(loopback, remotes, tmp_path):
    good = saved(sar_mae_checkpoint())
    _serve(loopback, SAR_MAE, good)
    _serve(loopback, source_for("dofa"), b"", status=404, error_code="EntryNotFound")
    _serve(loopback, source_for("croma"), b"", status=403, error_code="GatedRepo")
    _serve(loopback, source_for("spectralgpt"), b"x" * 100, delay=4)
    _serve(loopback, source_for("ssl4eo_moco"), b"<html>quota</html>", content_type="text/html")
    folder = tmp_path / "weights"
    chosen = sources_of(
        ["dofa", "croma", "spectralgpt", "ssl4eo_moco", "gfm_swin", "ssl4eo_mae:sar"]
    )
    steps, outcomes = _fetch(chosen, folder, remotes)
    lines = "\n".join(plan_lines(steps, folder))
    assert f"weights folder: {folder}" in lines and "to fetch: 1 file(s)" in lines

    assert outcomes["ssl4eo_mae:sar"].status == "fetched"
    assert (folder / SAR_MAE.file).read_bytes() == good
    failed = {k: o.message for k, o in outcomes.items() if o.status == "failed"}
    assert set(failed) == {"dofa", "croma", "spectralgpt", "ssl4eo_moco"}
    assert "not found: DOFA_ViT_base_e100.pth is not in" in failed["dofa"]
    assert f"accept its terms at {loopback.hub}/antofuller/CROMA" in failed["croma"]
    assert "within 2 s (see --timeout)" in failed["spectralgpt"]
    assert (
        "open https://drive.google.com/file/d/1LREGuI6w7Gq6Xm0jFQdxxtp8QkmLvJWk/view"
        in (failed["ssl4eo_moco"])
    )
    assert outcomes["gfm_swin"].status == "manual"
    assert "from https://github.com/mmendiet/GFM" in outcomes["gfm_swin"].message
    assert f"save it as {folder / 'gfm.pth'}" in outcomes["gfm_swin"].message
    assert sorted(p.name for p in folder.iterdir()) == sorted([SAR_MAE.file, LEDGER_NAME])


def test_a_download_with_the_wrong_sha256_is_refused_and_kept_aside(loopback, remotes, tmp_path):
    body = saved(sar_mae_checkpoint())
    served = _serve(loopback, SAR_MAE, body, etag="0" * 64)  # the Hub says another sha256
    folder = tmp_path / "weights"
    _, outcomes = _fetch([SAR_MAE], folder, remotes)
    message = outcomes["ssl4eo_mae:sar"].message
    assert outcomes["ssl4eo_mae:sar"].status == "failed"
    assert (
        f"sha256 {hashlib.sha256(body).hexdigest()} is not the sha256 the Hub publishes" in message
    )
    assert f"kept it as {folder / (SAR_MAE.file + '.rejected')}" in message
    assert not (folder / SAR_MAE.file).exists()
    assert (folder / (SAR_MAE.file + ".rejected")).read_bytes() == body
    assert len(loopback.ranges(f"/blobs/{served.sha256}")) == 2  # the cached copy fetched anew


def test_a_changed_source_is_refused_against_the_sha256_recorded_at_the_first_fetch(
    loopback, remotes, tmp_path
):
    first = saved(scalemae_checkpoint())
    _serve(loopback, SCALEMAE, first)
    folder = tmp_path / "weights"
    _fetch([SCALEMAE], folder, remotes)
    (folder / SCALEMAE.file).unlink()
    _serve(loopback, SCALEMAE, first[:-10] + b"0123456789", validator='"v2"')
    _, outcomes = _fetch([SCALEMAE], folder, remotes)
    message = outcomes["scalemae"].message
    assert "is not the sha256 recorded at the first fetch" in message
    assert f"remove the entry 'scalemae-vitlarge-800.pth' from {folder / LEDGER_NAME}" in message
    assert not (folder / SCALEMAE.file).exists()


def test_a_file_with_a_wrong_hash_is_moved_aside_and_fetched_again(loopback, remotes, tmp_path):
    body = saved(scalemae_checkpoint())
    _serve(loopback, SCALEMAE, body)
    folder = tmp_path / "weights"
    _fetch([SCALEMAE], folder, remotes)
    (folder / SCALEMAE.file).write_bytes(b"damaged")
    assert folder_states(folder, (SCALEMAE,))[0].status == "wrong-hash"
    steps, outcomes = _fetch([SCALEMAE], folder, remotes)
    assert "(replaces a file with a wrong hash)" in "\n".join(plan_lines(steps, folder))
    assert outcomes["scalemae"].status == "fetched"
    assert "the file with the wrong hash was kept as" in outcomes["scalemae"].message
    assert (folder / SCALEMAE.file).read_bytes() == body
    assert (folder / (SCALEMAE.file + ".rejected")).read_bytes() == b"damaged"


def test_an_interrupted_download_never_sits_under_its_final_name(loopback, remotes, tmp_path):
    body = saved(scalemae_checkpoint())
    _serve(loopback, SCALEMAE, body, drops=5, drop_after=2000)
    folder = tmp_path / "weights"
    _, outcomes = _fetch([SCALEMAE], folder, remotes)
    assert outcomes["scalemae"].status == "failed"
    assert not (folder / SCALEMAE.file).exists()
    assert (folder / (SCALEMAE.file + ".part")).stat().st_size == 10_000
    assert folder_states(folder, (SCALEMAE,))[0].status == "missing"
    _, outcomes = _fetch([SCALEMAE], folder, remotes)
    assert outcomes["scalemae"].status == "fetched"
    assert (folder / SCALEMAE.file).read_bytes() == body
    assert loopback.ranges("scalemae-vitlarge-800.pth")[-1] == "bytes=10000-"


def test_terramind_keeps_only_its_encoder_and_loads_strictly(loopback, remotes, tmp_path):
    release = terramind_checkpoint()
    body = saved(release)
    _serve(loopback, TERRAMIND, body)
    folder = tmp_path / "weights"
    _, outcomes = _fetch([TERRAMIND], folder, remotes, overrides=TINY)
    assert outcomes["terramind"].status == "fetched", outcomes["terramind"].message
    assert "stored encoder_only" in outcomes["terramind"].message
    stored = torch.load(folder / TERRAMIND.file, weights_only=True)
    assert not [k for k in stored if k.startswith("decoder")]
    assert stored["encoder.1.mlp.fc3.weight"].equal(release["encoder.1.mlp.fc3.weight"])
    for dataset in ("gld", "caffe"):  # optical + SAR, SAR alone
        spec, encoder = _encoder("terramind", dataset)
        load_encoder_weights(encoder, spec, folder / TERRAMIND.file)
    entry = json.loads((folder / LEDGER_NAME).read_text())["files"][TERRAMIND.file]
    assert entry["source_sha256"] == hashlib.sha256(body).hexdigest()
    assert entry["sha256"] == hashlib.sha256((folder / TERRAMIND.file).read_bytes()).hexdigest()
    assert entry["converted"] == "encoder_only" and entry["sha256_from"] == "hub"
    assert folder_states(folder, (TERRAMIND,))[0].status == "verified"


def test_a_release_that_does_not_fit_the_architecture_is_refused(loopback, remotes, tmp_path):
    _serve(loopback, TERRAMIND, saved(terramind_checkpoint()))
    folder = tmp_path / "weights"
    _, outcomes = _fetch([TERRAMIND], folder, remotes)  # checked at TerraMind-L's real size
    message = outcomes["terramind"].message
    assert outcomes["terramind"].status == "failed"
    assert "does not fit model 'terramind'" in message and "shape mismatches" in message
    assert not (folder / TERRAMIND.file).exists()
    assert (folder / (TERRAMIND.file + ".rejected")).is_file()
