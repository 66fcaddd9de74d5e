"""Out-of-sample thresholds with a stated guarantee, from a few hundred (or a few dozen) windows.

A threshold taken as the empirical quantile of scores computed on the very windows that set the
normalization is biased low: those windows helped define "normal", so they score better than the
next ones will. Here the scores come from cross-fitting (each fold of the commissioning windows is
scored under a normalization fit on the other folds, contiguous in time, so slow changes count
too), and the threshold is an upper confidence bound on their (1 - far) quantile:

- `order_statistic`: distribution-free. The r-th smallest of n independent scores exceeds the
  (1 - far) quantile with probability P(Binomial(n, 1 - far) < r); the smallest r with that
  probability >= `confidence` is used. Needs n >= log(1 - confidence) / log(1 - far) windows
  (230 for 1 % at 90 %).
- `boxcox_tolerance:<lambda>`: scores made normal by the Box-Cox power (log, 1/4 or 1/3)
  that leaves them least skewed (a mean-square reconstruction error is close to a scaled
  chi-square, whose cube root is close to normal; heavier tails pick the log); then
  mean + k * std with the one-sided tolerance factor k(n, 1 - far, confidence), so that at least
  1 - far of the score distribution lies below it with that confidence. Works from a few dozen
  windows.

The order statistic is used wherever n allows it (its guarantee needs no assumption); below
that, the tolerance bound (its guarantee holds as far as the transformed scores are normal: a
tail heavier than that is the risk, and the `field-real` benchmark measures it on real data).
Pure numpy and stdlib, so the firmware can compute the same in C.
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np

MIN_WINDOWS: Final = 8
BOXCOX_POWERS: Final = (0.0, 0.25, 1 / 3)  # higher powers, picked on a noisy skewness, undercover
"""Fewer commissioning windows than this cannot estimate a spread."""
_TINY: Final = 1e-12

NormalizeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Raw features (n, F) -> (mean, std) to standardize with."""
FoldScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(raw features (m, F), mean, std) -> scores (m,)."""


@dataclass(frozen=True)
class ThresholdEstimate:
    value: float
    method: str  # "order_statistic" | "boxcox_tolerance:<lambda>"
    tolerance_bound: float
    order_statistic_bound: float | None
    oos_scores: int


def tolerance_factor(n: int, coverage: float, confidence: float) -> float:
    """One-sided normal tolerance factor k: P(mean + k*std >= the `coverage` quantile) >= confidence.

    The Natrella (1963) approximation of the exact noncentral-t factor, slightly below it: within
    1 % for n >= 30 and 3.5 % for n >= 8 at coverage 0.99 and 90 % confidence (n = 30: 2.862 vs
    2.884 exact). No scipy on a device: the firmware computes the same closed form.
    """
    if n < 3:
        raise ValueError("a tolerance factor needs at least 3 values")
    z_p = NormalDist().inv_cdf(coverage)
    z_g = NormalDist().inv_cdf(confidence)
    a = 1.0 - z_g * z_g / (2.0 * (n - 1))
    b = z_p * z_p - z_g * z_g / n
    if a <= 0:  # tiny n at high confidence: no finite factor
        return math.inf
    return (z_p + math.sqrt(max(z_p * z_p - a * b, 0.0))) / a


def order_statistic_rank(n: int, coverage: float, confidence: float) -> int | None:
    """Smallest rank r (1-based) whose order statistic bounds the `coverage` quantile from above with
    probability >= `confidence`, i.e. P(Binomial(n, coverage) <= r - 1) >= confidence; None if even
    the maximum does not."""
    log_p, log_q = math.log(coverage), math.log1p(-coverage)
    cdf = 0.0
    for k in range(n + 1):  # P(B = k) in log space: n up to many thousands without overflow
        log_pmf = (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
        )
        cdf += math.exp(log_pmf)
        if cdf >= confidence:
            return k + 1 if k + 1 <= n else None
    return None


def crossfit_scores(data: np.ndarray, folds: int, normalize: NormalizeFn, score: FoldScoreFn) -> np.ndarray:
    """Score every window under a normalization fit without it: `folds` contiguous blocks."""
    n = len(data)
    folds = max(2, min(folds, n // 4))
    edges = np.linspace(0, n, folds + 1).astype(int)
    out = np.empty(n, dtype=np.float64)
    for lo, hi in itertools.pairwise(edges):
        rest = np.concatenate([data[:lo], data[hi:]])
        mean, std = normalize(rest)
        out[lo:hi] = score(data[lo:hi], mean, std)
    return out


def _boxcox(s: np.ndarray, lam: float) -> np.ndarray:
    out: np.ndarray = np.log(s) if lam == 0 else np.power(s, lam)
    return out


def _skewness(t: np.ndarray) -> float:
    centred = t - t.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0


def tolerance_bound(scores: np.ndarray, far: float, confidence: float) -> tuple[float, float]:
    """(bound, Box-Cox lambda): the normal tolerance bound on the least skewed power of the scores."""
    s = np.maximum(np.asarray(scores, dtype=np.float64), _TINY)
    lam = min(BOXCOX_POWERS, key=lambda p: (abs(_skewness(_boxcox(s, p))), p))
    t = _boxcox(s, lam)
    upper = float(t.mean() + tolerance_factor(len(s), 1.0 - far, confidence) * t.std(ddof=1))
    if lam == 0:
        return float(np.exp(upper)), lam
    return (upper ** (1.0 / lam) if upper > 0 else float(s.max())), lam


def upper_quantile_bound(scores: np.ndarray, far: float, confidence: float) -> ThresholdEstimate:
    """The threshold for a per-window false-alarm rate `far` at `confidence` (see the module doc)."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if n < 3:
        raise ValueError(f"an out-of-sample threshold needs at least 3 scores, got {n}")
    bound, lam = tolerance_bound(s, far, confidence)
    rank = order_statistic_rank(n, 1.0 - far, confidence)
    order = float(np.sort(s)[rank - 1]) if rank is not None else None
    if order is not None:
        return ThresholdEstimate(order, "order_statistic", bound, order, n)
    return ThresholdEstimate(bound, f"boxcox_tolerance:{lam:.3g}", bound, order, n)


def debounced_alarm_rate(far: float, k: int, n: int) -> float:
    """P(at least k of n windows over the threshold) for independent windows at rate `far`: what a
    user feels after the k-of-n debounce (an upper bound is not claimed: windows correlate)."""
    return float(sum(math.comb(n, j) * far**j * (1 - far) ** (n - j) for j in range(k, n + 1)))
