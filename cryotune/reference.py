"""The paper's frozen-encoder mIoU per model and dataset, shown beside tuned results.

Cryo-Bench reports what each encoder reaches frozen (depth 0, 100% labels, fixed learning rate);
a tuned result is read against it. Keys are cryotune's model and dataset keys; the table also
holds encoders cryotune does not build (yet), so the reference stays complete.
"""

from __future__ import annotations

PAPER_SOURCE = (
    "Cryo-Bench (Kaushik, Maurya, Tellman, arXiv 2603.01576, 2026), frozen encoders, "
    "100% labels, mIoU (paper / README table)"
)

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
