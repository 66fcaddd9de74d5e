import numpy as np
import pytest

from edgefleet.dsp import FeatureError, frame, window_count


def test_frame_cuts_overlapping_windows_in_order() -> None:
    samples = np.arange(20, dtype=float).reshape(10, 2)
    windows = frame(samples, window=4, hop=3)
    assert windows.shape == (3, 4, 2) == (window_count(10, 4, 3), 4, 2)
    np.testing.assert_array_equal(windows[1], samples[3:7])
    np.testing.assert_array_equal(windows[2], samples[6:10])
    windows[0, 0, 0] = -1  # a copy, not a view
    assert samples[0, 0] == 0


def test_too_short_gives_no_window_and_bad_arguments_raise() -> None:
    assert frame(np.zeros((3, 1)), 4, 1).shape == (0, 4, 1)
    with pytest.raises(FeatureError):
        window_count(10, 0, 1)
    with pytest.raises(FeatureError):
        frame(np.zeros(10), 4, 1)
