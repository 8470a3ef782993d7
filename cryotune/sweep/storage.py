"""Where a sweep keeps its shared state on a cluster, each checked before any compute starts.

- The Tune experiment folder: ``--storage`` (``$CRYOTUNE_STORAGE``) a path every node sees (NFS)
  or a pyarrow filesystem URI (``s3://``, ``gs://``, ...); the experiment is ``STORAGE/NAME``.
  Without it the experiment lives in the workspace (``NAME/tune``).
- The Optuna studies: ``--optuna-storage`` (``$CRYOTUNE_OPTUNA_STORAGE``) or the spec's
  ``optuna_storage``, an SQLAlchemy URL such as ``postgresql://USER:PASSWORD@HOST/DB``; without
  it a sqlite file in the sweep's folder.

A resumed sweep keeps the places it started with. URLs are shown with their password masked.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryotune.errors import CryotuneError, UsageError
from cryotune.masking import is_uri, masked_url

if TYPE_CHECKING:
    import optuna

STORAGE_ENV = "CRYOTUNE_STORAGE"
OPTUNA_STORAGE_ENV = "CRYOTUNE_OPTUNA_STORAGE"
CONNECT_TIMEOUT_S = 5


_STUDY_STORAGES: dict[str, optuna.storages.RDBStorage] = {}
_STUDY_STORAGES_LOCK = threading.Lock()


def study_storage(url: str) -> optuna.storages.RDBStorage:
    """This process's one Optuna storage of ``url``, shared by every pair's study, the
    scheduler and the progress display.

    A storage per pair opened a connection pool per pair: a sweep of 100 pairs on PostgreSQL
    needed over 100 connections (its default ``max_connections``) and the driver kept 100
    engines. Optuna's RDBStorage opens a session per call, so threads may share it.
    """
    import optuna

    with _STUDY_STORAGES_LOCK:
        if url not in _STUDY_STORAGES:
            _STUDY_STORAGES[url] = optuna.storages.RDBStorage(url)
        return _STUDY_STORAGES[url]


def _given(flag_value: str | None, env: str) -> tuple[str | None, str | None]:
    """The value, and the environment variable to name in errors when it came from there."""
    if flag_value:
        return flag_value.strip(), None
    value = os.environ.get(env, "").strip()
    return (value or None), f"${env}"


@dataclass(frozen=True)
class ExperimentStorage:
    """The Tune experiment of a sweep: ``RunConfig(storage_path=..., name=...)`` and its path."""

    storage_path: str
    name: str

    @property
    def path(self) -> str:
        if is_uri(self.storage_path):
            return f"{self.storage_path.rstrip('/')}/{self.name}"
        return str(Path(self.storage_path) / self.name)


def normalize_storage(value: str, source: str) -> str:
    """An absolute path (workers run in other folders than the driver) or the URI as given."""
    if is_uri(value):
        if value.startswith("file://"):
            return str(Path(value[len("file://") :]).expanduser().resolve())
        return value.rstrip("/")
    if not value:
        raise UsageError(
            f"{source}: give a folder every node sees, or a URI such as s3://BUCKET/DIR"
        )
    return str(Path(value).expanduser().resolve())


def resolve_storage(flag: str | None, started_with: str | None = None) -> str | None:
    """``--storage``, else ``$CRYOTUNE_STORAGE``, else what the sweep started with, else None
    (the workspace)."""
    value, env_source = _given(flag, STORAGE_ENV)
    if value is None:
        return started_with
    return normalize_storage(value, env_source or "--storage")


def check_storage(storage: str, source: str = "--storage") -> None:
    """CryotuneError unless the experiment folder can be written: a path is created if needed
    and must take a file; a URI must open with pyarrow and its folder must be listable."""
    if is_uri(storage):
        _check_uri(storage, source)
        return
    folder = Path(storage)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".cryotune-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CryotuneError(
            f"{source} {storage}: cannot write the experiment folder there "
            f"({exc.strerror or exc}); give a writable folder every node sees"
        ) from None


def _check_uri(uri: str, source: str) -> None:
    import pyarrow.fs

    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise CryotuneError(
            f"{source} {masked_url(uri)}: pyarrow cannot open it ({exc}); give a folder every "
            "node sees or a reachable URI such as s3://BUCKET/DIR"
        ) from None
    if info.type == pyarrow.fs.FileType.File:
        raise CryotuneError(f"{source} {masked_url(uri)}: is a file, not a folder")


def resolve_optuna_storage(flag: str | None, spec_value: str | None) -> str | None:
    """``--optuna-storage``, else ``$CRYOTUNE_OPTUNA_STORAGE``, else the spec's (None: the
    workspace's sqlite file); a URL that does not parse is a UsageError naming its source."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value, env_source = _given(flag, OPTUNA_STORAGE_ENV)
    if value is None:
        return spec_value
    source = env_source or "--optuna-storage"
    try:
        make_url(value)
    except ArgumentError:
        raise UsageError(
            f"{source} {masked_url(value)}: not a database URL; give e.g. "
            "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:////abs/path/optuna.db"
        ) from None
    return value


def check_optuna_storage(url: str, source: str = "--optuna-storage") -> None:
    """CryotuneError unless the study database accepts a connection within a few seconds."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = masked_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return
        engine = sqlalchemy.create_engine(
            parsed,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            poolclass=sqlalchemy.pool.NullPool,
        )
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UsageError(f"{source} {shown}: not a usable database URL ({exc})") from None
    except ModuleNotFoundError as exc:
        raise CryotuneError(
            f"{source} {shown}: the database driver {exc.name} is not installed"
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        raise CryotuneError(
            f"{source} {shown}: the Optuna study database is not reachable ({reason}); "
            "start it, or fix the host, port, user, password or database name"
        ) from None
    finally:
        engine.dispose()


def experiment_exists(path: str) -> bool:
    """Whether something is already stored at an experiment path (a folder or a URI)."""
    if not is_uri(path):
        return Path(path).exists()
    import pyarrow.fs

    filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
    return filesystem.get_file_info(inner).type != pyarrow.fs.FileType.NotFound
