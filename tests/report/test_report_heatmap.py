"""The heatmap: above the reference reads blue, below red, no result grey, as a viewer sees it."""

from __future__ import annotations

import numpy as np

from cryotune.reference import PAPER_FROZEN_MIOU
from cryotune.report.heatmap import difference_grid, heatmap_png
from cryotune.report.table import build_report


def _picture(path) -> np.ndarray:
    from matplotlib import image

    return image.imread(path)


def _cell_colour(picture: np.ndarray, box, row: int, column: int, rows: int, columns: int):
    """The colour at the centre-left of a cell (away from its label) in the image's box."""
    x0, y0, x1, y1 = box
    x = x0 + (column + 0.15) * (x1 - x0) / columns
    y = y0 + (row + 0.5) * (y1 - y0) / rows
    return picture[int(y), int(x), :3]


def test_the_difference_to_the_paper_reads_as_colour(record, tmp_path):
    paper = PAPER_FROZEN_MIOU
    report = build_report(
        [
            record("a", "glid", "dofa", val=1.0, test=paper["dofa"]["glid"] + 8),
            record("a", "caffe", "dofa", val=1.0, test=paper["dofa"]["caffe"] - 8),
        ],
        title="t",
        scope="s",
        sweeps=["a"],
        datasets=["glid", "caffe", "gsdd"],
    )
    grid = difference_grid(report)
    assert grid.shape == (1, 4) and np.isnan(grid[0, 2]) and grid[0, 3] == 0
    path = heatmap_png(report, tmp_path / "heat.png")
    picture = _picture(path)
    assert picture.ndim == 3 and min(picture.shape[:2]) >= 100
    # find the plotted grid: the widest run of non-white rows and columns inside the axes
    painted = np.abs(picture[..., :3] - 1).sum(axis=-1) > 0.05
    columns = np.flatnonzero(painted.mean(axis=0) > 0.5)
    rows = np.flatnonzero(painted[:, columns].mean(axis=1) > 0.9)
    box = (columns.min(), rows.min(), columns.max(), rows.max())
    above = _cell_colour(picture, box, 0, 0, 1, 4)
    below = _cell_colour(picture, box, 0, 1, 1, 4)
    missing = _cell_colour(picture, box, 0, 2, 1, 4)
    assert above[2] > above[0] + 0.2  # blue
    assert below[0] > below[2] + 0.2  # red
    assert abs(missing[0] - missing[2]) < 0.05 and missing[0] < 0.95  # grey
