"""The benchmark harness: ``python -m bench`` runs a benchmark by name and its results become a
row of the docs/benchmarks.md table."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What a full run writes and `make bench` tables: a quick run must not replace any of it.
TABLED_FILES = (REPO / "docs" / "benchmarks.md", REPO / "bench" / "results" / "data_path.json")


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def data_path_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, dict[Path, bytes]]:
    """`python -m bench data_path --quick --out FILE`, with the tabled files as they were."""
    kept = {path: path.read_bytes() for path in TABLED_FILES}
    out = tmp_path_factory.mktemp("bench") / "data_path.json"
    done = bench("data_path", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out, kept


@pytest.fixture(scope="module")
def data_path_result(data_path_run) -> Path:
    return data_path_run[1]


def _figures(line: str) -> list[float]:
    return [float(word) for word in line.split() if re.fullmatch(r"\d+(\.\d+)?", word)]


def test_a_quick_benchmark_prints_both_paths_side_by_side_and_writes_what_it_printed(
    data_path_run,
):
    done, out, _ = data_path_run
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["path", "tiles/s", "after", "epoch", "1"]
    reader = next(line for line in lines if line.startswith("rasterio every epoch"))
    cached = next(line for line in lines if line.startswith("tile cache (memmap)"))
    verdict = next(line for line in lines if line.startswith("speedup x"))
    result = json.loads(out.read_text())
    assert _figures(reader) == [result["reader_tiles_per_s"], result["steady_reader_tiles_per_s"]]
    assert _figures(cached) == [result["cached_tiles_per_s"], result["steady_cached_tiles_per_s"]]
    assert all(figure > 0 for figure in _figures(reader) + _figures(cached))
    assert f"x{result['speedup']} (x{result['steady_speedup']} after epoch 1)" in verdict
    assert verdict.endswith(f"met: {result['met']}") and isinstance(result["met"], bool)
    assert "for 40 tiles" in verdict
    # The run is described well enough to be repeated and compared on another machine.
    assert (result["tiles"], result["size_px"], result["epochs"], result["quick"]) == (
        40,
        64,
        2,
        True,
    )
    assert len(result["reader_epochs_tiles_per_s"]) == len(result["cached_epochs_tiles_per_s"]) == 2
    assert result["target"] == "cached / rasterio tiles per s >= 20 over all epochs"
    assert result["machine"].startswith(platform.machine())


def test_a_quick_run_leaves_the_tabled_results_and_the_table_alone(data_path_run):
    _, _, kept = data_path_run
    for path, content in kept.items():
        assert path.read_bytes() == content, f"a quick run changed {path}"


def test_the_table_is_rewritten_between_its_markers_only(data_path_result, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.table import BEGIN, END, update_table

    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n")
    update_table(doc, data_path_result.parent)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "stale" not in text
    row = next(line for line in text.splitlines() if "data_path" in line)
    speedup = json.loads(data_path_result.read_text())["speedup"]
    assert f"x{speedup:g}" in row and ("**met**" in row or "**missed**" in row)
    assert "| `overhead` |" in text and "not run" in text

    doc.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        update_table(doc, data_path_result.parent)


def test_an_unknown_benchmark_is_refused_with_the_valid_names():
    done = bench("nosuch")
    assert done.returncode == 2
    assert "unknown benchmark 'nosuch'" in done.stderr
    names = ("time_to_quality", "overhead", "data_path", "concurrent_pairs", "scale", "gpu_trainer")
    for name in names:
        assert name in done.stderr
