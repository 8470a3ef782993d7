"""Read image and mask files with rasterio and decode them into a dataset's channels and classes.

A *Sample* is a dict with one float32 ``(C, H, W)`` array per modality (raw values, the spec's
band order) and ``"mask"``: int64 ``(H, W)`` class ids or the ignore index.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from cryotune.data.datasets import ChannelPlan, DatasetSpec
from cryotune.errors import DataError

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
PNG_END = b"IEND\xaeB`\x82"


@dataclass(frozen=True)
class RasterInfo:
    count: int
    dtype: str
    height: int
    width: int


def _check_png_complete(path: Path) -> None:
    """GDAL decodes a truncated PNG without an error, filling the missing rows with whatever
    memory held; a complete PNG ends with its IEND chunk."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - len(PNG_END)))
        if handle.read() != PNG_END:
            raise DataError(
                f"{path}: unreadable or corrupt file (a truncated PNG: it does not end with "
                "its IEND chunk); copy it again"
            )


@contextmanager
def _opened(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open without listing the folder for sidecar files (slow in folders of 10k+ tiles)."""
    if path.suffix.lower() == ".png":
        _check_png_complete(path)
    with warnings.catch_warnings(), rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as src:
                yield src
        except RasterioError as exc:
            raise DataError(f"{path}: unreadable or corrupt file ({exc})") from None


def raster_info(path: Path) -> RasterInfo:
    with _opened(path) as src:
        return RasterInfo(src.count, src.dtypes[0], src.height, src.width)


def read_raster(path: Path, bands: int | None = None) -> np.ndarray:
    """All bands (or the first ``bands``) as ``(count, H, W)`` in the file's dtype."""
    with _opened(path) as src:
        indexes = list(range(1, (bands or src.count) + 1))
        return src.read(indexes)


def decoded_band_count(spec: DatasetSpec, count: int) -> int:
    """Bands a file of ``count`` bands offers after decoding (grey files offer one)."""
    return min(count, 1) if spec.image.grey else count


def file_plan(spec: DatasetSpec, count: int) -> ChannelPlan:
    """The channels of every modality a file of ``count`` bands can feed."""
    return spec.channel_plan(spec.readable_modalities(decoded_band_count(spec, count)))


def decode_channels(
    spec: DatasetSpec, raw: np.ndarray, plan: ChannelPlan | None = None
) -> np.ndarray:
    """The distinct channels of ``plan`` (default: every modality the file can feed) as float32,
    before normalisation."""
    plan = plan or file_plan(spec, raw.shape[0])
    image = raw.astype(np.float32, copy=False)
    if spec.image.grey:
        if image.shape[0] >= 3:
            image = np.tensordot(GREY_WEIGHTS, image[:3], axes=1)[None]
        else:
            image = image[:1]
    channels = image[list(plan.file_bands)]
    if spec.image.nan_to_zero:
        channels = np.nan_to_num(channels, nan=0.0, posinf=0.0, neginf=0.0)
    if spec.image.scale != 1.0:
        channels = channels * np.float32(spec.image.scale)
    return np.ascontiguousarray(channels, dtype=np.float32)


def decode_mask(spec: DatasetSpec, raw: np.ndarray) -> np.ndarray:
    """Class ids (or the ignore index) as int64 ``(H, W)`` from a mask file's first band."""
    values = raw[0] if raw.ndim == 3 else raw
    if spec.mask.binarize:
        return (values > 0).astype(np.int64)
    mask = values.astype(np.int64)
    for code, class_id in spec.mask.raw_codes:
        mask[values == code] = class_id
    return mask


def split_modalities(plan: ChannelPlan, channels: np.ndarray) -> dict[str, np.ndarray]:
    return {name: channels[list(idx)] for name, idx in plan.modality_channels.items()}


def read_sample(spec: DatasetSpec, image: Path, mask: Path) -> dict[str, np.ndarray]:
    """One raw (unnormalised) Sample of every modality the file can feed; DataError names the
    file that cannot be read."""
    raw = read_raster(image)
    plan = file_plan(spec, raw.shape[0])
    channels = decode_channels(spec, raw, plan)
    sample = split_modalities(plan, channels)
    sample["mask"] = decode_mask(spec, read_raster(mask, bands=1))
    if sample["mask"].shape != channels.shape[1:]:
        raise DataError(
            f"{mask}: mask is {sample['mask'].shape[1]}x{sample['mask'].shape[0]} px but "
            f"image {image} is {channels.shape[2]}x{channels.shape[1]}"
        )
    return sample
