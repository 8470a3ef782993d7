"""The outbox against a real sqlite MLflow store and a real closed port: order, stopping at a
failure, pausing retries, idempotent re-delivery, skipped permanent failures, concurrent writers."""

from __future__ import annotations

import http.server
import json
import multiprocessing
import threading

import pytest
from mlflow import MlflowClient

from cryotune.tracking.outbox import Courier, Outbox
from cryotune.tracking.uri import CLIENT_ENVIRONMENT

TRIAL = {"cryotune.level": "trial", "cryotune.trial_id": "t_00001"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")


@pytest.fixture
def experiment(client, tmp_path) -> str:
    """A fresh experiment per test in the module's store (creating a store takes seconds)."""
    return client.create_experiment(tmp_path.name, artifact_location=(tmp_path / "art").as_uri())


@pytest.fixture
def dead_client(monkeypatch, port) -> MlflowClient:
    """A client of a tracking server that is not there (nothing listens on the port)."""
    for key, value in CLIENT_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    return MlflowClient(f"http://127.0.0.1:{port()}")


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers every request 503, as a proxy does while the tracking server behind it is down
    (a status MLflow's HTTP client retries, with backoff, unless told not to)."""

    def _answer(self) -> None:
        self.server.requests.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def unavailable(monkeypatch):
    """A real HTTP server that answers 503 and counts the requests it got, and a client of it
    with the environment cryotune gives every process that logs."""
    for key, value in CLIENT_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield MlflowClient(f"http://127.0.0.1:{server.server_address[1]}"), server.requests
    server.shutdown()
    server.server_close()


def _spool_run(outbox: Outbox, experiment: str) -> None:
    outbox.append("create", experiment_id=experiment, run_name="r", tags=TRIAL, match=TRIAL)
    outbox.append("params", params={"lr": 0.1, "depth": 3})
    for step in (1, 2, 3):
        outbox.append("metrics", metrics={"val_miou": 10.0 * step, "skipped": None}, step=step)


def _runs(client, experiment):
    return client.search_runs([experiment])


def test_operations_are_delivered_in_order(tmp_path, client, experiment):
    outbox = Outbox(tmp_path / "trial")
    _spool_run(outbox, experiment)
    (tmp_path / "trial" / "config.json").write_text('{"a": 1}')
    outbox.append("artifact", file=str(tmp_path / "trial" / "config.json"))
    outbox.append("tags", tags={"cryotune.status": "complete"})
    outbox.append("status", status="FINISHED")
    assert outbox.pending() == 8
    assert outbox.deliver(client)
    (run,) = _runs(client, experiment)
    assert run.info.run_id == outbox.run_id() and run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "depth": "3"}
    assert run.data.tags["cryotune.status"] == "complete"
    history = client.get_metric_history(run.info.run_id, "val_miou")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 20.0), (3, 30.0)]
    assert "skipped" not in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.json"]
    assert outbox.pending() == 0 and outbox.delivered() == 8


def test_delivery_stops_at_a_failure_after_one_request_and_pauses_retries(
    tmp_path, client, dead_client, unavailable, experiment
):
    outbox = Outbox(tmp_path / "trial", retry_after_s=30)
    _spool_run(outbox, experiment)
    assert outbox.deliver(client)
    outbox.append("metrics", metrics={"val_miou": 40.0}, step=4)
    outbox.append("status", status="FINISHED")

    assert not outbox.deliver(dead_client)
    assert outbox.pending() == 2 and "Connection" in outbox.last_error
    down, requests = unavailable
    assert not outbox.deliver(down, force=True)
    assert len(requests) == 1, requests  # no retries with backoff inside a training step
    assert outbox.pending() == 2 and "503" in outbox.last_error

    assert not outbox.deliver(client)  # paused: a training loop is not slowed by retries
    assert outbox.pending() == 2
    assert outbox.deliver(client, force=True)
    (run,) = _runs(client, experiment)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_miou")] == [
        10.0,
        20.0,
        30.0,
        40.0,
    ]
    assert run.info.status == "FINISHED"


def test_the_courier_delivers_behind_the_logger_and_outlives_a_dead_store(
    tmp_path, client, dead_client, experiment
):
    outbox = Outbox(tmp_path / "trial", retry_after_s=30)
    _spool_run(outbox, experiment)
    courier = Courier()
    courier.post(outbox, dead_client)
    assert courier.flush(timeout=30)
    assert outbox.pending() == 5 and "Connection" in outbox.last_error
    outbox.append("status", status="FINISHED")
    courier.post(outbox, client)  # paused after the failure
    courier.post(outbox, client, force=True)
    assert courier.flush(timeout=60)
    assert outbox.pending() == 0
    (run,) = _runs(client, experiment)
    history = client.get_metric_history(run.info.run_id, "val_miou")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 20.0), (3, 30.0)]
    assert run.info.status == "FINISHED"


def test_redelivery_after_a_crash_duplicates_nothing(tmp_path, client, experiment):
    outbox = Outbox(tmp_path / "trial")
    _spool_run(outbox, experiment)
    outbox.append("tags", tags={"cryotune.status": "complete"})
    assert outbox.deliver(client)
    run_id = outbox.run_id()
    # Killed after delivering but before counting or caching the run id: all of it again.
    outbox.delivered_file.unlink()
    outbox.run_id_file.unlink()
    assert outbox.deliver(client)
    assert outbox.run_id() == run_id  # found by its tags, not created twice
    (run,) = _runs(client, experiment)
    history = client.get_metric_history(run_id, "val_miou")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 20.0), (3, 30.0)]
    assert run.data.params == {"lr": "0.1", "depth": "3"}


def test_an_operation_that_can_never_succeed_is_skipped_not_blocking(tmp_path, client, experiment):
    outbox = Outbox(tmp_path / "trial")
    _spool_run(outbox, experiment)
    outbox.append("params", params={"lr": 0.5})  # MLflow refuses to change a param
    outbox.append("artifact", file=str(tmp_path / "gone.json"))
    outbox.append("tags", tags={"after": "yes"})
    assert outbox.deliver(client)
    (run,) = _runs(client, experiment)
    assert run.data.params["lr"] == "0.1" and run.data.tags["after"] == "yes"


class BuggyClient:
    """A real client whose batch logging has a bug: raises KeyError, as a bug would."""

    def __init__(self, client: MlflowClient):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if metrics:
            raise KeyError("step")
        return self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)


def test_a_bug_is_not_an_outage_it_is_skipped_with_a_warning(tmp_path, client, experiment, caplog):
    outbox = Outbox(tmp_path / "trial")
    _spool_run(outbox, experiment)
    outbox.append("tags", tags={"after": "yes"})
    with caplog.at_level("WARNING", logger="cryotune.tracking.outbox"):
        assert outbox.deliver(BuggyClient(client))
    assert outbox.pending() == 0 and outbox.last_error is None
    (run,) = _runs(client, experiment)
    assert run.data.tags["after"] == "yes"  # later operations were not blocked
    assert "skipped operation metrics (#2)" in caplog.text and "KeyError" in caplog.text


def test_only_an_absent_or_overloaded_store_is_transient():
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes
    from sqlalchemy.exc import OperationalError

    from cryotune.tracking.outbox import transient

    assert transient(ConnectionRefusedError())
    assert transient(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert transient(MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE))
    assert transient(MlflowException("boom", error_code=codes.INTERNAL_ERROR))
    assert transient(MlflowException("slow down", error_code=codes.REQUEST_LIMIT_EXCEEDED))
    assert not transient(MlflowException("no", error_code=codes.INVALID_PARAMETER_VALUE))
    assert not transient(MlflowException("gone", error_code=codes.RESOURCE_DOES_NOT_EXIST))
    assert not transient(KeyError("step")) and not transient(TypeError())


def test_a_line_cut_short_by_a_killed_writer_does_not_swallow_the_next(
    tmp_path, client, experiment
):
    outbox = Outbox(tmp_path / "trial")
    _spool_run(outbox, experiment)
    with outbox.spool_file.open("a") as spool:
        spool.write('{"kind": "metrics", "metr')
    outbox.append("tags", tags={"after": "yes"})
    ops = outbox.operations()
    assert ops[-2]["kind"] == "corrupt" and ops[-1]["kind"] == "tags"
    assert outbox.deliver(client)
    assert _runs(client, experiment)[0].data.tags["after"] == "yes"


def _append_many(folder: str, writer: int) -> None:
    outbox = Outbox(folder)
    for i in range(100):
        outbox.append("tags", tags={f"w{writer}": str(i), "pad": "x" * 2000})


def test_concurrent_writers_never_interleave_lines(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_many, args=(str(tmp_path), w)) for w in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    lines = (tmp_path / "mlflow-outbox.jsonl").read_text().splitlines()
    ops = [json.loads(line) for line in lines]
    assert len(ops) == 200
    for w in (1, 2):
        assert [int(op["tags"][f"w{w}"]) for op in ops if f"w{w}" in op["tags"]] == list(range(100))
