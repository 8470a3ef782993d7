"""The report's difference to the reference as a PNG heatmap: models as rows, datasets and the
average as columns, a diverging palette centred on zero (blue: above the reference, red: below),
every cell labelled with its difference or its state.

Drawn with matplotlib's object API on the Agg canvas, as the pair plots (``tracking.plots``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryotune.report.models import Report

PALETTE = "RdBu"
"""Diverging: red below the reference, blue above, white at zero."""
MIN_SPAN = 5.0
"""The palette reaches full colour at this many points or at the largest difference, whichever
is larger, so a small difference stays a pale colour."""


def difference_grid(report: Report) -> np.ndarray:
    """Rows x (columns + average) of differences in points; NaN where there is none."""
    grid = [
        [np.nan if c.difference is None else c.difference for c in row.cells]
        + [np.nan if row.average.difference is None else row.average.difference]
        for row in report.rows
    ]
    return np.asarray(grid, dtype=float).reshape(len(report.rows), len(report.columns) + 1)


def heatmap_png(report: Report, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    grid = difference_grid(report)
    labels = [c.label for c in report.columns] + ["avg"]
    width = 2.5 + 1.3 * len(labels)
    height = 1.6 + 0.45 * max(1, len(report.rows))
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    finite = grid[np.isfinite(grid)]
    span = max(MIN_SPAN, float(np.abs(finite).max())) if finite.size else MIN_SPAN
    palette = colormaps[PALETTE].with_extremes(bad="#e6e6e6")
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=palette,
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span),
        aspect="auto",
    )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(report.rows)), [r.label for r in report.rows])
    ax.xaxis.tick_top()
    for i, row in enumerate(report.rows):
        texts = [_label(c.state, c.difference) for c in row.cells]
        texts.append(_label("complete", row.average.difference))
        for j, text in enumerate(texts):
            value = grid[i, j]
            strong = np.isfinite(value) and abs(value) > 0.6 * span
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize="small",
                color="white" if strong else "black",
            )
    ax.set_title(f"{report.title}\ntuned test mIoU minus the reference (points)", fontsize="medium")
    figure.colorbar(image, ax=ax, label="mIoU points")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _label(state: str, difference: float | None) -> str:
    if state != "complete":
        return state
    return "-" if difference is None else f"{difference:+.1f}"
