"""`cryotune weights list` and `fetch` through the real CLI, against the loopback hosts:
huggingface_hub pointed there by ``HF_ENDPOINT``, the HTTPS sources by
``$CRYOTUNE_WEIGHTS_MIRROR``; the sweep's missing-weights error and the command it names."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from weights_hosts import TINY, mae_checkpoint, saved, scalemae_checkpoint

from cryotune.cli import build_parser
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.data.synth import write_synthetic
from cryotune.models.encoders import get_encoder_spec
from cryotune.models.weights import find_weights, load_encoder_weights
from cryotune.weights.sources import source_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights_cli(cli_env, loopback, tmp_path):
    env = {k: v for k, v in cli_env.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=loopback.hub,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        CRYOTUNE_WEIGHTS_MIRROR=loopback.hub,
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cryotune.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=300,
        )

    return run


def _serve(loopback, model: str, variant: str | None, body: bytes, **how) -> None:
    origin = source_for(model, variant).origin
    if origin.kind == "hf":
        loopback.hub_file(origin.repo, origin.filename, body, **how)
    else:
        loopback.web_file(origin.url, body, **how)


def _loads(model: str, dataset: str, folder: Path) -> None:
    spec = get_encoder_spec(model)
    encoder = spec.builder(spec, map_bands(get_dataset(dataset), spec.bands, model), **TINY)
    load_encoder_weights(encoder, spec, find_weights(spec, folder, encoder.weights_variant))


def test_list_fetch_and_list_again(weights_cli, loopback, tmp_path):
    folder = tmp_path / "weights"
    _serve(loopback, "ssl4eo_mae", None, saved(mae_checkpoint()))  # Google Drive
    _serve(loopback, "ssl4eo_mae", "sar", saved(mae_checkpoint(in_chans=2)))  # the Hub
    _serve(loopback, "scalemae", None, saved(scalemae_checkpoint()), drops=1, drop_after=3000)
    _serve(loopback, "croma", None, b"", status=403, error_code="GatedRepo")
    _serve(loopback, "dofa", None, b"", status=404, error_code="EntryNotFound")
    _serve(loopback, "spectralgpt", None, b"x", delay=4)
    models = ["ssl4eo_mae", "scalemae", "croma", "dofa", "spectralgpt", "gfm_swin"]

    listed = weights_cli("weights", "list", "--weights", str(folder))
    assert listed.returncode == 0, listed.stderr
    assert f"weights folder: {folder}" in listed.stdout
    assert re.search(r"ssl4eo_mae:sar +B2_vits16_mae_ep99.pth +missing", listed.stdout)

    dry = weights_cli(
        "weights", "fetch", *models, "--weights", str(folder), "--timeout", "1", "--dry-run"
    )
    assert dry.returncode == 1  # some sources did not answer
    assert "to fetch: 3 file(s), " in dry.stdout
    assert re.search(
        r"scalemae +scalemae-vitlarge-800.pth +\d+\.\d kB  from https://github.com", dry.stdout
    )
    assert not folder.exists() or not any(folder.iterdir())

    fetched = weights_cli("weights", "fetch", *models, "--weights", str(folder), "--timeout", "1")
    out = fetched.stdout
    assert fetched.returncode == 1, fetched.stderr
    assert re.search(
        r"^ssl4eo_mae:optical: fetched: .*recorded \(the source publishes none\)", out, re.M
    )
    assert re.search(r"^ssl4eo_mae:sar: fetched: .*is the sha256 the Hub publishes", out, re.M)
    assert re.search(r"^scalemae: fetched: ", out, re.M)
    assert re.search(
        r"^croma: failed: antofuller/CROMA is gated: accept its terms at http://127", out, re.M
    )
    assert re.search(r"^dofa: failed: not found: DOFA_ViT_base_e100.pth is not in", out, re.M)
    assert re.search(r"^spectralgpt: failed: no answer from 127.0.0.1:\d+ within 1 s", out, re.M)
    assert re.search(
        r"^gfm_swin: manual: download it by hand from https://github.com/mmendiet/GFM", out, re.M
    )
    assert out.rstrip().endswith("3 fetched, 3 failed, 1 manual")
    _loads("ssl4eo_mae", "glid", folder)
    _loads("ssl4eo_mae", "caffe", folder)
    _loads("scalemae", "glid", folder)

    listed = weights_cli("weights", "list", "--weights", str(folder), "--json")
    rows = {r["file"]: r for r in json.loads(listed.stdout)["files"]}
    assert {
        rows[f]["status"] for f in ("B13_vits16_mae_0099_ckpt.pth", "scalemae-vitlarge-800.pth")
    } == {"verified"}
    assert rows["B2_vits16_mae_ep99.pth"]["expected_from"] == "hub"
    assert rows["CROMA_large.pt"]["status"] == "missing"
    assert rows["CROMA_large.pt"]["page"] == "https://huggingface.co/antofuller/CROMA"

    again = weights_cli("weights", "fetch", "ssl4eo_mae", "scalemae", "--weights", str(folder))
    assert again.returncode == 0 and again.stdout.rstrip().endswith("3 present")


def test_the_sweeps_missing_weights_error_names_the_command_that_fixes_it(
    weights_cli, loopback, tmp_path
):
    data = tmp_path / "data"
    for key in ("glid", "caffe"):
        write_synthetic(key, data / key, tiles=2, size=32, seed=0)
    folder = tmp_path / "weights"
    folder.mkdir()
    sweep = weights_cli(
        "sweep", "glid", "caffe", "--models", "ssl4eo_mae,dofa", "--data-root", str(data),
        "--weights", str(folder), "--workspace", str(tmp_path / "runs"),
    )  # fmt: skip
    assert sweep.returncode == 1
    command = re.search(r"fetch them with `(cryotune weights fetch [^`]*)`", sweep.stderr)
    assert command, sweep.stderr
    assert command.group(1) == f"cryotune weights fetch ssl4eo_mae dofa --weights {folder}"
    assert "ssl4eo_mae:sar (B2_vits16_mae_ep99.pth)" in sweep.stderr

    _serve(loopback, "ssl4eo_mae", None, saved(mae_checkpoint()))
    _serve(loopback, "ssl4eo_mae", "sar", saved(mae_checkpoint(in_chans=2)))
    _serve(loopback, "dofa", None, b"dofa")
    fix = weights_cli(*command.group(1).split()[1:])
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert (folder / "B2_vits16_mae_ep99.pth").is_file()


def test_fetch_needs_something_to_fetch(weights_cli):
    proc = weights_cli("weights", "fetch")
    assert proc.returncode == 2
    assert "name what to fetch: MODEL ..., --all or --for-datasets DATASET,..." in proc.stderr
    proc = weights_cli("weights", "fetch", "unet")
    assert proc.returncode == 2 and "'unet' is trained from scratch" in proc.stderr


def test_the_documented_weights_commands_parse():
    """The code blocks of the README's first-real-sweep section and docs/weights.md."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Your first real sweep") :]
    texts = [section[: section.index("\n## ")], (REPO / "docs" / "weights.md").read_text()]
    lines = [
        shlex.split(line, comments=True)
        for text in texts
        for block in re.findall(r"^```\n(.*?)^```", text, re.S | re.M)
        for line in block.splitlines()
    ]
    commands = [line[1:] for line in lines if line and line[0] == "cryotune"]
    assert sum(c[0] == "weights" for c in commands) >= 7
    for args in commands:
        assert build_parser().parse_args(args).func, args
