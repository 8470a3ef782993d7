"""Which bands a prediction preview shows, and how they are stretched for display."""

from __future__ import annotations

import numpy as np

from cryotune.train.preview import display_image, display_slots


def test_the_real_bands_nearest_red_green_blue_are_shown():
    wavelengths = (0.443, 0.49, 0.56, 0.665, 0.842, 1.61)
    assert display_slots(wavelengths, (0, 1, 2, 3, 4, 5)) == [3, 2, 1]
    assert display_slots(wavelengths, (0, None, 2, None, 4, 5)) == [4, 2, 0]  # no filled band
    assert display_slots(wavelengths, (None, None, 0, None, 1, None)) == [2]  # grey
    assert display_slots((0.1,), (None,)) == [0]


def test_display_bands_are_stretched_to_0_1_and_a_flat_band_is_black():
    bands = np.stack([np.linspace(-3, 3, 100).reshape(10, 10), np.full((10, 10), 7.0)])
    image = display_image(bands[:1])
    assert image.shape == (10, 10) and image.min() == 0 and image.max() == 1
    assert display_image(np.concatenate([bands, bands[:1]])).shape == (10, 10, 3)
    assert not display_image(bands[1:]).any()
