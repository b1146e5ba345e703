"""Confidence intervals for accuracies (seeded bootstrap) and target decisions that use them.

Pose sets are small (hundreds of crops, a few dozen per group), so every accuracy is reported with a
95% interval. The bootstrap resamples the N (prediction correct?) outcomes with replacement; for a
proportion the resampled accuracy is exactly Binomial(N, k/N) / N, which is what is drawn here (the
same distribution as resampling rows, without the (B, N) index matrix). The percentile bootstrap
collapses to a point when every sample is right (or wrong), which would let three correct crops
"pass" a 90% target, so the interval used is the bootstrap's widened to the Wilson score interval
where that is wider (``method`` says so).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000

PASS, FAIL, NOT_ENOUGH_DATA = "pass", "fail", "not enough data"


@dataclass(frozen=True)
class Interval:
    """An accuracy with its confidence interval; all fractions in [0, 1] (None without samples)."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    level: float = DEFAULT_LEVEL
    method: str = "bootstrap"

    @property
    def width(self) -> float | None:
        return None if self.low is None else self.high - self.low

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "level": self.level,
            "method": self.method,
        }


def rng_for(seed: int, key: str) -> np.random.Generator:
    """Generator for one named interval: results do not depend on the order intervals are computed in."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode())])


def wilson_interval(k: int, n: int, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (n > 0)."""
    z = _normal_quantile(0.5 + level / 2.0)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    """Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if q < 0.02425 or q > 1 - 0.02425:
        r = math.sqrt(-2 * math.log(min(q, 1 - q)))
        x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / (
            (((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1
        )
        return x if q < 0.5 else -x
    r = q - 0.5
    s = r * r
    return (
        (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5])
        * r
        / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1)
    )


def accuracy_interval(
    correct, *, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, key: str = ""
) -> Interval:
    """Accuracy of `correct` ((N,) bool: prediction right?) with its seeded bootstrap interval.

    key names the interval (e.g. "group/species=zebra") so each one draws its own seeded stream.
    """
    correct = np.asarray(correct, dtype=bool).ravel()
    n = int(correct.size)
    if n == 0:
        return Interval(None, None, None, 0, level)
    k = int(correct.sum())
    boot = rng_for(seed, key).binomial(n, k / n, size=int(resamples)) / n
    alpha = (1.0 - level) / 2.0
    b_low, b_high = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    w_low, w_high = wilson_interval(k, n, level)
    low, high = min(b_low, w_low), max(b_high, w_high)
    method = "bootstrap" if (low, high) == (b_low, b_high) else "bootstrap widened to Wilson"
    return Interval(k / n, low, high, n, level, method)


def decide(interval: Interval, target: float) -> str:
    """ "pass" when the whole interval is above `target`, "fail" when it is entirely at or below,
    "not enough data" when it straddles the target (or there are no samples)."""
    if interval.n == 0 or interval.low is None:
        return NOT_ENOUGH_DATA
    if interval.low > target:
        return PASS
    if interval.high <= target:
        return FAIL
    return NOT_ENOUGH_DATA


__all__ = [
    "Interval",
    "accuracy_interval",
    "wilson_interval",
    "decide",
    "rng_for",
    "PASS",
    "FAIL",
    "NOT_ENOUGH_DATA",
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
]
