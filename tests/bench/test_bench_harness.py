"""The benchmark harness: ``python -m bench`` runs a benchmark by name and its results become a
row of the docs/benchmarks.md table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
def data_path_result(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "data_path.json"
    done = bench("data_path", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_a_quick_benchmark_writes_its_comparison_with_a_verdict(data_path_result):
    result = json.loads(data_path_result.read_text())
    assert result["reader_tiles_per_s"] > 0 and result["cached_tiles_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["cached_tiles_per_s"] / result["reader_tiles_per_s"], rel=0.01
    )
    assert len(result["cached_epochs_tiles_per_s"]) == result["epochs"] == 2
    assert result["met"] == (result["speedup"] >= 20)
    assert result["machine"] and result["quick"] is True


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
