"""How cryotune shows long steps: a live view on a terminal, plain lines everywhere else.

On a terminal (not a dumb one, not a notebook) counted steps get rich's progress bar with
counts, elapsed time and ETA, and the sweep's table is redrawn in place by ``rich.live``. Output
that is not a terminal (a log file, CI, a notebook, a Ray worker) gets plain lines that read
well in a file: one when a counted step ends, and one every ``PLAIN_EVERY_S`` while it runs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

PLAIN_EVERY_S = 30.0
"""Seconds between the plain lines of a step still running (none for a quicker step)."""


def console(stream: TextIO | None = None) -> Console:
    return Console(file=stream if stream is not None else sys.stdout, highlight=False)


def is_live(out: Console) -> bool:
    """Whether ``out`` can be redrawn in place: a real terminal, not a notebook or TERM=dumb."""
    return out.is_terminal and not out.is_jupyter and not out.is_dumb_terminal


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@contextlib.contextmanager
def counted(
    what: str, total: int, unit: str, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """Show ``what`` advancing to ``total`` ``unit`` on ``stream`` (default stderr); yields
    ``advance(n=1)``."""
    out = console(stream if stream is not None else sys.stderr)
    started = time.monotonic()
    if is_live(out):
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out) as bar:
            task = bar.add_task(what, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    done = 0
    said = started

    def advance(n: int = 1) -> None:
        nonlocal done, said
        done += n
        now = time.monotonic()
        if now - said >= PLAIN_EVERY_S and done < total:
            said = now
            left = (now - started) / done * (total - done)
            out.print(f"{what}: {done}/{total} {unit}, about {duration(left)} left", soft_wrap=True)

    yield advance
    out.print(
        f"{what}: {done}/{total} {unit} in {duration(time.monotonic() - started)}", soft_wrap=True
    )


class LiveTable:
    """A table redrawn in place on a terminal; ``show`` returns False elsewhere (the caller
    then prints plain lines). Stopped by ``stop`` or, whatever happened, by ``stop_all``."""

    def __init__(self, headers: Sequence[str], stream: TextIO | None = None):
        self.headers = tuple(headers)
        self.out = console(stream)
        self.live: Live | None = None

    @property
    def enabled(self) -> bool:
        return is_live(self.out)

    def show(self, rows: Sequence[Sequence[object]]) -> bool:
        if not self.enabled:
            return False
        table = Table(*self.headers, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        if self.live is None:
            self.live = Live(table, console=self.out, auto_refresh=False)
            self.live.start()
            _SHOWN.append(self)
        self.live.update(table, refresh=True)
        return True

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self in _SHOWN:
            _SHOWN.remove(self)


_SHOWN: list[LiveTable] = []


def stop_all() -> None:
    """Stop every live table still drawn (a sweep interrupted before its end): the terminal
    gets its cursor back and what follows prints below the last table."""
    for table in list(_SHOWN):
        table.stop()
