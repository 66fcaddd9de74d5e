import numpy as np
import pytest

from edgefleet.edge.windowing import Windower


@pytest.mark.parametrize(("window", "hop"), [(8, 8), (8, 4), (8, 11)])
@pytest.mark.parametrize("chunk", [1, 3, 8, 50])
def test_windows_do_not_depend_on_chunking(window: int, hop: int, chunk: int) -> None:
    samples = np.arange(100 * 2, dtype=float).reshape(100, 2)
    w = Windower(window, hop, 2)
    got = []
    for i in range(0, 100, chunk):
        got += [x for x, _ in w.push(samples[i : i + chunk])]
    starts = list(range(0, 100 - window + 1, hop))
    assert len(got) == len(starts)
    for start, win in zip(starts, got, strict=True):
        np.testing.assert_array_equal(win, samples[start : start + window])


def test_timestamps_travel_with_samples_and_reset_drops_partial_window() -> None:
    w = Windower(4, 4, 1)
    assert w.push(np.zeros(3), np.arange(3.0)) == []
    w.reset()
    out = w.push(np.ones(4), np.arange(10.0, 14.0))
    assert len(out) == 1
    np.testing.assert_array_equal(out[0][1], [10, 11, 12, 13])


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(ValueError):
        Windower(1, 1, 1)
