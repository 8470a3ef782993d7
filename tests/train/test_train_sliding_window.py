"""Sliding-window inference: equivalence with one pass, coverage, averaging of overlaps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cryotune.train.sliding_window import sliding_window_logits, window_origins


class PixelwiseConv(nn.Module):
    """A 1x1 convolution: translation-equivariant with no border effects."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, classes, kernel_size=1)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["optical"]
        self.calls.append(tuple(x.shape))
        return self.conv(x)


class Ones(nn.Module):
    """Logits of 1 everywhere: summing windows counts how often each pixel is covered."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["optical"]
        return x.new_ones(x.shape[0], self.classes, *x.shape[-2:])


class WindowIndex(nn.Module):
    """Each window's logits equal the index of the window in the batch of windows."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["optical"]
        idx = torch.arange(x.shape[0], dtype=torch.float32).view(-1, 1, 1, 1)
        return idx.expand(x.shape[0], 1, *x.shape[-2:]).clone()


def test_window_origins_are_evenly_spaced_and_reach_the_end():
    assert window_origins(100, 32) == [0, 23, 45, 68]  # ceil(100/32) = 4 windows
    assert window_origins(64, 32) == [0, 32]
    assert window_origins(32, 32) == [0]
    assert window_origins(20, 32) == [0]


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (20, 45)])
def test_equivariant_model_gives_the_same_output_as_one_full_pass(size):
    model = PixelwiseConv(3, 4).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        full = model({"optical": x})
        windows = sliding_window_logits(model, {"optical": x}, window=16, num_classes=4)
    assert windows.shape == (2, 4, *size)
    torch.testing.assert_close(windows, full, rtol=1e-5, atol=1e-5)


def test_every_pixel_is_covered_and_overlaps_are_averaged():
    x = torch.zeros(1, 1, 40, 50)
    out = sliding_window_logits(Ones(2), {"optical": x}, window=16, num_classes=2)
    assert torch.all(out == 1.0)  # average of ones is one: every pixel covered at least once

    # rows: ceil(40/16)=3 origins 0,12,24; cols: ceil(50/16)=4 origins 0,11,23,34
    out = sliding_window_logits(WindowIndex(), {"optical": x}, window=16, num_classes=1)
    # pixel (0, 0) is only in window 0; pixel (14, 0) is in row windows 0 and 1 (ids 0 and 4)
    assert out[0, 0, 0, 0] == 0.0
    assert out[0, 0, 14, 0] == pytest.approx((0 + 4) / 2)
    # pixel (14, 13) is in windows (0,0),(0,1),(1,0),(1,1) -> ids 0, 1, 4, 5
    assert out[0, 0, 14, 13] == pytest.approx((0 + 1 + 4 + 5) / 4)
    # bottom-right corner is only in the last window (id 11)
    assert out[0, 0, 39, 49] == pytest.approx(11.0)


def test_inputs_smaller_than_the_window_are_padded_and_cropped_back():
    model = PixelwiseConv(2, 3)
    x = torch.randn(1, 2, 10, 12)
    with torch.no_grad():
        out = sliding_window_logits(model, {"optical": x}, window=16, num_classes=3)
        full = model({"optical": x})
    assert model.calls[0] == (1, 2, 16, 16)
    assert out.shape == (1, 3, 10, 12)
    torch.testing.assert_close(out, full)


def test_window_none_runs_the_whole_input_once():
    model = PixelwiseConv(3, 2)
    x = torch.randn(1, 3, 33, 21)
    with torch.no_grad():
        out = sliding_window_logits(model, {"optical": x}, window=None, num_classes=2)
    assert model.calls == [(1, 3, 33, 21)]
    assert out.shape == (1, 2, 33, 21)


def test_max_batch_splits_windows_without_changing_the_result():
    model = PixelwiseConv(3, 2)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        a = sliding_window_logits(model, {"optical": x}, window=16, num_classes=2)
        model.calls.clear()
        b = sliding_window_logits(model, {"optical": x}, window=16, num_classes=2, max_batch=5)
    assert [c[0] for c in model.calls] == [5, 5, 5, 3]  # 2 images x 9 windows
    torch.testing.assert_close(a, b)


def test_wrong_logit_shape_is_reported():
    with pytest.raises(ValueError, match="expected"):
        sliding_window_logits(Ones(3), {"optical": torch.zeros(1, 1, 8, 8)}, None, num_classes=2)
