"""``cryotune dashboard``: optuna-dashboard over a sweep's studies, read-only, on loopback.

Each pair's study (``SWEEP/DATASET/MODEL``) holds its trials with their states, parameters and
per-epoch validation mIoU (intermediate values), so optuna-dashboard shows the search as it runs:
history, intermediate values of pruned trials, parameter importances. The storage is the sweep's
own (``NAME/optuna.db`` in the workspace, or the database its plan names), or the one given with
``--optuna-storage``.

Read-only: optuna-dashboard has no such option, and its UI can create, rename and delete
studies, tell trials and write notes (all with POST, PUT or DELETE). The WSGI app is served
behind ``read_only``, which answers every method but GET and HEAD with 405, so the studies a
sweep relies on cannot be changed from the browser; the storage is opened without creating
tables. The server is the standard library's threaded WSGI server, bound to 127.0.0.1 unless
``--host`` says otherwise, as ``cryotune mlflow`` and ``cryotune serve`` are.
"""

from __future__ import annotations

import json
import signal
import socketserver
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryotune.errors import UsageError
from cryotune.extras import require_extra
from cryotune.locations import workspace_root
from cryotune.masking import masked_url
from cryotune.sweep.workspace import list_sweeps

READ_METHODS = ("GET", "HEAD")
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class StudyStorage:
    """The study database to show and, for people, what it holds."""

    url: str
    what: str


def study_storage(
    workspace: str | Path | None, name: str | None, optuna_storage: str | None
) -> StudyStorage:
    """``--optuna-storage``, else the study storage of sweep ``name`` (or of the workspace's
    only sweep)."""
    if optuna_storage is not None:
        return StudyStorage(_existing(optuna_storage, "--optuna-storage"), "its studies")
    sweeps = {w.name: w for w in list_sweeps(workspace)}
    root = workspace_root(workspace)
    if name is None:
        if len(sweeps) != 1:
            listing = ", ".join(sweeps) if sweeps else "none"
            raise UsageError(
                f"give the sweep whose studies to show (sweeps in {root}: {listing}), or "
                "--optuna-storage URL"
            )
        name = next(iter(sweeps))
    if name not in sweeps:
        listing = ", ".join(sweeps) if sweeps else "none"
        raise UsageError(
            f"no sweep '{name}' in {root}; sweeps there: {listing} (see --workspace, or give "
            "--optuna-storage URL)"
        )
    found = sweeps[name]
    url = found.storage_url(found.read_plan().optuna_storage)
    return StudyStorage(_existing(url, f"sweep {name}'s study storage"), f"sweep {name}")


def _existing(url: str, source: str) -> str:
    """``url``, checked: a sqlite file must exist (opening a missing one would create it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from cryotune.sweep.storage import check_optuna_storage

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"{source} {masked_url(url)}: not a database URL; give e.g. "
            "sqlite:////abs/path/optuna.db or postgresql://USER:PASSWORD@HOST/DB"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            raise UsageError(f"{source} {url}: no such study database (file {path} not found)")
    else:
        check_optuna_storage(url, source)
    return url


def read_only(app: Callable) -> Callable:
    """``app`` answering only GET and HEAD; any other method gets 405 and a JSON reason (the
    dashboard shows it)."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in READ_METHODS:
            return app(environ, start_response)
        body = json.dumps(
            {"reason": "cryotune dashboard is read-only: the sweep's studies cannot be changed"}
        ).encode()
        start_response(
            "405 Method Not Allowed",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Allow", ", ".join(READ_METHODS)),
            ],
        )
        return [body]

    return guarded


def dashboard_app(url: str) -> Callable:
    """optuna-dashboard's WSGI app over the study storage at ``url``, read-only."""
    require_extra("optuna_dashboard", "dashboard", "optuna-dashboard", "cryotune dashboard")
    import optuna
    import optuna_dashboard

    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    return read_only(optuna_dashboard.wsgi(storage))


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page fetches several things at once."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """No line per request on the console."""


class _Stopped(Exception):
    """SIGTERM reached ``cryotune dashboard``."""


def serve(app: Callable, host: str, port: int, on_ready: Callable[[str], None]) -> int:
    """Serve ``app`` until Ctrl-C or SIGTERM; returns 0."""
    try:
        server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise UsageError(
            f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})"
        ) from None

    def stop_on_term(signum, frame):
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        on_ready(f"http://{host}:{port}")
        server.serve_forever()
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        server.server_close()
        signal.signal(signal.SIGTERM, previous)
    return 0
