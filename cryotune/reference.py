"""The paper's frozen-encoder mIoU per model and dataset, shown beside tuned results.

Cryo-Bench reports what each encoder reaches frozen (depth 0, 100% labels, fixed learning rate);
a tuned result is read against it. Keys are cryotune's model and dataset keys; the table also
holds encoders cryotune does not build (yet), so the reference stays complete.
"""

from __future__ import annotations

PROTOCOL_DOC = "docs/protocol.md"

PAPER_SOURCE = (
    "Cryo-Bench (Kaushik, Maurya, Tellman, arXiv 2603.01576, 2026), frozen encoders, "
    "100% labels, mIoU (paper / README table at commit 41b6115); its SICD column is the "
    "paper-era protocol: one centre crop per scene for training and testing (512 px SAR view, "
    "224 px RGB proxy), about 1% of each test scene, where cryotune tests whole scenes; how "
    f"cryotune's protocol differs: {PROTOCOL_DOC}"
)

LATER_SOURCE = (
    "Cryo-Bench's later root README (six-dataset table, after commit 41b6115; the revision "
    "could not be pinned to a commit): frozen encoders, 100% labels, mIoU; SICD re-run with "
    "whole-scene tiling (sicd_sar / sicd_rgb configs), GLD replaced by GLB, RAMEN removed"
)

PROTOCOL_NOTES = {
    "sicd": "paper: one centre crop per scene (about 1% of each test scene); cryotune: whole "
    "scenes, like the later README's re-run",
    "caffe": "paper: edge-aligned test tiles, their overlap at the right and bottom edges "
    "counted twice; cryotune: every pixel once",
}
"""Per dataset, how the paper's number was measured where that differs from cryotune's."""

_DATASETS = ("glid", "gld", "sicd", "caffe", "gsdd")
_ROWS = {
    "croma": (78.52, 76.84, 24.84, 42.03, 74.15),
    "dofa": (92.61, 80.44, 19.20, 50.71, 72.96),
    "gfm_swin": (89.68, 72.42, 18.98, 58.13, 73.00),
    "prithvi": (71.11, 75.84, 20.59, 32.01, 70.52),
    "remoteclip": (90.88, 69.52, 22.71, 56.64, 73.42),
    "satlas": (77.02, 77.11, 24.04, 33.96, 73.70),
    "scalemae": (90.13, 72.65, 12.90, 58.19, 73.47),
    "spectralgpt": (70.87, 78.90, 15.98, 32.70, 73.22),
    "ssl4eo_moco": (75.51, 77.38, 26.09, 36.21, 73.03),
    "ssl4eo_dino": (75.69, 75.91, 27.28, 35.58, 71.19),
    "ssl4eo_mae": (75.71, 77.39, 20.63, 36.99, 73.51),
    "ssl4eo_data2vec": (75.19, 77.10, 24.15, 35.96, 73.68),
    "terramind": (88.26, 79.10, 31.48, 46.64, 74.63),
    "ramen": (82.17, 73.67, 16.52, 25.10, 70.56),
    "unet": (91.58, 77.51, 29.11, 59.82, 73.89),
    "vit": (71.58, 80.18, 16.17, 39.90, 74.41),
}

PAPER_FROZEN_MIOU: dict[str, dict[str, float]] = {
    model: dict(zip(_DATASETS, values, strict=True)) for model, values in _ROWS.items()
}
"""model key -> dataset key -> mIoU (percent)."""


def paper_frozen_miou(dataset: str, model: str) -> float | None:
    """The paper's frozen-encoder mIoU of a model on a dataset, None where it reports none."""
    return PAPER_FROZEN_MIOU.get(model, {}).get(dataset)


_LATER_DATASETS = ("gsdd", "glid", "glb", "sicd", "caffe", "shelf")
_LATER_ROWS = {
    "unet": (73.89, 91.58, 80.46, 27.17, 59.82, 82.97),
    "terramind": (74.63, 88.26, 79.91, 33.27, 46.64, 84.46),
    "remoteclip": (73.42, 90.89, 78.09, 24.25, 56.64, 83.59),
    "dofa": (72.96, 92.61, 79.39, 20.41, 50.71, 87.08),
    "gfm_swin": (73.00, 89.69, 78.42, 14.17, 58.12, 85.63),
    "scalemae": (73.47, 90.91, 79.16, 9.74, 58.19, 83.28),
    "croma": (74.15, 78.52, 77.68, 21.81, 42.03, 81.15),
    "vit": (74.41, 78.14, 79.81, 15.58, 40.25, 81.86),
    "ssl4eo_moco": (73.03, 75.51, 75.45, 19.86, 36.21, 74.97),
    "satlas": (73.70, 77.03, 74.74, 19.62, 33.96, 73.00),
    "ssl4eo_mae": (73.51, 75.71, 75.43, 12.28, 36.99, 75.93),
    "ssl4eo_data2vec": (73.68, 75.19, 74.59, 11.49, 35.96, 75.79),
    "ssl4eo_dino": (71.19, 75.69, 75.17, 12.74, 35.58, 75.28),
    "prithvi": (70.52, 71.11, 74.96, 12.58, 32.01, 74.41),
    "spectralgpt": (73.22, 70.87, 72.82, 14.39, 32.70, 66.75),
}

LATER_FROZEN_MIOU: dict[str, dict[str, float]] = {
    model: dict(zip(_LATER_DATASETS, values, strict=True)) for model, values in _LATER_ROWS.items()
}
"""model key -> dataset key -> mIoU (percent), from the later README (``LATER_SOURCE``)."""


def later_frozen_miou(dataset: str, model: str) -> float | None:
    """The later README's frozen-encoder mIoU, None where it reports none."""
    return LATER_FROZEN_MIOU.get(model, {}).get(dataset)


PAPER_DATASETS = _DATASETS
"""The paper table's columns, in its order."""
PAPER_MODELS = tuple(_ROWS)
"""The paper table's rows, in its order."""

DATASET_LABELS = {
    "glid": "GLID",
    "gld": "GLD",
    "sicd": "SICD",
    "caffe": "CaFFe",
    "gsdd": "GSDD",
    "glb": "GLB",
    "shelf": "Shelf-Bench",
}
"""Column names as the Cryo-Bench tables print them."""

MODEL_LABELS = {
    "croma": "CROMA",
    "dofa": "DOFA",
    "gfm_swin": "GFM-Swin",
    "prithvi": "Prithvi",
    "remoteclip": "RemoteCLIP",
    "satlas": "SatlasNet",
    "scalemae": "Scale-MAE",
    "spectralgpt": "SpectralGPT",
    "ssl4eo_moco": "S12-MoCo",
    "ssl4eo_dino": "S12-DINO",
    "ssl4eo_mae": "S12-MAE",
    "ssl4eo_data2vec": "S12-Data2Vec",
    "terramind": "TerraMind",
    "ramen": "RAMEN",
    "unet": "U-Net",
    "vit": "ViT",
    "prithvi_eo2": "Prithvi-EO-2.0",
    "thor": "THOR",
}
"""Row names as the Cryo-Bench tables print them (the later models as the later README would)."""
