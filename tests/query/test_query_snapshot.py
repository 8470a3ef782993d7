"""The server's snapshot of a source: answers at most max_age old from memory, renewed in the
background within the stale window, read afresh past it; failures are never kept."""

from __future__ import annotations

import time

import pytest

from cryotune.errors import NotFoundError
from cryotune.query.snapshot import Snapshot
from cryotune.query.workspace import WorkspaceSource


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workspace(planned_sweeps, tmp_path):
    return planned_sweeps(tmp_path / "runs", "sweep-a")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def snapshot(workspace, clock):
    kept = Snapshot(WorkspaceSource(workspace), max_age_s=2, stale_s=10, clock=clock)
    yield kept
    kept.close()


def _eventually(read, expected, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while (found := read()) != expected:
        assert time.monotonic() < deadline, found
        time.sleep(0.02)


def test_within_max_age_the_kept_answer_is_given(snapshot, planned_sweeps, workspace, clock):
    assert snapshot.sweep_names() == ["sweep-a"]
    first = snapshot.sweep("sweep-a")
    planned_sweeps(workspace, "sweep-b")
    clock.now = 2.0
    assert snapshot.sweep_names() == ["sweep-a"]
    assert snapshot.sweep("sweep-a") is first
    assert snapshot.age_s() == 2.0


def test_past_max_age_the_old_answer_is_given_once_while_it_is_read_again(
    snapshot, planned_sweeps, workspace, clock
):
    assert snapshot.sweep_names() == ["sweep-a"]
    planned_sweeps(workspace, "sweep-b")
    clock.now = 5.0
    assert snapshot.sweep_names() == ["sweep-a"]
    _eventually(snapshot.sweep_names, ["sweep-a", "sweep-b"])
    assert snapshot.age_s() == 0.0


def test_past_the_stale_window_the_request_reads_the_source(
    snapshot, planned_sweeps, workspace, clock
):
    assert [s.name for s in snapshot.summaries(["sweep-a"])] == ["sweep-a"]
    assert snapshot.sweep_names() == ["sweep-a"]
    planned_sweeps(workspace, "sweep-b")
    clock.now = 12.5
    assert snapshot.sweep_names() == ["sweep-a", "sweep-b"]


def test_a_failed_read_is_not_kept(snapshot, planned_sweeps, workspace):
    for _ in range(2):
        with pytest.raises(NotFoundError):
            snapshot.sweep("sweep-b")
    planned_sweeps(workspace, "sweep-b")
    assert snapshot.sweep("sweep-b").name == "sweep-b"


def test_negative_ages_are_refused(workspace):
    with pytest.raises(ValueError, match="max_age_s"):
        Snapshot(WorkspaceSource(workspace), max_age_s=-1)
