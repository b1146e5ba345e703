"""Calibration: expected calibration error, reliability-diagram data, temperature scaling.

probs are (N, C) softmax probabilities, labels (N,) class indices. Confidence is the top
probability; a calibrated model is right on about 70% of the crops it gives 0.7.
Temperature scaling (Guo et al. 2017) divides the logits by one scalar T fitted by minimising the
validation negative log-likelihood: argmax labels never change, only how confident they are.
Logits are recovered from probabilities as log(p) (softmax is shift-invariant), so a temperature can be
fitted or undone on stored probabilities.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)
_LOG_FLOOR = 1e-30


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).ravel()
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probs must be (N, C) with N = len(labels); got {p.shape} and {len(y)} labels")
    return p, y


def logits_from_probs(probs) -> np.ndarray:
    """(N, C) float64 log-probabilities: logits up to a per-row constant."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _LOG_FLOOR, None))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """(N, C) float64 softmax of logits / temperature."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """Probabilities as a model with its logits divided by `temperature` would give them.

    ``apply_temperature(apply_temperature(p, T), 1 / T)`` undoes it (up to the log floor).
    """
    if temperature == 1.0:
        return np.asarray(probs, dtype=np.float64)
    return softmax(logits_from_probs(probs), temperature)


def reliability_bins(probs, labels, n_bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins over [0, 1]: [{low, high, count, confidence, accuracy}].

    confidence / accuracy are the bin's mean top probability and fraction correct (None if empty).
    A bin holds confidences in (low, high]; the first one also holds 0.
    """
    p, y = _check(probs, labels)
    conf = p.max(axis=1) if len(p) else np.zeros(0)
    correct = (p.argmax(axis=1) == y) if len(p) else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(conf[sel].mean()) if count else None,
                "accuracy": float(correct[sel].mean()) if count else None,
            }
        )
    return out


def expected_calibration_error(probs, labels, n_bins: int = DEFAULT_BINS) -> float | None:
    """ECE = sum over bins of (bin count / N) * |accuracy - mean confidence|; None for N == 0."""
    bins = reliability_bins(probs, labels, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return None
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy of softmax(logits / T) against labels."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    y = np.asarray(labels, dtype=np.int64)
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(logits, labels, bounds: Sequence[float] = TEMPERATURE_BOUNDS, tol: float = 1e-5) -> float:
    """The T in `bounds` minimising the NLL of softmax(logits / T).

    The NLL is convex in 1/T, so a golden-section search on 1/T finds the minimum. A T at a bound
    (e.g. a validation set the model gets 100% right with margin, where NLL keeps falling as T -> 0)
    is returned with a warning.
    """
    z, y = _check(logits, labels)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on an empty set")
    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]  # search over beta = 1 / T
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = negative_log_likelihood(z, y, 1 / c), negative_log_likelihood(z, y, 1 / d)
    while b - a > tol * max(1.0, a):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = negative_log_likelihood(z, y, 1 / c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = negative_log_likelihood(z, y, 1 / d)
    temperature = 1.0 / ((a + b) / 2.0)
    if min(abs(temperature - bounds[0]), abs(temperature - bounds[1])) < 1e-3 * temperature:
        logger.warning(
            "fitted temperature %.3g is at the search bound %s: the validation set is too easy or "
            "too small to calibrate on",
            temperature,
            tuple(bounds),
        )
    return float(temperature)


def calibration_summary(raw_probs, labels, temperature: float = 1.0, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """ECE and reliability bins before (T = 1) and after temperature scaling, plus the NLLs."""
    p, y = _check(raw_probs, labels)
    scaled = apply_temperature(p, temperature)
    logits = logits_from_probs(p)
    n = len(y)
    return {
        "temperature": float(temperature),
        "bins": n_bins,
        "ece_before": expected_calibration_error(p, y, n_bins),
        "ece_after": expected_calibration_error(scaled, y, n_bins),
        "nll_before": negative_log_likelihood(logits, y) if n else None,
        "nll_after": negative_log_likelihood(logits, y, temperature) if n else None,
        "mean_confidence_before": float(p.max(axis=1).mean()) if n else None,
        "mean_confidence_after": float(scaled.max(axis=1).mean()) if n else None,
        "reliability_before": reliability_bins(p, y, n_bins),
        "reliability_after": reliability_bins(scaled, y, n_bins),
    }


def plot_reliability(summary: dict[str, Any], path: str | os.PathLike, title: str = "Reliability diagram") -> Path:
    """PNG: accuracy vs confidence per bin before / after temperature scaling, with bin counts below."""
    from pose_classifier_ros.plotting import pyplot, save_figure

    plt = pyplot()
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfectly calibrated")
        width = 1.0 / summary["bins"]
        series = [("before", "tab:orange", "T = 1")]
        if summary["temperature"] != 1.0:
            series.append(("after", "tab:blue", f"T = {summary['temperature']:.3g}"))
        for which, colour, name in series:
            bins = [b for b in summary[f"reliability_{which}"] if b["count"]]
            ece = summary[f"ece_{which}"]
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                "o-",
                color=colour,
                label=f"{name} (ECE {ece:.3f})" if ece is not None else name,
            )
            centres = [(b["low"] + b["high"]) / 2 for b in summary[f"reliability_{which}"]]
            counts = [b["count"] for b in summary[f"reliability_{which}"]]
            shift = -width / 4 if which == "before" else width / 4
            axc.bar(
                np.asarray(centres) + (shift if len(series) > 1 else 0),
                counts,
                width=width / (2 if len(series) > 1 else 1),
                color=colour,
                alpha=0.7,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        axc.set_xlabel("confidence (top probability)")
        axc.set_ylabel("crops")
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


__all__ = [
    "logits_from_probs",
    "softmax",
    "apply_temperature",
    "reliability_bins",
    "expected_calibration_error",
    "negative_log_likelihood",
    "fit_temperature",
    "calibration_summary",
    "plot_reliability",
    "DEFAULT_BINS",
]
