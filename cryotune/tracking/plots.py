"""The pair run's PNGs: the best trial's confusion matrix and prediction preview, and the study's
optimisation history and val mIoU over learning rate coloured by depth.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend), from plain
data: the record, the study's trials and the best trial's ``preview.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryotune.observer import COMPLETE, PRUNED, TrialPoint


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def confusion_matrix_png(matrix: list[list[int]], classes: list[str], path: Path, title: str):
    """Rows (targets) normalised to 1, so each row reads as where that class's pixels went."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 2.5 + 0.6 * len(classes)
    figure = _figure(size + 1, size)
    ax = figure.subplots()
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("prediction")
    ax.set_ylabel("target")
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                f"{share[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_title(title)
    figure.colorbar(image, ax=ax, label="share of the target's pixels")
    return _save(figure, path)


def prediction_preview_png(preview: Path, path: Path, title: str) -> Path:
    """The tile's bands, its label and the prediction side by side, in one class palette."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    data = np.load(preview)
    classes = [str(c) for c in data["classes"]]
    label = np.ma.masked_equal(data["label"], int(data["ignore_index"]))
    palette = ListedColormap(colormaps["tab10"](np.arange(len(classes)) % 10))
    figure = _figure(11, 4)
    axes = figure.subplots(1, 3)
    image = data["image"]
    axes[0].imshow(image, cmap="gray" if image.ndim == 2 else None)
    axes[0].set_title("image")
    shown = {"vmin": -0.5, "vmax": len(classes) - 0.5, "cmap": palette, "interpolation": "nearest"}
    axes[1].imshow(label, **shown)
    axes[1].set_title("label")
    axes[2].imshow(data["prediction"], **shown)
    axes[2].set_title("prediction")
    for ax in axes:
        ax.set_axis_off()
    handles = [Patch(color=palette(k), label=name) for k, name in enumerate(classes)]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(classes), 5))
    figure.suptitle(title)
    return _save(figure, path)


def optimization_history_png(points: list[TrialPoint], path: Path, title: str) -> Path:
    """Val mIoU per trial number (pruned trials at the epoch they stopped) and the best so far."""
    figure = _figure(7, 4)
    ax = figure.subplots()
    for state, marker in ((COMPLETE, "o"), (PRUNED, "x")):
        chosen = [p for p in points if p.outcome == state]
        if chosen:
            ax.scatter(
                [p.number for p in chosen],
                [p.val_miou for p in chosen],
                marker=marker,
                label=state,
            )
    steps, best, so_far = [], [], None
    for point in sorted(points, key=lambda p: p.number):
        if point.outcome == COMPLETE:
            so_far = point.val_miou if so_far is None else max(so_far, point.val_miou)
        if so_far is not None:
            steps.append(point.number)
            best.append(so_far)
    if steps:
        ax.step(steps, best, where="post", color="black", label="best so far")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial number")
    ax.set_ylabel("val mIoU")
    ax.set_title(title)
    if points:
        ax.legend()
    return _save(figure, path)


def val_miou_vs_lr_png(points: list[TrialPoint], path: Path, title: str) -> Path:
    """Val mIoU over learning rate (log scale), one colour per finetuning depth."""
    figure = _figure(7, 4)
    ax = figure.subplots()
    depths = sorted({p.depth for p in points if p.lr is not None}, key=lambda d: (d is None, d))
    for depth in depths:
        chosen = [p for p in points if p.depth == depth and p.lr is not None]
        for state, marker in ((COMPLETE, "o"), (PRUNED, "x")):
            some = [p for p in chosen if p.outcome == state]
            if some:
                ax.scatter(
                    [p.lr for p in some],
                    [p.val_miou for p in some],
                    marker=marker,
                    color=f"C{depths.index(depth) % 10}",
                    label=f"depth {'default' if depth is None else depth} ({state})",
                )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("val mIoU")
    ax.set_title(title)
    if depths:
        ax.legend(fontsize="small")
    return _save(figure, path)
