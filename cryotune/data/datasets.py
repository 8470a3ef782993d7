"""The Cryo-Bench dataset registry: what each dataset holds and how it lies on disk.

Every number comes from Cryo-Bench's dataset configs (docs: the project's cryobench.md, section 1);
each spec says where its statistics come from and which band names are placeholders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from cryotune.errors import UnknownNameError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Modality:
    """One input modality: band names in order, their statistics and where they are in the file.

    ``file_bands[i]`` is the 0-based band index in the image file that holds ``bands[i]``.
    ``fallback=True`` marks a view that only exists to feed encoders lacking every primary
    modality (CaFFe's grey SAR repeated as ``B4,B3,B2``, SICD's RGB proxy of its three bands).
    """

    name: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    file_bands: tuple[int, ...]
    fallback: bool = False

    def __post_init__(self) -> None:
        sizes = {len(self.bands), len(self.mean), len(self.std), len(self.file_bands)}
        if len(sizes) != 1:
            raise ValueError(f"modality {self.name}: bands, mean, std, file_bands differ in length")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"modality {self.name}: std must be positive")


@dataclass(frozen=True)
class Layout:
    """Where a split's images and masks live and how they pair.

    Folder templates hold ``{split}``. ``pairing="sorted"`` pairs the i-th image with the i-th
    mask in sorted order (GLID); ``"name"`` pairs an image with the mask of the same stem plus
    one of ``mask_name_suffixes`` (raw CaFFe labels are ``<stem>_zones.png``). Empty suffix
    tuples accept any file GDAL may read (sidecar files are skipped).
    """

    image_dir: str
    mask_dir: str
    pairing: Literal["sorted", "name"]
    image_suffixes: tuple[str, ...]
    mask_suffixes: tuple[str, ...]
    mask_name_suffixes: tuple[str, ...] = ("",)
    splits: tuple[str, ...] = SPLITS
    nested: tuple[str, ...] = ()

    def image_folder(self, root: Path, split: str) -> Path:
        return root / self.image_dir.format(split=split)

    def mask_folder(self, root: Path, split: str) -> Path:
        return root / self.mask_dir.format(split=split)


@dataclass(frozen=True)
class ImageFormat:
    """What an image file holds: GDAL driver, band counts, dtypes, values and their decoding.

    ``dtypes[0]`` is the dtype of the real files (synthetic data uses it); ``value_range`` is
    the documented range of raw values (a check reports values outside it
    as a warning); ``nan_to_zero`` replaces NaN with 0 before normalisation (SICD);
    ``scale`` multiplies raw values before normalisation (Shelf-Bench: /255); ``grey`` turns
    multi-band files into one grey band with ITU-R 601 luma, as PIL's ``convert("L")`` does.
    """

    driver: Literal["GTiff", "PNG"]
    min_bands: int
    max_bands: int | None
    dtypes: tuple[str, ...]
    value_range: tuple[float, float] | None
    nan_to_zero: bool = False
    scale: float = 1.0
    grey: bool = False


@dataclass(frozen=True)
class MaskCoding:
    """How mask values map to class ids.

    Values ``0..num_classes-1`` and the ignore index are always accepted; ``raw_codes`` adds
    values that map to a class (raw CaFFe zones 0/64/127/254); ``binarize`` makes every value
    above 0 class 1 (Shelf-Bench).
    """

    raw_codes: tuple[tuple[int, int], ...] = ()
    binarize: bool = False


@dataclass(frozen=True)
class ChannelPlan:
    """The distinct decoded channels a dataset needs, and each modality's indices into them.

    Two modality bands that read the same file band with the same statistics share a channel,
    so CaFFe's fallback ``optical`` (the grey band x3) costs no extra cache space.
    """

    file_bands: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    modality_channels: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class DatasetSpec:
    """One Cryo-Bench dataset: bands, classes, layout, statistics and provenance.

    ``scenes=True`` marks datasets of large, variable-size images: training takes random crops
    and evaluation covers each whole scene (not the paper-era single centre crop).
    ``paper_views`` pairs a model key with the modality Cryo-Bench's runs fed it where the dataset
    offers several views (SICD's SAR pair or RGB proxy, CaFFe's grey SAR or grey-as-RGB); models
    not listed get a primary modality they read, else the fallback view.
    """

    key: str
    name: str
    task: str
    sensors: tuple[str, ...]
    modalities: tuple[Modality, ...]
    classes: tuple[str, ...]
    ignore_index: int
    tile_size: int
    layout: Layout
    image: ImageFormat
    mask: MaskCoding
    class_distribution: tuple[float, ...] | None
    stats_note: str
    source: str
    citation: str
    scenes: bool = False
    paper_views: tuple[tuple[str, str], ...] = ()
    paper_views_source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def primary_modalities(self) -> tuple[Modality, ...]:
        return tuple(m for m in self.modalities if not m.fallback)

    def paper_view(self, model: str) -> str | None:
        """The view Cryo-Bench's runs fed ``model``, None where they name none."""
        return dict(self.paper_views).get(model)

    def modality(self, name: str) -> Modality:
        for m in self.modalities:
            if m.name == name:
                return m
        raise UnknownNameError(f"modality of {self.key}", name, [m.name for m in self.modalities])

    @property
    def file_band_count(self) -> int:
        """Bands the reader needs from each file to feed every modality (after grey conversion)."""
        return 1 + max(b for m in self.modalities for b in m.file_bands)

    def stored_modalities(self, used: Iterable[str] = ()) -> tuple[str, ...]:
        """The modalities a tile cache holds for a trial reading ``used``: every modality whose
        file bands each accepted file has, plus ``used`` (SICD's RGB proxy reads a third band
        that a 2-band scene lacks, so it is stored only for trials that read it)."""
        wanted = set(used)
        return tuple(
            m.name
            for m in self.modalities
            if m.name in wanted or max(m.file_bands) < self.image.min_bands
        )

    def readable_modalities(self, band_count: int) -> tuple[str, ...]:
        """The modalities a file of ``band_count`` bands (after grey conversion) can feed."""
        return tuple(m.name for m in self.modalities if max(m.file_bands) < band_count)

    def channel_plan(self, modalities: Iterable[str] | None = None) -> ChannelPlan:
        """The distinct channels of ``modalities`` (default: every modality), in spec order."""
        names = None if modalities is None else set(modalities)
        keys: list[tuple[int, float, float]] = []
        per_modality: dict[str, tuple[int, ...]] = {}
        for m in self.modalities:
            if names is not None and m.name not in names:
                continue
            idx = []
            for b, mu, sd in zip(m.file_bands, m.mean, m.std):
                if (b, mu, sd) not in keys:
                    keys.append((b, mu, sd))
                idx.append(keys.index((b, mu, sd)))
            per_modality[m.name] = tuple(idx)
        return ChannelPlan(
            file_bands=tuple(k[0] for k in keys),
            mean=tuple(k[1] for k in keys),
            std=tuple(k[2] for k in keys),
            modality_channels=per_modality,
        )

    def mask_values(self) -> tuple[int, ...]:
        """Every value a mask file may hold (masks with ``binarize`` accept any value)."""
        return tuple(
            sorted(
                {*range(self.num_classes), self.ignore_index, *(r for r, _ in self.mask.raw_codes)}
            )
        )


_CRYOBENCH = (
    "Kaushik, Maurya, Tellman: Cryo-Bench, arXiv 2603.01576 (2026); "
    "code github.com/Sk-2103/Cryo-Bench"
)
_TILES = Layout("{split}/images", "{split}/masks", "name", (".tif", ".tiff"), (".tif", ".tiff"))
_FLOAT = ("float32", "float64")
_INTEGER_OR_FLOAT = ("uint16", "uint8", "int16", "uint32", "int32", "float32", "float64")


def _views(**lists: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((model, view) for view, models in lists.items() for model in models)


# Cryo-Bench's README run lists (pangaea-bench/README.md, commit 41b6115). The encoders both
# datasets ran on their optical view (CaFFe's zone_mapping_optical loop):
_OPTICAL_RUNS = (
    "gfm_swin",
    "prithvi",
    "remoteclip",
    "satlas",
    "scalemae",
    "spectralgpt",
    "ssl4eo_moco",
    "ssl4eo_dino",
    "ssl4eo_data2vec",
    "vit",
    "unet",
)
# SICD: the RGB loop (ai4arctic_rgb) adds ssl4eo_mae and terramind; terramind_large is in the SAR
# loop too, but the paper-era TerraMind config reads S2L2A only, so its SAR run saw zeros. U-Net
# is in neither loop; the later README runs it on sicd_rgb.
_SICD_VIEWS = _views(
    optical=(*_OPTICAL_RUNS, "ssl4eo_mae", "terramind"), sar=("dofa", "croma", "ramen")
)
_SICD_VIEWS_SOURCE = (
    "Cryo-Bench pangaea-bench/README.md, the ai4arctic_rgb and ai4arctic_terramind loops; U-Net "
    "from the later README's sicd_rgb command"
)
# CaFFe: the zone_mapping_optical and zone_mapping_sar loops of the same README.
_CAFFE_VIEWS = _views(
    optical=_OPTICAL_RUNS, sar=("croma", "dofa", "ssl4eo_mae", "terramind", "ramen")
)
_CAFFE_VIEWS_SOURCE = (
    "Cryo-Bench pangaea-bench/README.md, the zone_mapping_optical and zone_mapping_sar loops"
)


def _same(value: float, n: int) -> tuple[float, ...]:
    return (value,) * n


_SPECS = (
    DatasetSpec(
        key="glid",
        name="GLID (glacial lake inventory)",
        task="glacial lake segmentation, Himalaya",
        sensors=("WorldView-2", "Sentinel-2", "Landsat-8", "Gaofen-2"),
        modalities=(
            Modality(
                "optical",
                ("B4", "B3", "B2"),
                (120.0856, 124.7197, 123.1397),
                (74.6460, 74.3500, 76.5471),
                (0, 1, 2),
            ),
        ),
        classes=("Background", "Target"),
        ignore_index=-1,
        tile_size=512,
        layout=Layout("{split}/images", "{split}/masks", "sorted", (), ()),
        image=ImageFormat("GTiff", 3, None, ("uint8",), (0, 255)),
        mask=MaskCoding(),
        class_distribution=None,
        stats_note="Cryo-Bench configs/dataset/glid.yaml (train split); only the first 3 bands "
        "of each file are used; no class distribution published",
        source="huggingface.co/datasets/Sk-21/Cryo-Bench data/GLID.tar.gz (~8.2 GB), "
        "18,367 pairs of 512x512 from 36 scenes",
        citation=_CRYOBENCH,
    ),
    DatasetSpec(
        key="gld",
        name="GLNet glacial lakes",
        task="glacial lake segmentation, Himalaya",
        sensors=("Sentinel-2", "ancillary layers"),
        modalities=(
            Modality(
                "optical",
                ("B2", "B3", "B4", "B8", "B11", "B8A", "B5", "B6", "B7"),
                (1741.88, 1683.51, 1765.57, 1910.06, 1588.44, 18645.66, 25.45, 4865.18, 124.71),
                (1443.36, 1463.06, 1562.94, 1451.65, 1131.96, 2583.56, 14.99, 561.26, 29.54),
                (0, 1, 2, 3, 4, 5, 7, 8, 9),
            ),
            Modality("sar", ("VV",), (174.70,), (30.97,), (6,)),
        ),
        classes=("Background", "Glacial Lake"),
        ignore_index=-1,
        tile_size=300,
        layout=Layout(
            "{split}/image",
            "{split}/mask",
            "name",
            (".tif", ".tiff"),
            (".tif", ".tiff"),
            nested=("GLNet",),
        ),
        image=ImageFormat("GTiff", 10, 10, _INTEGER_OR_FLOAT, None),
        mask=MaskCoding(),
        class_distribution=(0.9703, 0.0297),
        stats_note="Cryo-Bench glnet_dataset.yaml (train split). Raw band 6 is fed as sar VV; "
        "B8A, B5, B6, B7 and VV are placeholder names for ancillary layers (thermal, slope, "
        "elevation, NDWI, SAR coherence; inferred from value ranges). VV range 128..253",
        source="huggingface.co/datasets/Sk-21/Cryo-Bench data/GLD.tar.gz (~1.0 GB), extracts "
        "to GLD/GLNet/{train,val,test}/{image,mask}/*.tif",
        citation=_CRYOBENCH,
    ),
    DatasetSpec(
        key="gsdd",
        name="GSDD (global supraglacial debris)",
        task="supraglacial debris segmentation, global",
        sensors=("Sentinel-2", "slope", "elevation", "velocity"),
        modalities=(
            Modality(
                "optical",
                ("B2", "B3", "B4", "B8", "B11", "B12", "B8A", "B5", "B6", "B7"),
                (0.2004, 0.2163, 0.2235, 0.2415, 0.1830, 0.1761, 0.1813, 0.4101, 0.4689, 0.1117),
                (0.1966, 0.1941, 0.1919, 0.1762, 0.1627, 0.1567, 0.3303, 0.2306, 0.3337, 0.1794),
                tuple(range(10)),
            ),
        ),
        classes=("Background", "Supraglacial Debris"),
        ignore_index=-1,
        tile_size=512,
        layout=Layout(
            "{split}/image", "{split}/mask", "name", (".tif", ".tiff"), (".tif", ".tiff")
        ),
        image=ImageFormat("GTiff", 10, 10, _FLOAT, (0.0, 1.0)),
        mask=MaskCoding(),
        class_distribution=(0.8662, 0.1338),
        stats_note="Cryo-Bench gssd.yaml (train split); values pre-scaled to [0,1]; the "
        "trailing names stand for slope, elevation and velocity layers",
        source="huggingface.co/datasets/Sk-21/Cryo-Bench data/GSDD.tar.gz (~15 GB)",
        citation=_CRYOBENCH,
    ),
    DatasetSpec(
        key="sicd",
        name="AI4Arctic sea ice (stage of development)",
        task="sea ice stage of development segmentation",
        sensors=("Sentinel-1",),
        modalities=(
            Modality(
                "sar",
                ("VV", "VH"),
                (-0.16381396, -0.22024433),
                (0.61435765, 0.37416646),
                (0, 1),
            ),
            Modality(
                "optical",
                ("B4", "B3", "B2"),
                (-0.16381396, -0.22024433, -0.12),
                (0.61435765, 0.37416646, 0.12),
                (0, 1, 2),
                fallback=True,
            ),
        ),
        classes=(
            "open_water",
            "new_ice",
            "young_ice",
            "thin_first_year_ice",
            "thick_first_year_ice",
            "old_ice",
        ),
        ignore_index=255,
        tile_size=512,
        layout=_TILES,
        image=ImageFormat("GTiff", 2, 3, _FLOAT, (-35.0, 5.0), nan_to_zero=True),
        mask=MaskCoding(),
        class_distribution=(0.65, 0.01, 0.025, 0.021, 0.145, 0.132),
        stats_note="Cryo-Bench ai4arctic.yaml (SAR view: bands 1-2) and ai4arctic_rgb.yaml, "
        "later sicd_rgb.yaml (RGB proxy: all three bands fed as B4,B3,B2); values already "
        "standardised; VV,VH are really HH,HV; the third band is unnamed in Cryo-Bench (the "
        "incidence angle, by its README's ancillary list); NaN is read as 0; band minima "
        "-30,-35 and maxima 5,0",
        source="huggingface.co/datasets/torchgeo/ai4artic-sea-ice-challenge (~62 GB); "
        "scenes ~5200x5000 px",
        citation=_CRYOBENCH + "; AI4Arctic Sea Ice Challenge dataset (ESA/DTU, 2022)",
        scenes=True,
        paper_views=_SICD_VIEWS,
        paper_views_source=_SICD_VIEWS_SOURCE,
    ),
    DatasetSpec(
        key="caffe",
        name="CaFFe zone mapping",
        task="glacier calving-front zone segmentation",
        sensors=(
            "ERS-1/2",
            "Envisat",
            "RADARSAT-1",
            "ALOS PALSAR",
            "TerraSAR-X",
            "TanDEM-X",
            "Sentinel-1",
        ),
        modalities=(
            Modality("sar", ("VV",), (73.7227,), (80.7074,), (0,)),
            Modality(
                "optical",
                ("B4", "B3", "B2"),
                _same(73.7227, 3),
                _same(80.7074, 3),
                (0, 0, 0),
                fallback=True,
            ),
        ),
        classes=("NA", "rock", "glacier", "ocean/ice melange"),
        ignore_index=-1,
        tile_size=1024,
        layout=Layout(
            "images/{split}",
            "labels/{split}",
            "name",
            (".png",),
            (".png",),
            mask_name_suffixes=("", "_zones"),
        ),
        image=ImageFormat("PNG", 1, 4, ("uint8",), (0, 255), grey=True),
        mask=MaskCoding(raw_codes=((64, 1), (127, 2), (254, 3))),
        class_distribution=(0.0829, 0.1501, 0.5627, 0.2043),
        stats_note="Cryo-Bench zone_mapping_sar.yaml / zone_mapping_optical.yaml; the optical "
        "variant repeats the grey SAR band x3 (fallback for encoders without SAR); labels "
        "are accepted as 0..3 or as raw CaFFe 0/64/127/254",
        source="PANGAEA doi:10.1594/PANGAEA.940950 (681 SAR images of varying size)",
        citation=_CRYOBENCH + "; Gourmelon et al., ESSD 14, 4287-4313 (2022), "
        "doi:10.5194/essd-14-4287-2022",
        scenes=True,
        paper_views=_CAFFE_VIEWS,
        paper_views_source=_CAFFE_VIEWS_SOURCE,
    ),
    DatasetSpec(
        key="glb",
        name="GLB (global glacial lakes)",
        task="glacial lake segmentation, global",
        sensors=("Sentinel-2", "NDWI", "slope", "elevation", "Sentinel-1"),
        modalities=(
            Modality(
                "optical",
                ("B2", "B3", "B4", "B8", "B11", "B12", "NDWI", "SLOPE", "ELEVATION"),
                (
                    0.21400237643154849,
                    0.2264538755100517,
                    0.25319849295487507,
                    0.28518339885690314,
                    0.3030714130880526,
                    0.2797731585520111,
                    0.5373577892422741,
                    0.3246158615711826,
                    0.425830764969469,
                ),
                (
                    0.21542999694517911,
                    0.2083629700619588,
                    0.21648249557928248,
                    0.20320691161579535,
                    0.2322038567976622,
                    0.22281646341907912,
                    0.33573806858840344,
                    0.21963599403521075,
                    0.26245893360730677,
                ),
                tuple(range(9)),
            ),
            Modality(
                "sar",
                ("VV", "VH"),
                (0.04044295133271959, 0.05490461227539277),
                (0.05841855121829275, 0.0661232383753074),
                (9, 10),
            ),
        ),
        classes=("Background", "Glacial Lake"),
        ignore_index=-1,
        tile_size=256,
        layout=_TILES,
        image=ImageFormat("GTiff", 11, 11, _FLOAT, (0.0, 1.0)),
        mask=MaskCoding(),
        class_distribution=None,
        stats_note="cryobench.md gives no statistics for GLB; these are the later Cryo-Bench "
        "configs/dataset/glb_random.yaml values (commit 3e94454), within the stated 0..1 "
        "range. Its class distribution 0.5/0.5 is a placeholder, so none is given. File "
        "bands: 9 optical then VV, VH (as glb_random.py splits them)",
        source="huggingface.co/datasets/Sk-21/Cryo-Bench data/GLB.tar.gz (~44 GB); "
        "train 15,300 / val 1,912 / test 1,907 (third-party count); the HF copy has 6 test "
        "pairs more than the Zenodo release and the random split leaks scenes",
        citation=_CRYOBENCH,
    ),
    DatasetSpec(
        key="shelf",
        name="Shelf-Bench ice shelves",
        task="ice shelf segmentation",
        sensors=("grey image",),
        modalities=(
            Modality("optical", ("B2",), (0.5,), (0.5,), (0,)),
            Modality("sar", ("VV",), (0.5,), (0.5,), (0,)),
        ),
        classes=("Background", "Ice Shelf"),
        ignore_index=-1,
        tile_size=256,
        layout=Layout("{split}/images", "{split}/masks", "name", (".png",), (".png",)),
        image=ImageFormat("PNG", 1, 4, ("uint8",), (0, 255), scale=1 / 255, grey=True),
        mask=MaskCoding(binarize=True),
        class_distribution=None,
        stats_note="Cryo-Bench shelf_bench.yaml: image /255 then mean 0.5, std 0.5 (the "
        "config's generic values, not measured); the same grey band feeds optical B2 and "
        "sar VV; mask = value > 0; class distribution not published",
        source="Shelf-Bench (later Cryo-Bench repository); no archive URL in the spec",
        citation=_CRYOBENCH,
    ),
)

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({s.key: s for s in _SPECS})


def get_dataset(key: str) -> DatasetSpec:
    try:
        return DATASETS[key]
    except KeyError:
        raise UnknownNameError("dataset", key, DATASETS) from None
