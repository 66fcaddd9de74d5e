import numpy as np

from edgefleet.dsp import dequantize, quantize, reconstruction_score, standardize


def test_quantize_rounds_half_away_from_zero_and_clips() -> None:
    q = quantize([0.25, -0.25, 0.75, 100.0, -100.0, 0.0], scale=0.5, zero_point=1)
    assert q.dtype == np.int8
    assert q.tolist() == [2, 0, 3, 127, -128, 1]


def test_dequantize_inverts_quantize_within_half_a_step() -> None:
    x = np.linspace(-3, 3, 101)
    back = dequantize(quantize(x, 0.05, -3), 0.05, -3)
    assert np.max(np.abs(back - x)) <= 0.025 + 1e-6


def test_score_is_mse_in_standardized_space() -> None:
    z = standardize([[3.0, 10.0]], mean=[1.0, 10.0], std=[2.0, 5.0])
    assert z.tolist() == [[1.0, 0.0]]
    assert reconstruction_score(z, [[0.0, 2.0]]).tolist() == [2.5]
