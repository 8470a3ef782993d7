"""Small, learnable synthetic datasets written in each Cryo-Bench dataset's real layout.

Files have the real folder names, file types, dtypes, band counts and value ranges; classes form
spatial shapes (lakes as blobs, calving fronts and shelf edges as a wavy boundary, debris and ice
types as patches) and each class shifts a subset of bands, plus noise, so a small model learns
them in a few epochs. Used by the demo, the tests and the benchmarks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.errors import UsageError

DEFAULT_SIZE = 64
NOISE = 0.6
TEXTURE = 0.3


def _smooth_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Bilinearly upsampled noise: a smooth random surface with features about ``cell`` px wide."""
    grid = rng.standard_normal((h // cell + 2, w // cell + 2))
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = grid
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bottom = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _lakes(rng: np.random.Generator, h: int, w: int, num_classes: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=np.int64)
    wobble = _smooth_field(rng, h, w, max(4, min(h, w) // 6)) * 0.15
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        ry, rx = rng.uniform(0.08, 0.25) * h, rng.uniform(0.08, 0.25) * w
        mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 + wobble < 1] = 1
    return mask


def _patches(rng: np.random.Generator, h: int, w: int, num_classes: int) -> np.ndarray:
    cell = max(4, min(h, w) // 4)
    if num_classes == 2:
        return (_smooth_field(rng, h, w, cell) > 0.4).astype(np.int64)
    fields = np.stack([_smooth_field(rng, h, w, cell) for _ in range(num_classes)])
    return fields.argmax(axis=0).astype(np.int64)


def _boundary(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """True on the land side of a wavy, roughly vertical front."""
    xx = np.arange(w)[None, :]
    rows = np.arange(h)[:, None]
    position = w * rng.uniform(0.35, 0.65)
    amplitude = w * rng.uniform(0.05, 0.15)
    front = position + amplitude * np.sin(
        2 * np.pi * rows / h * rng.uniform(0.5, 2) + rng.uniform(0, 6)
    )
    return xx < front + _smooth_field(rng, h, w, max(4, h // 4)) * w * 0.03


def _calving_front(rng: np.random.Generator, h: int, w: int, num_classes: int) -> np.ndarray:
    land = _boundary(rng, h, w)
    mask = np.where(land, 2, 3)
    rock = land & (_smooth_field(rng, h, w, max(4, h // 5)) > 0.6)
    mask[rock] = 1
    mask[: int(rng.integers(0, max(1, h // 6))), :] = 0
    return mask.astype(np.int64)


def _shelf_edge(rng: np.random.Generator, h: int, w: int, num_classes: int) -> np.ndarray:
    return _boundary(rng, h, w).astype(np.int64)


@dataclass(frozen=True)
class SynthRecipe:
    """How to draw one dataset's synthetic tiles: class shapes, file name prefixes, ignore areas
    (with NaN in the image, as SICD's land and no-data parts) and raw mask codes per class."""

    shapes: Callable[[np.random.Generator, int, int, int], np.ndarray]
    image_prefix: str = ""
    mask_prefix: str = ""
    ignore_areas: bool = False
    mask_codes: tuple[int, ...] | None = None


RECIPES: dict[str, SynthRecipe] = {
    "glid": SynthRecipe(_lakes, image_prefix="img_", mask_prefix="mask_"),
    "gld": SynthRecipe(_lakes),
    "gsdd": SynthRecipe(_patches),
    "sicd": SynthRecipe(_patches, ignore_areas=True),
    "caffe": SynthRecipe(_calving_front, mask_codes=(0, 64, 127, 254)),
    "glb": SynthRecipe(_lakes),
    "shelf": SynthRecipe(_shelf_edge, mask_codes=(0, 255)),
}


def _class_effects(spec: DatasetSpec, rng: np.random.Generator) -> np.ndarray:
    """(classes, file channels) shifts in std units: classes on a circle in two bands, plus
    random shifts in a third of the others."""
    k, b = spec.num_classes, len(spec.channel_plan().file_bands)
    effects = np.zeros((k, b))
    if b == 1:
        effects[:, 0] = np.linspace(-1.2, 1.2, k)
        return effects
    angles = 2 * np.pi * np.arange(k) / k
    effects[:, 0], effects[:, 1] = 1.5 * np.cos(angles), 1.5 * np.sin(angles)
    for band in range(2, b):
        if rng.random() < 1 / 3:
            effects[:, band] = rng.choice([-0.8, 0.8], size=k)
    return effects


def _file_layout(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """Per file band: the (mean, std) of the first modality band stored there, and band count."""
    count = max(spec.image.min_bands, spec.file_band_count) if not spec.image.grey else 1
    mean, std = np.zeros(count), np.ones(count)
    for m in spec.modalities:
        for b, mu, sd in zip(m.file_bands, m.mean, m.std):
            mean[b], std[b] = mu, sd
    return mean, std, count


def _to_raw(spec: DatasetSpec, z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    raw = (mean[:, None, None] + std[:, None, None] * z) / spec.image.scale
    dtype = np.dtype(spec.image.dtypes[0])
    if spec.image.value_range is not None:
        raw = np.clip(raw, *spec.image.value_range)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        raw = np.clip(np.rint(raw), info.min, info.max)
    return raw.astype(dtype)


def _write(path: Path, data: np.ndarray, driver: str, index: int) -> None:
    profile = {
        "driver": driver,
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
    }
    if driver == "GTiff":
        profile["crs"] = "EPSG:32645"
        profile["transform"] = Affine(10, 0, 500_000 + 10_000 * index, 0, -10, 3_100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


def _tile_size(spec: DatasetSpec, size: int, rng: np.random.Generator) -> tuple[int, int]:
    if not spec.scenes:
        return size, size
    spread = max(1, size // 4)
    h, w = rng.integers(-spread, spread + 1, size=2)
    return size + int(h), size + int(w)


def _draw_tile(
    spec: DatasetSpec,
    recipe: SynthRecipe,
    effects: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(raw image in the file's dtype, uint8 mask in the file's coding) of one tile."""
    h, w = shape
    mean, std, count = _file_layout(spec)
    file_bands = spec.channel_plan().file_bands
    classes = recipe.shapes(rng, h, w, spec.num_classes)
    z = np.empty((count, h, w))
    for band in range(count):
        shift = effects[classes, file_bands.index(band)] if band in file_bands else 0.0
        texture = _smooth_field(rng, h, w, max(4, min(h, w) // 8))
        z[band] = shift + TEXTURE * texture + NOISE * rng.standard_normal((h, w))
    image = _to_raw(spec, z, mean, std)
    mask = classes if recipe.mask_codes is None else np.asarray(recipe.mask_codes)[classes]
    if recipe.ignore_areas:
        ignore = _smooth_field(rng, h, w, max(4, h // 4)) > 1.3
        mask[ignore] = spec.ignore_index
        if np.issubdtype(image.dtype, np.floating):
            image[:, ignore & (rng.random((h, w)) < 0.5)] = np.nan
    return image, mask.astype(np.uint8)


def write_synthetic(
    key: str, out: Path, tiles: int = 8, size: int | None = None, seed: int = 0
) -> Path:
    """Write ``tiles`` training tiles (half as many, at least one, for val and test) of ``key``
    in its real layout under ``out``; returns ``out``. Scene datasets (SICD, CaFFe) vary the
    size of each scene around ``size``."""
    spec = get_dataset(key)
    size = DEFAULT_SIZE if size is None else size
    if tiles < 1:
        raise UsageError(f"--tiles must be at least 1; got {tiles}")
    if size < 16:
        raise UsageError(f"--size must be at least 16 px; got {size}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty folder; pick a new folder")
    recipe = RECIPES[spec.key]
    rng = np.random.default_rng(seed)
    effects = _class_effects(spec, rng)
    suffix = ".png" if spec.image.driver == "PNG" else ".tif"
    counts = {"train": tiles, "val": max(1, tiles // 2), "test": max(1, tiles // 2)}
    index = 0
    for split in spec.layout.splits:
        image_dir = spec.layout.image_folder(out, split)
        mask_dir = spec.layout.mask_folder(out, split)
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for i in range(counts[split]):
            image, mask = _draw_tile(spec, recipe, effects, _tile_size(spec, size, rng), rng)
            name = f"{spec.key}_{split}_{i:04d}{suffix}"
            _write(image_dir / f"{recipe.image_prefix}{name}", image, spec.image.driver, index)
            _write(mask_dir / f"{recipe.mask_prefix}{name}", mask[None], spec.image.driver, index)
            index += 1
    return out
