"""Filters designed once give what scipy gives when designed on every call."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from auscult.filters import butter, zero_phase

#: The zero-phase filters in use: the 25–950 Hz band at 2 kHz, the envelope smoothers of the
#: quality check (4 Hz) and the segmentation (8 Hz) at 50 Hz, the listening "bell" at 8 kHz,
#: and the ECG's band, baseline, noise and QRS filters at 360 Hz.
IN_USE = [
    (4, (25.0, 950.0), "bandpass", 2000),
    (2, 4.0, "lowpass", 50),
    (2, 8.0, "lowpass", 50),
    (4, (25.0, 400.0), "bandpass", 8000),
    (2, (0.5, 40.0), "bandpass", 360),
    (2, 0.5, "highpass", 360),
    (2, 40.0, "highpass", 360),
    (2, (5.0, 25.0), "bandpass", 360),
]


@pytest.mark.parametrize("design", IN_USE)
@pytest.mark.parametrize("length", [60_000, 1_500, 40])
def test_zero_phase_is_sosfiltfilt_bit_for_bit(design, length):
    x = np.random.default_rng(length).normal(size=length).cumsum()  # drifting, like a level
    f = zero_phase(*design)
    if length <= f.edge:
        pytest.skip("shorter than the padding")
    np.testing.assert_array_equal(f(x), sps.sosfiltfilt(butter(*design), x))


def test_float32_input_is_filtered_in_float64_like_scipy():
    x = np.random.default_rng(1).normal(size=5_000).astype(np.float32)
    f = zero_phase(*IN_USE[0])
    np.testing.assert_array_equal(f(x), sps.sosfiltfilt(f.sos, x.astype(np.float64)))


def test_a_signal_no_longer_than_the_padding_is_refused_as_scipy_refuses_it():
    f = zero_phase(*IN_USE[1])
    with pytest.raises(ValueError, match="longer than"):
        f(np.ones(f.edge))
    with pytest.raises(ValueError, match="padlen"):
        sps.sosfiltfilt(f.sos, np.ones(f.edge))
