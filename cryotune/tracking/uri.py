"""Where a sweep's MLflow store is, and whether it can be reached before any compute starts.

``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else (when resuming) the URI the sweep started
with, else a sqlite store in the workspace root (``WORKSPACE/mlflow.db``) whose artifacts live in
``WORKSPACE/mlartifacts``, so one store shows every sweep of a workspace.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from cryotune.errors import CryotuneError, UsageError

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
HEALTH_TIMEOUT_S = 5.0
SQLITE_PREFIX = "sqlite:///"

CLIENT_ENVIRONMENT = {
    # MLflow's HTTP client retries with backoff for minutes by default; the outbox retries
    # instead, so a failed request must fail at once and leave training alone.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # Ending a run on a server prints "View run ... at" on stdout (and asks for the run again).
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
"""Environment of every process that logs (the driver and, through Ray, its workers)."""


def client_environment() -> dict[str, str]:
    """CLIENT_ENVIRONMENT with the values this process already has (a user's own choice)."""
    return {key: os.environ.get(key, value) for key, value in CLIENT_ENVIRONMENT.items()}


def default_tracking_uri(workspace_root: Path) -> str:
    return f"{SQLITE_PREFIX}{Path(workspace_root).resolve() / STORE_FILE}"


def normalize(uri: str, flag: str = "--tracking-uri") -> str:
    """An absolute form of ``uri``: Ray workers run in other folders than the driver."""
    uri = uri.strip()
    scheme = urlparse(uri).scheme
    if scheme == "file" or "://" not in uri:
        raise UsageError(
            f"{flag} {uri}: MLflow 3 refuses file stores; give sqlite:///PATH/mlflow.db or "
            "http://HOST:PORT of a tracking server"
        )
    if scheme == "sqlite":
        if not uri.startswith(SQLITE_PREFIX) or uri == SQLITE_PREFIX:
            raise UsageError(
                f"{flag} {uri}: give a sqlite file, e.g. sqlite:////abs/path/mlflow.db"
            )
        return f"{SQLITE_PREFIX}{Path(uri[len(SQLITE_PREFIX) :]).expanduser().resolve()}"
    return uri.rstrip("/")


def resolve_tracking_uri(
    flag: str | None, workspace_root: Path, started_with: str | None = None
) -> str:
    """The flag, else the environment, else the URI the sweep started with, else the default."""
    if flag:
        return normalize(flag)
    if os.environ.get(TRACKING_URI_ENV):
        return normalize(os.environ[TRACKING_URI_ENV], f"${TRACKING_URI_ENV}")
    return started_with or default_tracking_uri(workspace_root)


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def artifact_location(uri: str, sweep: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a sqlite store; a server decides."""
    path = sqlite_path(uri)
    return None if path is None else (path.parent / ARTIFACTS_DIR / sweep).as_uri()


def unreachable(uri: str, reason: str) -> CryotuneError:
    return CryotuneError(
        f"MLflow tracking store {uri} is not reachable ({reason}); start the server "
        "(`cryotune mlflow` serves a workspace's store) or give another --tracking-uri / "
        f"${TRACKING_URI_ENV}"
    )


def check_reachable(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """CryotuneError unless the store can take runs: a server answers ``/health``, a sqlite
    file's folder is writable. Other stores (postgresql://...) are checked when opened."""
    path = sqlite_path(uri)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unreachable(uri, f"cannot create {path.parent}: {exc.strerror}") from None
        if not os.access(path.parent, os.W_OK):
            raise unreachable(uri, f"{path.parent} is not writable")
        return
    if not is_http(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout_s) as response:
            if response.status != 200:
                raise unreachable(uri, f"GET /health answered {response.status}")
    except urllib.error.HTTPError as exc:
        raise unreachable(uri, f"GET /health answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise unreachable(uri, f"GET /health: {reason}") from None
