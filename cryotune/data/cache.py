"""The tile cache: each split decoded, checked and normalised once into memory-mapped arrays.

A split's cache folder is named by a hash of the dataset, split, file list (names, sizes,
mtimes) and decoding/normalisation settings, so a changed file triggers a rebuild and every
trial on the node shares one copy. Tiles may differ in size (SICD and CaFFe scenes): channels and
masks are stored as flat arrays with per-tile offsets and shapes. A build writes into a temp
folder and renames it into place, so a killed build never leaves a half-made cache. Concurrent
trials on one node that need the same split take a per-split file lock first: one decodes, the
others wait and then reuse its copy (on folders shared by several nodes where ``flock`` is not
honoured, the atomic rename still keeps the cache whole: the loser drops its copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cryotune.data.check import check_pair
from cryotune.data.datasets import DatasetSpec
from cryotune.data.issues import raise_for_errors
from cryotune.data.layouts import list_pairs
from cryotune.data.normalize import normalize_channels
from cryotune.data.readers import decoded_band_count, raster_info
from cryotune.errors import DataError
from cryotune.files import file_lock
from cryotune.terminal import counted

CACHE_ENV = "CRYOTUNE_CACHE"
FORMAT_VERSION = 1
STALE_TEMP_S = 24 * 3600
_META = "meta.json"
_CHANNELS = "channels.f32"
_MASKS = "masks.i16"
_RATIOS = "class_ratios.npy"


def default_cache_dir() -> Path:
    """``$CRYOTUNE_CACHE``, else ``$XDG_CACHE_HOME/cryotune/tiles`` (``~/.cache/...``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cryotune" / "tiles"


def _digest(document: object) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


class CachedSplit:
    """One split in the cache: ``sample(i)`` gives normalised float32 modalities + int64 mask.

    Pickles without its arrays (they are reopened lazily), so DataLoader workers and Ray
    actors share the page cache instead of copying data.
    """

    def __init__(self, spec: DatasetSpec, path: Path):
        meta = json.loads((path / _META).read_text())
        if meta.get("version") != FORMAT_VERSION or meta.get("dataset") != spec.key:
            raise DataError(
                f"{path}: not a cryotune tile cache for {spec.key} (format {FORMAT_VERSION})"
            )
        self.spec = spec
        self.path = path
        self.split: str = meta["split"]
        self.root: str = meta["root"]
        self.files: list[str] = meta["files"]
        self.mask_files: list[str] = meta["mask_files"]
        self.fingerprint: str = meta["fingerprint"]
        self.shapes = np.asarray(meta["shapes"], dtype=np.int64).reshape(-1, 2)
        self.channel_offsets = np.asarray(meta["channel_offsets"], dtype=np.int64)
        self.mask_offsets = np.asarray(meta["mask_offsets"], dtype=np.int64)
        self.num_channels: int = meta["num_channels"]
        self.modality_channels = {k: tuple(v) for k, v in meta["modality_channels"].items()}
        self.class_ratios: np.ndarray = np.load(path / _RATIOS)
        self.built_here = False
        total = int(meta["total_channel_values"]), int(meta["total_mask_values"])
        for name, size, count in ((_CHANNELS, 4, total[0]), (_MASKS, 2, total[1])):
            if (path / name).stat().st_size != size * count:
                raise DataError(f"{path / name}: truncated tile cache file")
        self._totals = total
        self._channels: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_channels"] = state["_masks"] = None
        return state

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Plain ndarray views of the memmaps: slicing them skips memmap's per-view overhead."""
        if self._channels is None or self._masks is None:
            channels = np.memmap(self.path / _CHANNELS, np.float32, "r", shape=(self._totals[0],))
            masks = np.memmap(self.path / _MASKS, np.int16, "r", shape=(self._totals[1],))
            self._channels, self._masks = channels.view(np.ndarray), masks.view(np.ndarray)
        return self._channels, self._masks

    def shape(self, i: int) -> tuple[int, int]:
        """``(H, W)`` of tile ``i``."""
        h, w = self.shapes[i]
        return int(h), int(w)

    def tile(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views into the cache, no copy: channels ``(C, H, W)`` and int16 mask ``(H, W)``.

        For readers that copy windows straight into their own buffers (batched loading).
        """
        if not 0 <= i < len(self):
            raise IndexError(f"tile {i} out of range for {len(self)} tiles")
        channels, masks = self._arrays()
        h, w = self.shape(i)
        c0, m0 = int(self.channel_offsets[i]), int(self.mask_offsets[i])
        tile = channels[c0 : c0 + self.num_channels * h * w].reshape(self.num_channels, h, w)
        return tile, masks[m0 : m0 + h * w].reshape(h, w)

    def sample(
        self,
        i: int,
        modalities: tuple[str, ...] | None = None,
        window: tuple[int, int, int, int] | None = None,
    ) -> dict[str, np.ndarray]:
        """Tile ``i`` (or its ``window`` = top, left, height, width) as a normalised Sample."""
        tile, mask = self.tile(i)
        if window is not None:
            top, left, wh, ww = window
            tile = tile[:, top : top + wh, left : left + ww]
            mask = mask[top : top + wh, left : left + ww]
        names = modalities if modalities is not None else tuple(self.modality_channels)
        out = {n: np.ascontiguousarray(tile[list(self.modality_channels[n])]) for n in names}
        out["mask"] = mask.astype(np.int64)
        return out


class TileCache:
    """The cache folder: explicit ``cache_dir``, else ``$CRYOTUNE_CACHE``, else per-user."""

    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()

    def key(
        self, spec: DatasetSpec, root: Path, split: str, modalities: tuple[str, ...] = ()
    ) -> tuple[str, dict, list]:
        """(folder name, key document, pairs) for a split as it is on disk now, storing the
        channels of ``modalities`` and of every modality all its files can feed (so SAR and
        RGB-proxy trials on 3-band SICD scenes share one cache)."""
        root = Path(root)
        pairs = list_pairs(spec, root, split)
        stored = spec.stored_modalities((*modalities, *self._fed_by_all(spec, pairs)))
        listing = []
        for image, mask in pairs:
            for path in (image, mask):
                st = path.stat()
                listing.append([path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
        plan = spec.channel_plan(stored)
        document = {
            "stored": list(stored),
            "version": FORMAT_VERSION,
            "dataset": spec.key,
            "split": split,
            "files": listing,
            "channels": asdict(plan),
            "image": asdict(spec.image),
            "mask": asdict(spec.mask),
            "ignore_index": spec.ignore_index,
        }
        return f"{spec.key}-{split}-{_digest(document)[:20]}", document, pairs

    @staticmethod
    def _fed_by_all(spec: DatasetSpec, pairs: list) -> tuple[str, ...]:
        """The optional views (beyond the bands every accepted file has) that every image of
        the split can feed, from the files' headers; an unreadable file feeds none (the build
        names it)."""
        optional = [m for m in spec.modalities if max(m.file_bands) >= spec.image.min_bands]
        if not optional or not pairs:
            return ()
        try:
            fewest = min(decoded_band_count(spec, raster_info(image).count) for image, _ in pairs)
        except DataError:
            return ()
        return tuple(m.name for m in optional if max(m.file_bands) < fewest)

    def open(
        self, spec: DatasetSpec, root: Path, split: str, modalities: tuple[str, ...] = ()
    ) -> CachedSplit:
        """The cached split holding ``modalities`` (and every view all its files can feed),
        built first if missing or stale; DataError names bad files."""
        root = Path(root)
        name, document, pairs = self.key(spec, root, split, modalities)
        final = self.cache_dir / name
        cached = self._reuse(spec, final)
        if cached is not None:
            return cached
        with self._build_lock(name):
            cached = self._reuse(spec, final)
            if cached is not None:
                return cached
            folder = self._publish(spec, root, split, name, document, pairs)
            cached = CachedSplit(spec, folder)
        cached.built_here = True
        return cached

    def _reuse(self, spec: DatasetSpec, final: Path) -> CachedSplit | None:
        """The published split at ``final``; a damaged one is discarded (None)."""
        if not (final / _META).exists():
            return None
        try:
            return CachedSplit(spec, final)
        except (DataError, OSError, ValueError, KeyError):
            self._discard(final)
            return None

    def _build_lock(self, name: str):
        """Hold the split's build lock (``.lock-NAME``); released when its holder dies too."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.cache_dir / f".lock-{name}")

    def build(
        self, spec: DatasetSpec, root: Path, split: str, modalities: tuple[str, ...] = ()
    ) -> Path:
        """Build the split's cache even if one exists; returns the folder in use.

        When another process published the same cache first, this copy is dropped and the
        existing folder is returned.
        """
        root = Path(root)
        name, document, pairs = self.key(spec, root, split, modalities)
        with self._build_lock(name):
            return self._publish(spec, root, split, name, document, pairs)

    def _publish(
        self,
        spec: DatasetSpec,
        root: Path,
        split: str,
        name: str,
        document: dict,
        pairs: list,
    ) -> Path:
        final = self.cache_dir / name
        self._remove_stale_temps()
        temp = self.cache_dir / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self._build(spec, root, split, pairs, document, temp)
            try:
                os.rename(temp, final)
            except OSError:
                if not (final / _META).exists():
                    raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return final

    def _discard(self, folder: Path) -> None:
        """Move a damaged cache out of the way in one step, then delete it."""
        aside = self.cache_dir / f".tmp-damaged-{folder.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, aside)
        except OSError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    def _remove_stale_temps(self) -> None:
        """Delete temp folders that builds killed a day or more ago left behind."""
        cutoff = time.time() - STALE_TEMP_S
        for temp in self.cache_dir.glob(".tmp-*"):
            try:
                if temp.stat().st_mtime < cutoff:
                    shutil.rmtree(temp, ignore_errors=True)
            except OSError:
                continue

    def _build(
        self,
        spec: DatasetSpec,
        root: Path,
        split: str,
        pairs: list,
        document: dict,
        temp: Path,
    ) -> None:
        temp.mkdir(parents=True)
        stored = tuple(document["stored"])
        plan = spec.channel_plan(stored)
        issues, shapes, channel_offsets, mask_offsets, ratios = [], [], [], [], []
        channel_total = mask_total = 0
        with (
            open(temp / _CHANNELS, "wb") as channels_out,
            open(temp / _MASKS, "wb") as masks_out,
            counted(
                f"decoding {spec.key} {split} into the tile cache", len(pairs), "tiles"
            ) as step,
        ):
            for image, mask_path in pairs:
                step()
                pair = check_pair(spec, image, mask_path, stored)
                issues += pair.issues
                if pair.channels is None or pair.mask is None:
                    continue
                channels = normalize_channels(plan, pair.channels)
                channels_out.write(np.ascontiguousarray(channels, dtype=np.float32).tobytes())
                masks_out.write(pair.mask.astype(np.int16).tobytes())
                shapes.append(list(pair.mask.shape))
                channel_offsets.append(channel_total)
                mask_offsets.append(mask_total)
                channel_total += channels.size
                mask_total += pair.mask.size
                ratios.append(_class_ratios(pair.mask, spec.num_classes))
            raise_for_errors(issues, f"{spec.key} split '{split}' at {root} cannot be cached")
            for f in (channels_out, masks_out):
                f.flush()
                os.fsync(f.fileno())
        np.save(temp / _RATIOS, np.asarray(ratios, dtype=np.float64).reshape(-1, spec.num_classes))
        files = [f[0] for f in document["files"]]
        meta = {
            "version": FORMAT_VERSION,
            "dataset": spec.key,
            "split": split,
            "root": str(root.resolve()),
            "files": files[0::2],
            "mask_files": files[1::2],
            "fingerprint": _digest(document["files"]),
            "shapes": shapes,
            "channel_offsets": channel_offsets,
            "mask_offsets": mask_offsets,
            "num_channels": len(plan.file_bands),
            "modality_channels": plan.modality_channels,
            "total_channel_values": channel_total,
            "total_mask_values": mask_total,
            "key": document,
        }
        (temp / _META).write_text(json.dumps(meta))


def _class_ratios(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class share of a tile's labelled pixels (ignore pixels excluded; all-ignore: zeros)."""
    valid = mask[(mask >= 0) & (mask < num_classes)]
    counts = np.bincount(valid, minlength=num_classes).astype(np.float64)
    return counts / valid.size if valid.size else counts
