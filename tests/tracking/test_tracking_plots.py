"""The pair plots draw from plain data, edge cases included (a class never seen, one trial)."""

from __future__ import annotations

import numpy as np

from cryotune.tracking import plots


def _picture(path) -> np.ndarray:
    """The PNG decoded as a viewer would (height, width, channels)."""
    from matplotlib import image

    return image.imread(path)


def test_every_plot_is_a_picture_even_from_sparse_data(tmp_path):
    confusion = plots.confusion_matrix_png(
        [[5, 1, 0], [0, 0, 0], [2, 0, 9]], ["a", "never seen", "c"], tmp_path / "c.png", "t"
    )
    points = [
        plots.TrialPoint(0, "pruned", 12.0, 1e-4, 0),
        plots.TrialPoint(1, "complete", 40.0, 3e-4, None),
        plots.TrialPoint(2, "complete", 35.0, 1e-3, 6),
    ]
    history = plots.optimization_history_png(points, tmp_path / "h.png", "t")
    lr = plots.val_miou_vs_lr_png(points, tmp_path / "lr.png", "t")
    empty = plots.optimization_history_png([], tmp_path / "empty.png", "t")
    np.savez(
        tmp_path / "preview.npz",
        image=np.random.default_rng(0).random((16, 16)).astype(np.float32),
        label=np.where(np.eye(16, dtype=np.int16) > 0, 255, 1).astype(np.int16),
        prediction=np.zeros((16, 16), np.int16),
        classes=np.array(["background", "ice"]),
        ignore_index=np.int16(255),
    )
    preview = plots.prediction_preview_png(tmp_path / "preview.npz", tmp_path / "p.png", "t")
    for path in (confusion, history, lr, empty, preview):
        picture = _picture(path)
        assert picture.ndim == 3 and min(picture.shape[:2]) >= 200, path.name
        assert len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 8, path.name
    # the preview shows the image, the label and the prediction side by side
    assert _picture(preview).shape[1] > 2 * _picture(preview).shape[0]
