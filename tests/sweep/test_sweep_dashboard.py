"""`cryotune dashboard`: the real optuna-dashboard over a real sweep's studies, over HTTP, with
nothing it can change."""

from __future__ import annotations

import contextlib
import socket
import sys
import time

import httpx
import pytest

from cryotune.errors import UsageError
from cryotune.extras import require_extra
from cryotune.sweep.dashboard import study_storage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dashboard(background, tmp_path):
    """Start `cryotune dashboard ARGS` on a free loopback port; its URL once it answers."""

    def start(*args: str) -> str:
        port = _free_port()
        log = tmp_path / f"dashboard-{port}.log"
        process = background(
            sys.executable, "-m", "cryotune.cli", "dashboard", *args, "--port", str(port), log=log
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/studies", timeout=2).status_code == 200:
                    assert f"Optuna dashboard: {url}" in log.read_text()
                    return url
            time.sleep(0.2)
        raise AssertionError(f"cryotune dashboard did not answer in 60 s: {log.read_text()}")

    return start


def test_the_dashboard_lists_the_sweeps_studies_with_pruned_trials_and_their_epochs(
    notebook_sweep, dashboard
):
    url = dashboard(notebook_sweep["name"], "--workspace", str(notebook_sweep["workspace"]))
    studies = httpx.get(f"{url}/api/studies").json()["study_summaries"]
    assert [s["study_name"] for s in studies] == ["nb-glid/glid/unet"]
    detail = httpx.get(f"{url}/api/studies/{studies[0]['study_id']}").json()
    states = [t["state"] for t in detail["trials"]]
    assert len(states) == 3 and "Pruned" in states and "Complete" in states
    for trial in detail["trials"]:
        # Per validated epoch (a trial the stop interrupted may lack the epoch it reported then).
        epochs = sorted(v["step"] for v in trial["intermediate_values"])
        assert epochs and set(epochs) <= {1, 2, 3}
        assert epochs[-1] < 3 if trial["state"] == "Pruned" else epochs[-1] == 3
    assert detail["has_intermediate_values"]
    assert [b["number"] for b in detail["best_trials"]] == [
        notebook_sweep["status"]["pairs"][0]["best_config"]["study_trial"]
    ]


def test_the_dashboard_cannot_change_the_studies(notebook_sweep, dashboard):
    url = dashboard(
        "--optuna-storage", f"sqlite:///{notebook_sweep['workspace']}/nb-glid/optuna.db"
    )
    study_id = httpx.get(f"{url}/api/studies").json()["study_summaries"][0]["study_id"]
    attempts = [
        httpx.post(f"{url}/api/studies", json={"study_name": "x", "directions": ["maximize"]}),
        httpx.delete(f"{url}/api/studies/{study_id}"),
        httpx.post(f"{url}/api/studies/{study_id}/rename", json={"study_name": "y"}),
        httpx.put(f"{url}/api/studies/{study_id}/note", json={"version": 1, "body": "x"}),
    ]
    for answer in attempts:
        assert answer.status_code == 405 and "read-only" in answer.json()["reason"]
    names = [s["study_name"] for s in httpx.get(f"{url}/api/studies").json()["study_summaries"]]
    assert names == ["nb-glid/glid/unet"]


def test_which_studies_to_show_is_asked_for_when_unclear(tmp_path):
    with pytest.raises(UsageError, match="give the sweep whose studies to show .*none"):
        study_storage(tmp_path, None, None)
    missing = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(UsageError, match="no such study database"):
        study_storage(None, None, missing)
    assert not (tmp_path / "optuna.db").exists()
    with pytest.raises(UsageError, match="--optuna-storage nonsense: not a database URL"):
        study_storage(None, None, "nonsense")


def test_without_the_extra_the_command_says_how_to_install_it():
    with pytest.raises(UsageError) as caught:
        require_extra(
            "cryotune_absent_module", "dashboard", "optuna-dashboard", "cryotune dashboard"
        )
    assert str(caught.value) == (
        "cryotune dashboard needs optuna-dashboard, an optional extra: "
        "pip install 'cryotune[dashboard]' (or pip install optuna-dashboard)"
    )
