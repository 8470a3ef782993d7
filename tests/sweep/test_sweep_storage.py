"""A sweep on cluster stores: Optuna studies in PostgreSQL, MLflow behind a PostgreSQL-backed
``cryotune mlflow`` server, the Tune experiment on another folder (``--storage``), resumed from
there after the driver is killed; unreachable stores fail before anything is created.

PostgreSQL is a real server on loopback: ``$CRYOTUNE_TEST_POSTGRES`` (set by ``make test``), else
one started here with ``scripts/postgres.sh`` for the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from sqlalchemy.engine import make_url

from cryotune.errors import CryotuneError, UsageError
from cryotune.sweep.storage import (
    OPTUNA_STORAGE_ENV,
    STORAGE_ENV,
    check_optuna_storage,
    masked_url,
    resolve_optuna_storage,
    resolve_storage,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "postgres.sh"
TRIALS = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL base ``postgresql://USER:PASSWORD@127.0.0.1:PORT`` with databases optuna and mlflow."""
    given = os.environ.get("CRYOTUNE_TEST_POSTGRES")
    if given:
        yield given.rstrip("/")
        return
    folder = tempfile.mkdtemp(prefix="cryotune-postgres-")
    os.rmdir(folder)
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=600
    )
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], timeout=120)


def _finished_trials(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """Trials that ran and ended (not those a killed driver asked for and never started)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except KeyError:
        return []
    orphaned = set(study.user_attrs.get("orphaned_trials", []))
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.number not in orphaned
    ]


def test_sweep_on_postgres_and_shared_storage_resumes_from_there(
    postgres, cryotune, cryotune_background, data_root, tmp_path
):
    from mlflow.tracking import MlflowClient
    from ray.tune import ExperimentAnalysis, Tuner

    password = make_url(postgres).password
    optuna_url, mlflow_url = f"{postgres}/optuna", f"{postgres}/mlflow"
    name = f"pg-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    server_log = tmp_path / "mlflow.log"
    artifacts = tmp_path / "mlartifacts"
    serve = ["mlflow", "--tracking-uri", mlflow_url, "--port", str(port)]
    cryotune_background(*serve, "--artifacts-dir", str(artifacts), log=server_log)
    server = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not _answers(server):
        assert time.monotonic() < deadline, server_log.read_text()[-3000:]
        time.sleep(0.5)

    workspace, storage = tmp_path / "runs", tmp_path / "shared" / "experiments"
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--trials", str(TRIALS)]
    args += ["--models", "unet", "--name", name, "--data-root", str(data_root)]
    args += ["--workspace", str(workspace)]
    args += ["--storage", str(storage), "--optuna-storage", optuna_url]
    args += ["--tracking-uri", server]
    study_names = [f"{name}/glid/unet"]

    first_log = tmp_path / "first.log"
    driver = cryotune_background(*args, log=first_log)
    deadline = time.monotonic() + 240
    while driver.poll() is None and time.monotonic() < deadline:
        if list((storage / name).glob("experiment_state-*.json")) and any(
            _finished_trials(optuna_url, s) for s in study_names
        ):
            break
        time.sleep(0.3)
    assert driver.poll() is None, first_log.read_text()[-3000:]
    finished_at = time.time()  # wait for Tune's next snapshot, which holds the finished trial
    while (
        driver.poll() is None
        and time.monotonic() < deadline
        and max(p.stat().st_mtime for p in (storage / name).glob("experiment_state-*.json"))
        <= finished_at
    ):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished_before = {
        t.user_attrs["tune_trial_id"] for s in study_names for t in _finished_trials(optuna_url, s)
    }

    resumed = cryotune(*args, "--resume")
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-4000:]
    assert password not in output + first_log.read_text() + server_log.read_text()
    assert "***" in server_log.read_text()

    # The experiment lives on the shared folder and the resumed driver restored it there.
    assert Tuner.can_restore(str(storage / name))
    assert not (workspace / name / "tune").exists()
    experiment_trials = {t.trial_id for t in ExperimentAnalysis(str(storage / name)).trials}
    assert finished_before <= experiment_trials

    # Every study trial is in PostgreSQL, each pair's budget spent once, no trial run twice.
    for study_name in study_names:
        finished = _finished_trials(optuna_url, study_name)
        assert len(finished) == TRIALS, study_name
        assert len({t.user_attrs["tune_trial_id"] for t in finished}) == TRIALS
    records = sorted((workspace / name / "records").glob("*.json"))
    assert [r.name for r in records] == ["glid__unet.json"]
    assert all(password not in r.read_text() for r in records)

    # The runs are in the server's PostgreSQL store, read back without the server.
    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    levels = sorted(r.data.tags.get("cryotune.level") for r in runs)
    assert levels == ["pair", "sweep"] + ["trial"] * TRIALS
    ended = {(r.data.tags.get("cryotune.level"), r.info.status) for r in runs}
    assert {("sweep", "FINISHED"), ("pair", "FINISHED")} <= ended
    assert all(status in ("FINISHED", "KILLED") for _, status in ended), ended  # KILLED: pruned
    assert any(artifacts.rglob("record.json"))
    shared_plans = list(artifacts.rglob("sweep.json"))
    assert shared_plans and all(password not in plan.read_text() for plan in shared_plans)

    # Resuming it elsewhere is refused: the experiment and studies stay where they are.
    moved = cryotune(*args, "--resume", "--storage", str(tmp_path / "elsewhere"))
    assert moved.returncode == 2
    assert f"keeps its Tune experiment in {storage}, not {tmp_path / 'elsewhere'}" in moved.stderr


def test_more_pairs_than_postgres_takes_connections_each_ask_their_study(postgres):
    from cryotune.sweep.space import PairSpace
    from cryotune.sweep.spec import SearchSpace
    from cryotune.sweep.study import SamplerRecipe, StudySearch

    pairs = 110  # PostgreSQL's default max_connections is 100
    prefix, space = uuid.uuid4().hex[:8], PairSpace.resolve(SearchSpace(), 12, True).searched
    searches = [
        StudySearch(space, f"{prefix}/{i}", f"{postgres}/optuna", SamplerRecipe("tpe", i), "lr")
        for i in range(pairs)
    ]
    asked = [search.suggest(f"trial-{i}") for i, search in enumerate(searches)]
    assert len(asked) == pairs and all(1e-6 <= a["lr"] <= 1e-3 for a in asked)


def test_passwords_are_masked_and_other_locations_kept():
    assert masked_url("postgresql://u:pw@db:5432/optuna") == "postgresql://u:***@db:5432/optuna"
    assert masked_url("postgresql://u@db/optuna") == "postgresql://u@db/optuna"
    assert masked_url("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"
    assert masked_url("/shared/experiments") == "/shared/experiments"


def test_flags_win_over_the_environment_and_errors_name_their_source(monkeypatch, tmp_path):
    monkeypatch.setenv(STORAGE_ENV, str(tmp_path / "from-env"))
    assert resolve_storage(None) == str(tmp_path / "from-env")
    assert resolve_storage(str(tmp_path / "flag")) == str(tmp_path / "flag")
    monkeypatch.delenv(STORAGE_ENV)
    assert resolve_storage(None, started_with="s3://bucket/x") == "s3://bucket/x"
    assert resolve_storage(None) is None

    monkeypatch.setenv(OPTUNA_STORAGE_ENV, "not a url")
    with pytest.raises(UsageError, match=r"\$CRYOTUNE_OPTUNA_STORAGE not a url: not a database"):
        resolve_optuna_storage(None, None)
    assert resolve_optuna_storage("postgresql://db/o", "postgresql://spec/o") == "postgresql://db/o"
    monkeypatch.delenv(OPTUNA_STORAGE_ENV)
    assert resolve_optuna_storage(None, "postgresql://spec/o") == "postgresql://spec/o"


def test_unreachable_optuna_storage_fails_fast_naming_the_flag(cryotune, data_root, tmp_path):
    workspace = tmp_path / "runs"
    url = f"postgresql://cryotune:s3cret-pw@127.0.0.1:{_free_port()}/optuna"
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--trials", "1"]
    args += ["--data-root", str(data_root), "--workspace", str(workspace)]
    done = cryotune(*args, "--optuna-storage", url, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--optuna-storage postgresql://cryotune:***@127.0.0.1" in done.stderr
    assert "not reachable" in done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert not workspace.exists() or not any(workspace.glob("*/sweep.json"))


def test_a_database_that_never_answers_is_given_up_on_with_a_timeout():
    """A host that takes the connection but never speaks PostgreSQL (a hung server, a
    black-holing firewall) is refused once the connect timeout passes, not waited on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nobody reads or answers
        url = f"postgresql://cryotune:s3cret-pw@127.0.0.1:{silent.getsockname()[1]}/optuna"
        with pytest.raises(CryotuneError, match=r"not reachable \(.*timeout expired\)") as error:
            check_optuna_storage(url)
    assert "--optuna-storage postgresql://cryotune:***@" in str(error.value)
    assert "s3cret-pw" not in str(error.value)


def test_unwritable_storage_fails_fast_naming_the_flag(cryotune, data_root, tmp_path):
    workspace = tmp_path / "runs"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--trials", "1"]
    args += ["--data-root", str(data_root), "--workspace", str(workspace)]
    done = cryotune(*args, "--storage", str(blocker / "experiments"), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"--storage {blocker / 'experiments'}: cannot write" in done.stderr
    assert not workspace.exists() or not any(workspace.glob("*/sweep.json"))

    done = cryotune(*args, "--storage", "nosuchscheme://bucket/dir", timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--storage nosuchscheme://bucket/dir: pyarrow cannot open it" in done.stderr
    shutil.rmtree(workspace, ignore_errors=True)
