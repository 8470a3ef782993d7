"""`cryotune mlflow`: the MLflow UI over a swept workspace, answering on a free loopback port."""

from __future__ import annotations

import json
import signal
import socket
import sys
import urllib.parse
import urllib.request

import pytest

SWEEP = "smoke-glid-caffe"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_the_ui_serves_the_workspace_runs_and_artifacts_then_stops(
    smoke_sweep, background, port, wait, tmp_path
):
    workspace = smoke_sweep.folder.parent
    number = port()
    url = f"http://127.0.0.1:{number}"
    ui = background(
        sys.executable,
        "-m",
        "cryotune.cli",
        "mlflow",
        "--port",
        str(number),
        "--workspace",
        str(workspace),
        log="mlflow.log",
    )
    log = tmp_path / "mlflow.log"
    wait(lambda: f"MLflow UI: {url}" in log.read_text() or ui.poll() is not None, 120, "the UI")
    assert ui.poll() is None, log.read_text()[-2000:]
    assert _get(f"{url}/health") == b"OK"

    query = urllib.parse.urlencode({"experiment_name": SWEEP})
    experiment = json.loads(_get(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}"))
    experiment_id = experiment["experiment"]["experiment_id"]
    search = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search",
        data=json.dumps(
            {"experiment_ids": [experiment_id], "filter": "tags.`cryotune.level` = 'pair'"}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(search, timeout=10) as response:
        pairs = json.loads(response.read())["runs"]
    assert len(pairs) == 4  # glid and caffe, unet and ssl4eo_mae
    run_id = pairs[0]["info"]["run_id"]
    artifact = urllib.parse.urlencode({"path": "confusion_matrix.png", "run_uuid": run_id})
    assert _get(f"{url}/get-artifact?{artifact}")[:4] == b"\x89PNG"

    ui.send_signal(signal.SIGTERM)
    assert ui.wait(timeout=30) == 0
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", number))  # the server went with it


def test_a_missing_workspace_or_a_taken_port_is_refused(cryotune, tmp_path):
    missing = cryotune("mlflow", "--workspace", str(tmp_path / "nowhere"), "--port", "5999")
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = cryotune(
            "mlflow", "--workspace", str(tmp_path), "--port", str(taken.getsockname()[1])
        )
    assert busy.returncode == 2 and "in use" in busy.stderr
    served = cryotune("mlflow", "--tracking-uri", "http://127.0.0.1:5000", "--port", "5999")
    assert served.returncode == 2 and "tracking server already" in served.stderr
