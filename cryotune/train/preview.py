"""A prediction preview of a trained trial: one validation tile, its label and the prediction.

Written as ``preview.npz`` in the trial folder after the test pass, so the sweep can draw it
without a model: ``image`` (H, W, 3) or (H, W) in 0..1 from up to three of the tile's bands
(those nearest the visible range), ``label`` and ``prediction`` (H, W) class ids (the label
keeps the ignore index), ``classes`` and ``ignore_index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryotune.files import replacing
from cryotune.train.sliding_window import sliding_window_logits

PREVIEW_FILE = "preview.npz"
VISIBLE_UM = 0.57


def display_slots(wavelengths: tuple[float, ...], sources: tuple[int | None, ...]) -> list[int]:
    """Up to three input slots holding real (not zero-filled) bands: the three nearest the
    visible range, longest wavelength first (shown as red), else one band shown grey."""
    real = [j for j, s in enumerate(sources) if s is not None] or [0]
    if len(real) < 3:
        return real[:1]
    nearest = sorted(real, key=lambda j: abs(wavelengths[j] - VISIBLE_UM))[:3]
    return sorted(nearest, key=lambda j: -wavelengths[j])


def display_image(bands: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, C) or (H, W), each band stretched between its 2nd and 98th percentile."""
    out = np.empty(bands.shape, dtype=np.float32)
    for c, band in enumerate(bands):
        low, high = np.percentile(band, (2, 98))
        out[c] = np.clip((band - low) / (high - low), 0, 1) if high > low else 0.0
    return out[0] if len(out) == 1 else np.moveaxis(out, 0, -1)


@torch.no_grad()
def write_preview(
    model: torch.nn.Module,
    val_data,
    mapping,
    classes: tuple[str, ...],
    window: int | None,
    runtime,
    folder: Path,
    max_batch: int | None = None,
) -> Path | None:
    """Predict the first validation tile with ``model`` and save the preview; None if no tiles."""
    if len(val_data) == 0:
        return None
    item = val_data[0]
    inputs = {k: v.unsqueeze(0) for k, v in item["inputs"].items()}
    model.eval()
    with runtime.autocast():
        logits = sliding_window_logits(
            model, runtime.to_device(inputs), window, len(classes), max_batch
        )
    prediction = logits.argmax(dim=1)[0].cpu().numpy().astype(np.int16)
    modality = next(iter(item["inputs"]))
    slots = display_slots(mapping.wavelengths[modality], mapping.sources[modality])
    image = display_image(item["inputs"][modality][slots].numpy())
    path = Path(folder) / PREVIEW_FILE
    with replacing(path, fsync=False) as temp, temp.open("wb") as out:
        np.savez_compressed(
            out,
            image=image,
            label=item["mask"].numpy().astype(np.int16),
            prediction=prediction,
            classes=np.array(classes),
            ignore_index=np.int16(val_data.ignore_index),
        )
    return path
