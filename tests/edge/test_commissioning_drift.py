import numpy as np
import pytest
from pydantic import ValidationError

from edgefleet.edge.commissioning import Baseline, Commissioner, CommissioningConfig
from edgefleet.edge.drift import DriftConfig, DriftMonitor


def _mse_score(features: np.ndarray, baseline: Baseline) -> np.ndarray:
    z = (features - baseline.mean) / baseline.std
    return np.asarray((z**2).mean(axis=1))


def test_commissioning_learns_field_normalization_and_threshold() -> None:
    rng = np.random.default_rng(0)
    card = Baseline(np.zeros(4), np.ones(4), threshold=2.0, commissioned=False)
    c = Commissioner(CommissioningConfig(windows=2000, min_std_fraction=0.01), card, card_target_far=0.01)
    field = rng.normal(loc=[5, -3, 0, 1], scale=[2, 0.5, 1, 3], size=(2000, 4))
    # before commissioning the lab normalization flags nearly everything
    assert (_mse_score(field, card) > card.threshold).mean() > 0.5
    assert c.add(field[:1000], _mse_score) is None and c.active
    assert 0.49 < c.progress < 0.51
    new = c.add(field[1000:], _mse_score)
    assert new is not None and new.commissioned and not c.active
    np.testing.assert_allclose(new.mean, [5, -3, 0, 1], atol=0.2)
    fresh = rng.normal(loc=[5, -3, 0, 1], scale=[2, 0.5, 1, 3], size=(20000, 4))
    far = (_mse_score(fresh, new) > new.threshold).mean()
    assert 0.005 < far < 0.02  # the target false-alarm rate of the card, 1%


def test_commissioning_never_tightens_below_the_lab_spread_by_default() -> None:
    card = Baseline(np.zeros(2), np.array([1.0, 2.0]), threshold=1.0, commissioned=False)
    c = Commissioner(CommissioningConfig(windows=10), card, 0.01)
    new = c.add(np.tile([3.0, 4.0], (10, 1)), _mse_score)  # a perfectly constant field
    assert new is not None
    np.testing.assert_allclose(new.std, [1.0, 2.0])


def test_recommission_restarts_with_a_new_count() -> None:
    card = Baseline(np.zeros(1), np.ones(1), 1.0, False)
    c = Commissioner(CommissioningConfig(windows=0), card, 0.01)
    assert not c.active and c.add(np.zeros((5, 1)), _mse_score) is None
    with pytest.raises(ValidationError, match="at least 8"):
        c.restart(windows=3)
    assert not c.active and c.config.windows == 0
    c.restart(windows=10)
    assert c.active
    assert c.add(np.ones((6, 1)), _mse_score) is None
    assert c.add(np.ones((6, 1)), _mse_score) is not None  # takes the 4 it still needs


def test_drift_rises_on_a_shift_and_clears_when_it_goes_back() -> None:
    rng = np.random.default_rng(1)
    m = DriftMonitor(DriftConfig(halflife_windows=20, limit=1.5, clear_below=0.5, min_windows=10))
    assert m.update(rng.normal(size=(5, 6))) is None and m.value is None
    changes = [m.update(rng.normal(size=(1, 6))) for _ in range(100)]
    assert True not in changes and m.value is not None and m.value < 0.7
    changes = [m.update(rng.normal(loc=3.0, size=(1, 6))) for _ in range(100)]
    assert changes.count(True) == 1 and m.active and m.value > 2.5
    changes = [m.update(rng.normal(size=(1, 6))) for _ in range(200)]
    assert changes.count(False) == 1 and not m.active
