"""Durable file operations: a file replaced whole or not at all, and a lock between processes.

Every shared file has writers in several processes (the driver, Ray workers on several nodes) and
readers that must not wait for them (``cryotune status``, the API), so each one needs the same
guarantees: a reader sees the old file or the new one, never part of one; two writers never
share a temp file; a lock dies with its holder, SIGKILL included (the kernel drops a ``flock``
when the holder's last descriptor closes, which a pid file cannot do). Locks come from the
maintained ``filelock`` package (``flock`` on Unix; a lock file on a filesystem without ``flock``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import filelock


class LockBusy(Exception):
    """Another holder kept the lock past the time allowed."""


@contextlib.contextmanager
def replacing(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """A new empty file beside ``path`` for the block to write, moved onto ``path`` when the
    block ends and removed when it raises.

    The temp file is created exclusively under a random name (mkstemp's scheme, keeping the
    umask's permissions), so threads, processes and nodes writing the same path never share one;
    it sits in the same folder so the move is one rename. ``fsync`` puts the data on disk before
    the name points at it, so a power cut cannot leave an empty file under the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        if fsync:
            _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str, fsync: bool = True) -> None:
    with replacing(path, fsync) as temp:
        temp.write_text(text)


def write_json_atomic(path: str | Path, data: object, fsync: bool = True) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n", fsync)


@contextlib.contextmanager
def file_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` for the block, excluding every other holder: another process,
    host (where the shared filesystem honours ``flock``) or thread of this process.

    ``timeout=None`` waits as long as it takes; otherwise ``LockBusy`` is raised after that many
    seconds (0: a single try).
    """
    lock = filelock.FileLock(os.fspath(path))
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except filelock.Timeout:
        raise LockBusy(f"{path} is held by another process or thread") from None
    try:
        yield
    finally:
        lock.release()


def lock_is_held(path: str | Path) -> bool:
    """Whether another holder has the lock ``path`` now, by one try to take it, released at once.

    A missing lock file was never held, and is not created: a reader leaves no file behind.
    """
    if not Path(path).exists():
        return False
    try:
        with file_lock(path, timeout=0):
            return False
    except LockBusy:
        return True
