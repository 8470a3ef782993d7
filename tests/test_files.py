"""cryotune.files against real threads and processes: a replaced file is never seen half written
and leaves no temp behind, a lock excludes other processes and threads, and dies with a
SIGKILLed holder."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cryotune.files import (
    LockBusy,
    file_lock,
    lock_is_held,
    replacing,
    write_json_atomic,
    write_text_atomic,
)

PAD = "x" * 200_000  # large enough that a plain write would be seen half done


def _document(writer: int, round_: int) -> dict:
    return {"writer": writer, "round": round_, "pad": PAD}


def _write_rounds(path: str, writer: int, rounds: int) -> None:
    for round_ in range(rounds):
        write_json_atomic(path, _document(writer, round_), fsync=False)


def _read_until(path: Path, stop: threading.Event) -> list[dict]:
    """Every whole document read while the writers run (a half-written one fails to parse)."""
    seen = []
    while not stop.is_set():
        with path.open() as f:
            seen.append(json.load(f))
    return seen


def _check_whole(seen: list[dict], folder: Path, name: str) -> None:
    assert seen and all(doc["pad"] == PAD for doc in seen)
    assert [p.name for p in folder.iterdir()] == [name]


def test_concurrent_threads_replace_a_file_whole_and_leave_no_temp(tmp_path):
    path = tmp_path / "shared.json"
    write_json_atomic(path, _document(-1, 0))
    stop = threading.Event()
    with ThreadPoolExecutor(5) as pool:
        reader = pool.submit(_read_until, path, stop)
        writers = [pool.submit(_write_rounds, path, w, 30) for w in range(4)]
        for writer in writers:
            writer.result()
        stop.set()
        seen = reader.result()
    _check_whole(seen, tmp_path, path.name)
    assert json.loads(path.read_text())["round"] == 29


def test_concurrent_processes_replace_a_file_whole_and_leave_no_temp(tmp_path):
    path = tmp_path / "shared.json"
    write_json_atomic(path, _document(-1, 0))
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_rounds, args=(str(path), w, 30)) for w in range(3)]
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        reader = pool.submit(_read_until, path, stop)
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(120)
        stop.set()
        seen = reader.result()
    assert [writer.exitcode for writer in writers] == [0, 0, 0]
    _check_whole(seen, tmp_path, path.name)
    assert {doc["writer"] for doc in seen} > {-1}


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    path = tmp_path / "record.json"
    write_text_atomic(path, "old\n")
    with pytest.raises(RuntimeError), replacing(path) as temp:
        temp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_replaced_file_keeps_the_permissions_of_a_plainly_written_one(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


def _increment(path: str, lock: str, times: int) -> None:
    counter = Path(path)
    for _ in range(times):
        with file_lock(lock):
            value = int(counter.read_text())
            counter.write_text(str(value + 1))


def test_file_lock_excludes_other_processes_and_threads(tmp_path):
    counter, lock = tmp_path / "counter", tmp_path / "counter.lock"
    counter.write_text("0")
    process = multiprocessing.get_context("spawn").Process(
        target=_increment, args=(str(counter), str(lock), 200)
    )
    process.start()
    with ThreadPoolExecutor(2) as pool:
        for thread in [pool.submit(_increment, counter, lock, 200) for _ in range(2)]:
            thread.result()
    process.join(120)
    assert process.exitcode == 0
    assert counter.read_text() == "600"


def _hold(path: str, ready) -> None:
    with file_lock(path):
        ready.set()
        threading.Event().wait(120)


def test_a_held_lock_is_refused_until_its_holder_is_killed(tmp_path):
    lock = tmp_path / "held.lock"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold, args=(str(lock), ready))
    holder.start()
    try:
        assert ready.wait(60)
        assert lock_is_held(lock)
        with pytest.raises(LockBusy), file_lock(lock, timeout=0.2):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(60)
    assert not lock_is_held(lock)
    with file_lock(lock, timeout=0):
        assert lock_is_held(lock)  # a hold of this very process counts too


def test_probing_a_missing_lock_creates_nothing(tmp_path):
    assert not lock_is_held(tmp_path / "never.lock")
    assert list(tmp_path.iterdir()) == []
