"""Read latency of ``cryotune status`` and the HTTP API, over a workspace and over MLflow alone.

The API is a real ``cryotune serve`` process per source, asked over HTTP; ``status`` is what
``cryotune status NAME`` computes (a new query over the source each time), timed in this
process without the interpreter's start. ``Prober`` samples every read in turn, either a set
number of rounds (a finished sweep) or until told to stop (while a sweep runs).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.output import RESULTS

START_TIMEOUT_S = 120.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def api_server(source_flags: list[str], log: Path) -> Iterator[str]:
    """``cryotune serve SOURCE_FLAGS`` on a free loopback port; its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "cryotune.cli", "serve", "--port", str(port), *source_flags]
    env = {**os.environ, "PYTHONPATH": str(RESULTS.parents[1])}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"cryotune serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"cryotune serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Prober:
    """Named reads, each timed in milliseconds every time it is sampled."""

    reads: dict[str, Callable[[], None]]
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def round(self) -> None:
        for name, read in self.reads.items():
            started = time.perf_counter()
            try:
                read()
            except Exception as exc:  # a failed read is reported, not timed
                self.errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
                continue
            self.samples.setdefault(name, []).append(1000 * (time.perf_counter() - started))

    def rounds(self, count: int) -> Prober:
        for _ in range(count):
            self.round()
        return self

    @contextlib.contextmanager
    def running(self, pause_s: float) -> Iterator[Prober]:
        """Sample in a background thread, a round every ``pause_s``, until the block ends."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                self.round()
                stop.wait(pause_s)

        thread = threading.Thread(target=loop, name="bench-latency", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def summary(self) -> dict:
        out = {}
        for name in self.reads:
            values = sorted(self.samples.get(name, []))
            entry: dict = {"samples": len(values)}
            if values:
                entry.update(
                    p50_ms=round(statistics.median(values), 1),
                    p99_ms=round(percentile(values, 0.99), 1),
                    max_ms=round(values[-1], 1),
                )
            if name in self.errors:
                entry["error"] = self.errors[name]
            out[name] = entry
        return out


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values (with few samples, p99 is the maximum)."""
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def http_read(client: httpx.Client, path: str) -> Callable[[], None]:
    def read() -> None:
        answer = client.get(path)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")

    return read


def status_read(sweep: str, **source: str) -> Callable[[], None]:
    """``cryotune status SWEEP`` on a new query each time, as each command builds its own."""

    def read() -> None:
        from cryotune.query.service import open_query

        open_query(**source).sweep(sweep)

    return read


def reads(
    clients: dict[str, httpx.Client], sources: dict[str, dict], sweep: str, dataset: str
) -> dict[str, Callable[[], None]]:
    """Every read of the benchmark over every source: ``SOURCE READ`` -> the read."""
    out = {}
    for source, client in clients.items():
        out[f"{source} status"] = status_read(sweep, **sources[source])
        out[f"{source} /sweeps"] = http_read(client, "/sweeps")
        out[f"{source} /sweeps/{{name}}"] = http_read(client, f"/sweeps/{sweep}")
        out[f"{source} /best/{{dataset}}"] = http_read(client, f"/best/{dataset}")
    return out
