from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from pathlib import Path

import numpy as np
import rasterio

from cryotune.data.cache import CachedSplit, TileCache, default_cache_dir
from cryotune.data.datasets import get_dataset
from cryotune.data.layouts import list_pairs
from cryotune.data.normalize import normalize_sample
from cryotune.data.readers import read_sample
from cryotune.data.synth import write_synthetic


def _folders(cache_dir: Path) -> list[str]:
    """Cache folders and leftovers, without the builds' lock files."""
    return sorted(p.name for p in cache_dir.iterdir() if not p.name.startswith(".lock-"))


def test_cached_samples_equal_normalised_reads_for_variable_size_scenes(synth_root, tmp_path):
    spec = get_dataset("sicd")
    split = TileCache(tmp_path).open(spec, synth_root("sicd"), "train")
    pairs = list_pairs(spec, synth_root("sicd"), "train")
    assert split.files == [p[0].relative_to(synth_root("sicd")).as_posix() for p in pairs]
    assert len({split.shape(i) for i in range(len(split))}) > 1
    for i, (image, mask) in enumerate(pairs):
        expected = normalize_sample(spec, read_sample(spec, image, mask))
        got = split.sample(i)
        assert np.allclose(got["sar"], expected["sar"], atol=1e-6)
        assert np.array_equal(got["mask"], expected["mask"]) and got["mask"].dtype == np.int64
        assert got["sar"].dtype == np.float32


def test_window_and_modality_selection_read_part_of_a_tile(synth_root, tmp_path):
    spec = get_dataset("caffe")
    split = TileCache(tmp_path).open(spec, synth_root("caffe"), "train")
    full = split.sample(1)
    part = split.sample(1, ("optical",), window=(3, 5, 10, 12))
    assert set(part) == {"optical", "mask"}
    assert np.array_equal(part["optical"], full["optical"][:, 3:13, 5:17])
    assert np.array_equal(part["mask"], full["mask"][3:13, 5:17])
    assert (split.path / "channels.f32").stat().st_size == 4 * sum(
        h * w for h, w in split.shapes
    ), "the grey band is stored once for sar and the optical fallback"


def test_unchanged_split_is_not_rebuilt(synth_root, tmp_path):
    spec = get_dataset("glid")
    cache = TileCache(tmp_path)
    first = cache.open(spec, synth_root("glid"), "train")
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    second = cache.open(spec, synth_root("glid"), "train")
    assert second.path == first.path
    assert (second.path / "meta.json").stat().st_mtime_ns == stamp
    assert second.fingerprint == first.fingerprint
    assert _folders(tmp_path) == [first.path.name]


def test_changed_file_triggers_a_rebuild(synth_copy, tmp_path):
    spec = get_dataset("gld")
    root = synth_copy("gld")
    cache = TileCache(tmp_path / "cache")
    before = cache.open(spec, root, "val")
    image = root / "val" / "image" / "gld_val_0000.tif"
    with rasterio.open(image, "r+") as dst:
        data = dst.read()
        data[0] = 4000
        dst.write(data)
    after = cache.open(spec, root, "val")
    assert after.path != before.path and after.fingerprint != before.fingerprint
    expected = (4000 - spec.modality("optical").mean[0]) / spec.modality("optical").std[0]
    assert np.allclose(after.sample(0)["optical"][0], expected, atol=1e-5)
    assert not np.allclose(before.sample(0)["optical"][0], expected)


def test_a_second_builder_drops_its_copy_and_uses_the_first(synth_root, tmp_path):
    spec = get_dataset("shelf")
    cache = TileCache(tmp_path)
    winner = cache.open(spec, synth_root("shelf"), "test")
    stamp = (winner.path / "meta.json").stat().st_mtime_ns
    assert cache.build(spec, synth_root("shelf"), "test") == winner.path
    assert (winner.path / "meta.json").stat().st_mtime_ns == stamp
    assert _folders(tmp_path) == [winner.path.name]


def _open_in_child(cache_dir: str, root: str, barrier, results) -> None:
    barrier.wait()
    split = TileCache(Path(cache_dir)).open(get_dataset("gld"), Path(root), "train")
    results.put(
        (str(split.path), float(split.sample(len(split) - 1)["optical"].sum()), split.built_here)
    )


def test_two_processes_opening_at_once_decode_the_split_once(tmp_path):
    root = write_synthetic("gld", tmp_path / "gld", tiles=24, size=48, seed=2)
    cache_dir = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_open_in_child, args=(str(cache_dir), str(root), barrier, results))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sorted(built for *_, built in outcomes) == [False, True]
    assert outcomes[0][:2] == outcomes[1][:2]
    assert _folders(cache_dir) == [Path(outcomes[0][0]).name]
    split = TileCache(cache_dir).open(get_dataset("gld"), root, "train")
    assert str(split.path) == outcomes[0][0] and len(split) == 24


def test_damaged_cache_is_rebuilt(synth_root, tmp_path):
    spec = get_dataset("gsdd")
    cache = TileCache(tmp_path)
    split = cache.open(spec, synth_root("gsdd"), "val")
    with open(split.path / "channels.f32", "r+b") as f:
        f.truncate(100)
    again = cache.open(spec, synth_root("gsdd"), "val")
    assert again.path == split.path
    assert np.array_equal(again.sample(1)["mask"], split.sample(1)["mask"])


def test_cached_split_pickles_without_its_arrays(synth_root, tmp_path):
    split = TileCache(tmp_path).open(get_dataset("glb"), synth_root("glb"), "train")
    split.sample(0)
    blob = pickle.dumps(split)
    assert len(blob) < 20_000
    clone: CachedSplit = pickle.loads(blob)
    assert np.array_equal(clone.sample(3)["sar"], split.sample(3)["sar"])


def test_cache_folder_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cryotune" / "tiles"
    assert TileCache().cache_dir == tmp_path / "xdg" / "cryotune" / "tiles"
    monkeypatch.setenv("CRYOTUNE_CACHE", str(tmp_path / "env"))
    assert TileCache().cache_dir == tmp_path / "env"
    assert TileCache(tmp_path / "given").cache_dir == tmp_path / "given"
    assert os.environ["CRYOTUNE_CACHE"] == str(tmp_path / "env")


def test_temp_folders_of_killed_builds_are_removed_after_a_day(synth_root, tmp_path):
    old, fresh = tmp_path / ".tmp-glid-train-old", tmp_path / ".tmp-glid-train-running"
    old.mkdir()
    fresh.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    TileCache(tmp_path).open(get_dataset("glid"), synth_root("glid"), "test")
    assert not old.exists() and fresh.exists()
