"""Find a split's image/mask pairs by each dataset's folder layout and pairing rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryotune.data.datasets import DatasetSpec
from cryotune.data.issues import Issue, raise_for_errors

SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".xml", ".txt", ".md", ".json", ".csv", ".db")


@dataclass
class SplitScan:
    """The pairs found in one split, and every layout problem on the way."""

    split: str
    image_dir: Path
    mask_dir: Path
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


def _listing(folder: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[Issue]]:
    """(files the layout accepts sorted by name, warnings for other files).

    Without suffixes every file but GDAL sidecars and hidden files is accepted.
    """
    accepted, ignored = [], []
    wanted = tuple(s.lower() for s in suffixes)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        name = path.name.lower()
        if not wanted:
            if not name.endswith(SIDECAR_SUFFIXES):
                accepted.append(path)
        elif name.endswith(wanted):
            accepted.append(path)
        else:
            ignored.append(Issue(str(path), f"ignored: not a {'/'.join(suffixes)} file", "warning"))
    return accepted, ignored


def _stem(path: Path, suffixes: tuple[str, ...]) -> str:
    name = path.name
    for s in suffixes:
        if name.lower().endswith(s.lower()):
            return name[: -len(s)]
    return path.stem


def scan_split(spec: DatasetSpec, root: Path, split: str) -> SplitScan:
    """Pairs of one split by the dataset's rule; problems are collected, not raised."""
    layout = spec.layout
    scan = SplitScan(split, layout.image_folder(root, split), layout.mask_folder(root, split))
    missing = [d for d in (scan.image_dir, scan.mask_dir) if not d.is_dir()]
    for folder in missing:
        scan.issues.append(
            Issue(str(folder), f"missing folder for split '{split}' (layout {_pattern(spec)})")
        )
    if missing:
        return scan
    images, ignored_images = _listing(scan.image_dir, layout.image_suffixes)
    masks, ignored_masks = _listing(scan.mask_dir, layout.mask_suffixes)
    scan.issues += ignored_images + ignored_masks
    if not images:
        scan.issues.append(Issue(str(scan.image_dir), f"empty split '{split}': no images"))
        return scan
    if layout.pairing == "sorted":
        if len(images) != len(masks):
            scan.issues.append(
                Issue(
                    str(scan.mask_dir),
                    f"{len(masks)} masks for {len(images)} images in {scan.image_dir} "
                    "(this dataset pairs images and masks by sorted order)",
                )
            )
            return scan
        scan.pairs = list(zip(images, masks))
        return scan
    by_stem = {_stem(m, layout.mask_suffixes): m for m in masks}
    used: set[Path] = set()
    for image in images:
        stem = _stem(image, layout.image_suffixes)
        found = [by_stem[stem + s] for s in layout.mask_name_suffixes if stem + s in by_stem]
        if not found:
            suffix = layout.mask_suffixes[0] if layout.mask_suffixes else image.suffix
            expected = " or ".join(
                str(scan.mask_dir / f"{stem}{s}{suffix}") for s in layout.mask_name_suffixes
            )
            scan.issues.append(Issue(str(image), f"unpaired image: no mask {expected}"))
            continue
        scan.pairs.append((image, found[0]))
        used.add(found[0])
    for mask in masks:
        if mask not in used:
            scan.issues.append(
                Issue(str(mask), f"unpaired mask: no image of that name in {scan.image_dir}")
            )
    return scan


def _pattern(spec: DatasetSpec) -> str:
    lay = spec.layout
    return f"ROOT/{lay.image_dir} + ROOT/{lay.mask_dir}"


def list_pairs(spec: DatasetSpec, root: Path, split: str) -> list[tuple[Path, Path]]:
    """The split's (image, mask) pairs; raises DataError naming every layout problem."""
    scan = scan_split(spec, root, split)
    raise_for_errors(scan.issues, f"{spec.key} split '{split}' at {root}")
    return scan.pairs
