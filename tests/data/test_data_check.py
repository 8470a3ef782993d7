from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cryotune.cli import main
from cryotune.data.cache import TileCache
from cryotune.data.check import check_dataset
from cryotune.data.datasets import get_dataset
from cryotune.errors import DataError


def _rewrite(path: Path, data: np.ndarray) -> None:
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(count=data.shape[0], dtype=data.dtype.name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _errors(report) -> dict[str, str]:
    return {i.path: i.problem for i in report.issues if i.severity == "error"}


def test_missing_split_folder_is_named(synth_copy):
    root = synth_copy("gld")
    shutil.rmtree(root / "val" / "mask")
    report = check_dataset("gld", root)
    assert not report.ok
    problem = _errors(report)[str(root / "val" / "mask")]
    assert "missing folder" in problem and "'val'" in problem


def test_unpaired_image_names_the_image_and_the_expected_mask(synth_copy):
    root = synth_copy("gld")
    (root / "train" / "mask" / "gld_train_0001.tif").unlink()
    errors = _errors(check_dataset("gld", root))
    image = str(root / "train" / "image" / "gld_train_0001.tif")
    assert "unpaired image" in errors[image]
    assert str(root / "train" / "mask" / "gld_train_0001.tif") in errors[image]


def test_sorted_pairing_reports_a_count_mismatch(synth_copy):
    root = synth_copy("glid")
    next((root / "test" / "masks").iterdir()).unlink()
    errors = _errors(check_dataset("glid", root))
    assert "1 masks for 2 images" in errors[str(root / "test" / "masks")]


def test_wrong_band_count_says_what_was_expected(synth_copy):
    root = synth_copy("gld")
    image = root / "train" / "image" / "gld_train_0000.tif"
    _rewrite(image, _read(image)[:9])
    problem = _errors(check_dataset("gld", root))[str(image)]
    assert "has 9 bands; expected 10" in problem and "sar: VV" in problem


def test_mask_value_outside_the_classes_is_reported(synth_copy):
    root = synth_copy("gld")
    mask = root / "val" / "mask" / "gld_val_0001.tif"
    data = _read(mask)
    data[0, 0, 0] = 7
    _rewrite(mask, data)
    problem = _errors(check_dataset("gld", root))[str(mask)]
    assert "mask values 7 are not classes 0..1" in problem


def test_corrupt_file_is_reported_as_unreadable(synth_copy):
    root = synth_copy("caffe")
    image = root / "images" / "train" / "caffe_train_0002.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    problem = _errors(check_dataset("caffe", root))[str(image)]
    assert "unreadable or corrupt" in problem


def test_empty_split_is_reported(synth_copy):
    root = synth_copy("sicd")
    for folder in ("images", "masks"):
        for path in (root / "test" / folder).iterdir():
            path.unlink()
    problem = _errors(check_dataset("sicd", root))[str(root / "test" / "images")]
    assert "empty split 'test'" in problem


def test_nan_where_none_is_expected_and_size_mismatch(synth_copy):
    root = synth_copy("gsdd")
    image = root / "train" / "image" / "gsdd_train_0000.tif"
    data = _read(image)
    data[2, 3, 4] = np.nan
    _rewrite(image, data)
    mask = root / "train" / "mask" / "gsdd_train_0003.tif"
    with rasterio.open(mask) as src:
        profile, small = src.profile, src.read()[:, :20, :]
    profile.update(height=20)
    with rasterio.open(mask, "w", **profile) as dst:
        dst.write(small)
    errors = _errors(check_dataset("gsdd", root))
    assert "1 NaN values" in errors[str(image)]
    assert "mask is 32x20 px but its image gsdd_train_0003.tif is 32x32" in errors[str(mask)]


def test_report_lists_every_offending_file(synth_copy):
    root = synth_copy("gld")
    bad = []
    for split in ("train", "val"):
        image = root / split / "image" / f"gld_{split}_0000.tif"
        image.write_bytes(b"not a tiff")
        bad.append(str(image))
    report = check_dataset("gld", root)
    text = report.format()
    assert "2 problem(s) in 2 file(s)" in text
    assert all(path in text for path in bad)
    as_dict = report.to_dict()
    assert as_dict["ok"] is False
    assert {i["path"] for i in as_dict["issues"]} == set(bad)
    json.dumps(as_dict)


def test_value_range_excursions_are_warnings_not_errors(synth_copy):
    root = synth_copy("glb")
    image = root / "val" / "images" / "glb_val_0000.tif"
    data = _read(image)
    data[0, 0, 0] = 1.5
    _rewrite(image, data)
    report = check_dataset("glb", root)
    assert report.ok
    assert [i.severity for i in report.issues] == ["warning"]
    assert "outside the documented range 0..1" in report.issues[0].problem


def test_cache_build_fails_naming_the_bad_file(synth_copy, tmp_path):
    root = synth_copy("gld")
    image = root / "train" / "image" / "gld_train_0003.tif"
    _rewrite(image, _read(image)[:9])
    with pytest.raises(DataError) as err:
        TileCache(tmp_path / "cache").open(get_dataset("gld"), root, "train")
    assert str(image) in str(err.value) and "has 9 bands" in str(err.value)
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert all(name.startswith(".lock-") for name in left), left  # no half-made cache


def test_cli_data_check_exit_codes_and_json(synth_root, synth_copy, capsys):
    assert main(["data", "check", "shelf", "--data-root", str(synth_root("shelf"))]) == 0
    assert "shelf at" in capsys.readouterr().out
    root = synth_copy("shelf")
    shutil.rmtree(root / "train")
    assert main(["data", "check", "shelf", "--data-root", str(root), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False
    assert any("missing folder" in i["problem"] for i in result["issues"])


def test_stray_files_are_warned_about_and_gdal_sidecars_skipped(synth_copy):
    gld = synth_copy("gld")
    stray = gld / "train" / "image" / "preview.jpg"
    stray.write_bytes(b"jpeg")
    report = check_dataset("gld", gld)
    assert report.ok
    assert [(i.path, i.severity) for i in report.issues] == [(str(stray), "warning")]
    glid = synth_copy("glid")
    image = next((glid / "train" / "images").iterdir())
    image.with_name(image.name + ".aux.xml").write_text("<PAMDataset/>")
    assert check_dataset("glid", glid).issues == []


def _warnings(report) -> dict[str, str]:
    return {i.path: i.problem for i in report.issues if i.severity == "warning"}


def test_a_real_three_band_sicd_scene_loads_in_both_views(synth_copy, tmp_path):
    root = synth_copy("sicd")
    image = next((root / "train" / "images").iterdir())
    assert _read(image).shape[0] == 3
    assert check_dataset("sicd", root).ok
    spec = get_dataset("sicd")
    cache = TileCache(tmp_path / "cache")
    split = cache.open(spec, root, "train", ("optical",))
    sample = split.sample(0)
    assert sample["sar"].shape[0] == 2 and sample["optical"].shape[0] == 3
    assert np.array_equal(sample["optical"][:2], sample["sar"])
    assert cache.open(spec, root, "train", ("sar",)).path == split.path  # one cache for both


def test_two_band_sicd_scenes_feed_the_sar_view_and_are_refused_for_the_rgb_proxy(
    synth_copy, tmp_path
):
    root = synth_copy("sicd")
    for image in root.glob("*/images/*.tif"):
        _rewrite(image, _read(image)[:2])
    report = check_dataset("sicd", root)
    assert report.ok
    warning = _warnings(report)[str(root / "train" / "images" / "sicd_train_0000.tif")]
    assert "the optical view (B4,B3,B2) needs 3" in warning and "remoteclip" in warning
    spec = get_dataset("sicd")
    cache = TileCache(tmp_path / "cache")
    assert cache.open(spec, root, "train", ("sar",)).sample(0)["sar"].shape[0] == 2
    with pytest.raises(DataError, match=r"sicd_train_0000.tif: has 2 bands, but the optical view"):
        cache.open(spec, root, "train", ("optical",))


def test_a_one_band_sicd_scene_is_refused_naming_the_file(synth_copy):
    root = synth_copy("sicd")
    image = root / "val" / "images" / "sicd_val_0000.tif"
    _rewrite(image, _read(image)[:1])
    problem = _errors(check_dataset("sicd", root))[str(image)]
    assert "has 1 bands; expected 2 to 3 (sar: VV,VH)" in problem


def test_what_cryobench_reads_is_accepted_with_a_warning(synth_copy):
    """Cryo-Bench casts every image to float32 and reads the leading bands: an unexpected dtype
    or extra trailing bands train the same, so they warn instead of refusing the dataset."""
    root = synth_copy("gsdd")
    image = root / "train" / "image" / "gsdd_train_0000.tif"
    data = _read(image)
    _rewrite(image, np.concatenate([data, data[:1]]).astype(np.float64))
    glid = synth_copy("glid")
    tile = next((glid / "val" / "images").iterdir())
    _rewrite(tile, _read(tile).astype(np.uint16))
    for key, folder, path in (("gsdd", root, image), ("glid", glid, tile)):
        report = check_dataset(key, folder)
        assert report.ok, report.format()
        assert str(path) in _warnings(report)
    assert "has 11 bands" in _warnings(check_dataset("gsdd", root))[str(image)]
    assert "dtype uint16" in _warnings(check_dataset("glid", glid))[str(tile)]


def test_data_check_shows_a_progress_bar_on_a_terminal_and_plain_lines_elsewhere(
    synth_root, cryotune, in_terminal
):
    root = synth_root("glid").parent
    args = ["data", "check", "glid", "--data-root", str(root)]
    shown = in_terminal(sys.executable, "-m", "cryotune.cli", *args)
    assert "glid at" in shown and "OK" in shown
    assert "\x1b[" in shown  # drawn in place
    assert "━" in shown and "4/4" in shown and "ETA" in shown  # bar, counts, time left

    done = cryotune(*args)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr  # no control codes in a log
    lines = done.stderr.splitlines()
    for split, tiles in (("train", 4), ("val", 2), ("test", 2)):
        assert any(
            ln.startswith(f"checking glid {split}: {tiles}/{tiles} tiles in") for ln in lines
        )
