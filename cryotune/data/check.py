"""Validate a dataset on disk before any training: layout, pairing, bands, dtypes, values, masks.

The tile cache runs the same per-file checks while it builds, so a bad file fails the build
with the same message ``cryotune data check`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.data.issues import Issue, errors_of
from cryotune.data.layouts import scan_split
from cryotune.data.readers import (
    decode_channels,
    decode_mask,
    decoded_band_count,
    raster_info,
    read_raster,
)
from cryotune.errors import DataError
from cryotune.table import format_table
from cryotune.terminal import counted


@dataclass
class PairCheck:
    """One image/mask pair: decoded channels and mask when usable, and every problem found."""

    channels: np.ndarray | None = None
    mask: np.ndarray | None = None
    issues: list[Issue] = field(default_factory=list)


def _band_words(spec: DatasetSpec) -> str:
    fmt = spec.image
    if fmt.max_bands is None:
        count = f"at least {fmt.min_bands}"
    elif fmt.min_bands == fmt.max_bands:
        count = str(fmt.min_bands)
    else:
        count = f"{fmt.min_bands} to {fmt.max_bands}"
    names = "; ".join(f"{m.name}: {','.join(m.bands)}" for m in spec.primary_modalities)
    return f"{count} ({names})"


def _check_image_values(spec: DatasetSpec, path: Path, raw: np.ndarray) -> list[Issue]:
    issues = []
    if np.issubdtype(raw.dtype, np.floating):
        nan = int(np.isnan(raw).sum())
        inf = int(np.isinf(raw).sum())
        if nan and not spec.image.nan_to_zero:
            issues.append(Issue(str(path), f"{nan} NaN values (this dataset has none)"))
        if inf and not spec.image.nan_to_zero:
            issues.append(Issue(str(path), f"{inf} infinite values"))
        finite = raw[np.isfinite(raw)]
    else:
        finite = raw
    if spec.image.value_range is not None and finite.size:
        lo, hi = spec.image.value_range
        vmin, vmax = float(finite.min()), float(finite.max())
        if vmin < lo or vmax > hi:
            issues.append(
                Issue(
                    str(path),
                    f"values {vmin:g}..{vmax:g} outside the documented range {lo:g}..{hi:g}",
                    "warning",
                )
            )
    return issues


def _check_mask_values(spec: DatasetSpec, path: Path, raw: np.ndarray) -> list[Issue]:
    if np.issubdtype(raw.dtype, np.floating):
        if not np.isfinite(raw).all() or not np.equal(np.mod(raw, 1), 0).all():
            return [Issue(str(path), "mask holds non-integer values (NaN or fractions)")]
    elif not np.issubdtype(raw.dtype, np.integer):
        return [Issue(str(path), f"mask dtype {raw.dtype} is not an integer type")]
    if spec.mask.binarize:
        return []
    allowed = spec.mask_values()
    present = np.unique(raw)
    bad = present[~np.isin(present, allowed)]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:10].tolist())
        codes = "/".join(str(r) for r, _ in spec.mask.raw_codes)
        valid = f"classes 0..{spec.num_classes - 1}" + (f" (or raw codes {codes})" if codes else "")
        return [
            Issue(
                str(path),
                f"mask values {shown} are not {valid} or the ignore index {spec.ignore_index}",
            )
        ]
    return []


def _reason(exc: DataError, path: Path) -> str:
    return str(exc).removeprefix(f"{path}: ")


def _band_issues(
    spec: DatasetSpec, path: Path, count: int, modalities: tuple[str, ...], whole: bool
) -> list:
    """Too few bands for a read modality is an error; too few for another view of the dataset
    is a warning when checking the ``whole`` dataset (models reading that view cannot use the
    file); more than Cryo-Bench's files have is a warning (its loaders read the leading bands
    and ignore the rest, and so does cryotune)."""
    fmt = spec.image
    if count < fmt.min_bands:
        return [Issue(str(path), f"has {count} bands; expected {_band_words(spec)}")]
    decoded = decoded_band_count(spec, count)
    short = [m for m in modalities if max(spec.modality(m).file_bands) >= decoded]
    if short:
        m = spec.modality(short[0])
        return [
            Issue(
                str(path),
                f"has {count} bands, but the {m.name} view ({','.join(m.bands)}) reads "
                f"{max(m.file_bands) + 1}; use {max(m.file_bands) + 1}-band files, or a model "
                f"or --view that reads {', '.join(spec.readable_modalities(decoded))}",
            )
        ]
    unread = [m for m in spec.modalities if max(m.file_bands) >= decoded and m.name not in short]
    if unread and whole:
        m = unread[0]
        readers = ", ".join(k for k, v in spec.paper_views if v == m.name) or "none by default"
        return [
            Issue(
                str(path),
                f"has {count} bands: the {m.name} view ({','.join(m.bands)}) needs "
                f"{max(m.file_bands) + 1}, so models that read it ({readers}) cannot train on "
                "this dataset",
                "warning",
            )
        ]
    if fmt.max_bands is not None and count > fmt.max_bands:
        return [
            Issue(
                str(path),
                f"has {count} bands; Cryo-Bench's files have {_band_words(spec)}; the bands "
                f"past {fmt.max_bands} are not read",
                "warning",
            )
        ]
    return []


def check_pair(
    spec: DatasetSpec, image: Path, mask: Path, modalities: tuple[str, ...] = ()
) -> PairCheck:
    """Check one pair for the modalities a tile cache stores for a trial reading ``modalities``;
    on success ``channels`` holds ``decode_channels`` output for that plan and ``mask`` the
    decoded int64 class ids."""
    result = PairCheck()
    stored = spec.stored_modalities(modalities)
    plan = spec.channel_plan(stored)
    infos = {}
    for path in (image, mask):
        try:
            infos[path] = raster_info(path)
        except DataError as exc:
            result.issues.append(Issue(str(path), _reason(exc, path)))
    if result.issues:
        return result
    img, msk = infos[image], infos[mask]
    fmt = spec.image
    result.issues += _band_issues(spec, image, img.count, stored, whole=not modalities)
    if img.dtype not in fmt.dtypes:
        result.issues.append(
            Issue(
                str(image),
                f"dtype {img.dtype}; Cryo-Bench's files are {' or '.join(fmt.dtypes)}; read "
                "as float32 like theirs (check that the values are on the same scale)",
                "warning",
            )
        )
    if (img.height, img.width) != (msk.height, msk.width):
        result.issues.append(
            Issue(
                str(mask),
                f"mask is {msk.width}x{msk.height} px but its image {image.name} is "
                f"{img.width}x{img.height}",
            )
        )
    if errors_of(result.issues):
        return result
    try:
        raw_image = read_raster(image)
    except DataError as exc:
        result.issues.append(Issue(str(image), _reason(exc, image)))
        return result
    try:
        raw_mask = read_raster(mask, bands=1)
    except DataError as exc:
        result.issues.append(Issue(str(mask), _reason(exc, mask)))
        return result
    result.issues += _check_image_values(spec, image, raw_image)
    result.issues += _check_mask_values(spec, mask, raw_mask)
    if not errors_of(result.issues):
        result.channels = decode_channels(spec, raw_image, plan)
        result.mask = decode_mask(spec, raw_mask)
    return result


@dataclass
class SplitSummary:
    split: str
    tiles: int = 0
    class_pixels: list[int] = field(default_factory=list)
    ignore_pixels: int = 0
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None

    def add(self, mask: np.ndarray, num_classes: int) -> None:
        self.tiles += 1
        counts = np.bincount(mask[(mask >= 0) & (mask < num_classes)], minlength=num_classes)
        self.class_pixels = [a + int(b) for a, b in zip(self.class_pixels, counts)]
        self.ignore_pixels += int(mask.size - counts.sum())
        h, w = mask.shape
        lo, hi = self.min_size or (h, w), self.max_size or (h, w)
        self.min_size = (min(lo[0], h), min(lo[1], w))
        self.max_size = (max(hi[0], h), max(hi[1], w))

    def frequencies(self) -> list[float]:
        total = sum(self.class_pixels)
        return [c / total if total else 0.0 for c in self.class_pixels]

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "tiles": self.tiles,
            "class_pixels": self.class_pixels,
            "class_frequencies": self.frequencies(),
            "ignore_pixels": self.ignore_pixels,
            "min_size_hw": list(self.min_size) if self.min_size else None,
            "max_size_hw": list(self.max_size) if self.max_size else None,
        }


@dataclass
class CheckReport:
    """The result of checking a dataset: per-split summaries and every problem found."""

    key: str
    root: Path
    classes: tuple[str, ...]
    splits: dict[str, SplitSummary]
    issues: list[Issue]

    @property
    def ok(self) -> bool:
        return not errors_of(self.issues)

    def format(self) -> str:
        errors = errors_of(self.issues)
        files = len({i.path for i in errors})
        head = (
            f"{self.key} at {self.root}: OK"
            if self.ok
            else f"{self.key} at {self.root}: {len(errors)} problem(s) in {files} file(s)/folder(s)"
        )
        rows = []
        for s in self.splits.values():
            size = (
                "-"
                if s.min_size is None
                else f"{s.min_size[1]}x{s.min_size[0]}"
                + ("" if s.min_size == s.max_size else f"..{s.max_size[1]}x{s.max_size[0]}")
            )
            rows.append((s.split, s.tiles, size, *(f"{100 * f:.1f}%" for f in s.frequencies())))
        lines = [head, format_table(["split", "tiles", "size (WxH)", *self.classes], rows)]
        if self.issues:
            lines.append("problems:" if errors else "warnings:")
            lines += [
                f"  {i.format()}" for i in sorted(self.issues, key=lambda i: (i.severity, i.path))
            ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "root": str(self.root),
            "ok": self.ok,
            "classes": list(self.classes),
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
            "issues": [i.to_dict() for i in self.issues],
        }


def check_split(spec: DatasetSpec, root: Path, split: str) -> tuple[SplitSummary, list[Issue]]:
    scan = scan_split(spec, root, split)
    summary = SplitSummary(split, class_pixels=[0] * spec.num_classes)
    issues = list(scan.issues)
    with counted(f"checking {spec.key} {split}", len(scan.pairs), "tiles") as step:
        for image, mask in scan.pairs:
            pair = check_pair(spec, image, mask)
            step()
            issues += pair.issues
            if pair.mask is not None:
                summary.add(pair.mask, spec.num_classes)
    return summary, issues


def check_dataset(key: str, root: Path) -> CheckReport:
    """Check every split of ``key`` under ``root``; lists each offending file and what is wrong."""
    spec = get_dataset(key)
    root = Path(root)
    splits, issues = {}, []
    if not root.is_dir():
        issues.append(Issue(str(root), "dataset folder does not exist"))
    else:
        for split in spec.layout.splits:
            splits[split], found = check_split(spec, root, split)
            issues += found
    return CheckReport(spec.key, root, spec.classes, splits, issues)
