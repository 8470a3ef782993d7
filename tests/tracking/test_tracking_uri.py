"""Which MLflow store a sweep logs to, and the fast, clear refusal of one that does not answer."""

from __future__ import annotations

import socket

import pytest

from cryotune.errors import CryotuneError, UsageError
from cryotune.tracking.uri import (
    artifact_location,
    check_reachable,
    resolve_tracking_uri,
)


def test_flag_then_environment_then_the_started_store_then_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, tmp_path, "http://h:1") == "http://h:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000/")
    assert resolve_tracking_uri(None, tmp_path, "http://h:1") == "http://env:5000"
    assert resolve_tracking_uri("http://flag:5000", tmp_path) == "http://flag:5000"


def test_a_relative_sqlite_store_is_made_absolute_for_the_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = resolve_tracking_uri("sqlite:///sub/ml.db", tmp_path / "ws")
    assert uri == f"sqlite:///{tmp_path / 'sub' / 'ml.db'}"
    assert artifact_location(uri, "s") == (tmp_path / "sub" / "mlartifacts" / "s").as_uri()
    assert artifact_location("http://h:1", "s") is None


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "mlruns", "sqlite://"])
def test_stores_mlflow_refuses_are_usage_errors(uri, tmp_path):
    with pytest.raises(UsageError, match="--tracking-uri"):
        resolve_tracking_uri(uri, tmp_path)


def test_an_unreachable_server_is_named_with_the_flags_that_choose_it(port):
    url = f"http://127.0.0.1:{port()}"
    with pytest.raises(CryotuneError) as error:
        check_reachable(url)
    message = str(error.value)
    assert url in message and "--tracking-uri" in message and "MLFLOW_TRACKING_URI" in message


def test_a_server_that_never_answers_is_given_up_on_with_a_timeout():
    """A host that takes the connection but never answers (a hung server, a black-holing
    proxy) is refused once the timeout passes, not waited on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nobody reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(CryotuneError, match="GET /health: timed out") as error:
            check_reachable(url, timeout_s=1)
    assert url in str(error.value) and "--tracking-uri" in str(error.value)


def test_a_sweep_against_an_unreachable_server_fails_before_training(
    cryotune, data_root, tmp_path, port
):
    url = f"http://127.0.0.1:{port()}"
    workspace = tmp_path / "runs"
    done = cryotune(
        "sweep",
        "glid",
        "--config",
        "sweeps/smoke.yaml",
        "--data-root",
        str(data_root),
        "--workspace",
        str(workspace),
        "--tracking-uri",
        url,
    )
    assert done.returncode == 1, done.stderr
    assert f"MLflow tracking store {url} is not reachable" in done.stderr
    assert "--tracking-uri" in done.stderr
    assert not (workspace / "smoke-glid").exists()  # nothing created, nothing computed
    assert " trial " not in done.stdout  # refused before a trial started (one line each)
