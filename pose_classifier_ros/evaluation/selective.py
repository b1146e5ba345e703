"""Selective prediction: accuracy vs coverage, and the confidence threshold that reaches a target accuracy.

A gate keeps a crop's prediction when its confidence (top probability, with the checkpoint's
temperature) is >= threshold. Each curve point is one threshold: the confidence of a crop, with every
crop at least that confident kept. The threshold for a target accuracy is the lowest one (the most
coverage) whose kept accuracy reaches the target; ``node_threshold`` rounds it to a short number
that keeps exactly the same crops, for the node's ``voting.min_confidence`` parameter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

NODE_PARAMETER = "voting.min_confidence"
TABLE_THRESHOLDS: tuple[float, ...] = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def accuracy_coverage(confidence, correct) -> dict[str, np.ndarray]:
    """The accuracy-coverage curve, one point per distinct confidence, most confident first.

    confidence: (N,) top probability; correct: (N,) bool. Returns {"threshold", "coverage",
    "accuracy", "kept"}: (P,) arrays, point k keeps the crops with confidence >= threshold[k].
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has {conf.size} values but correct has {ok.size}")
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    cum = np.cumsum(ok)
    last = np.flatnonzero(np.r_[conf[1:] != conf[:-1], True]) if conf.size else np.zeros(0, dtype=np.int64)
    kept = last + 1
    return {
        "threshold": conf[last],
        "coverage": kept / max(conf.size, 1),
        "accuracy": cum[last] / kept if kept.size else np.zeros(0),
        "kept": kept,
    }


def node_threshold(threshold: float, next_lower: float | None) -> float:
    """A short decimal r with next_lower < r <= threshold (the same crops pass ``conf >= r``)."""
    for digits in range(2, 7):
        r = math.floor(threshold * 10**digits) / 10**digits
        if next_lower is None or r > next_lower:
            return r
    return float(threshold)


def threshold_for_accuracy(confidence, correct, target: float) -> dict[str, Any]:
    """The curve point with the most coverage whose kept accuracy is >= target.

    Returns {"target", "reached", "threshold" (exact crop confidence), "min_confidence" (short value
    for the node), "coverage", "accuracy", "kept", "n"}; when no threshold reaches the target,
    reached is False and the other fields describe the most accurate point (ties: most coverage).
    """
    curve = accuracy_coverage(confidence, correct)
    n = int(np.asarray(correct).size)
    if n == 0:
        return {
            "target": target,
            "reached": False,
            "threshold": None,
            "min_confidence": None,
            "coverage": None,
            "accuracy": None,
            "kept": 0,
            "n": 0,
        }
    acc = curve["accuracy"]
    reaching = np.flatnonzero(acc >= target - 1e-12)
    reached = reaching.size > 0
    k = int(reaching[-1]) if reached else int(np.flatnonzero(acc == acc.max())[-1])
    next_lower = float(curve["threshold"][k + 1]) if k + 1 < len(acc) else None
    t = float(curve["threshold"][k])
    return {
        "target": float(target),
        "reached": bool(reached),
        "threshold": t,
        "min_confidence": node_threshold(t, next_lower),
        "coverage": float(curve["coverage"][k]),
        "accuracy": float(acc[k]),
        "kept": int(curve["kept"][k]),
        "n": n,
    }


def coverage_table(confidence, correct, thresholds: Sequence[float] = TABLE_THRESHOLDS) -> list[dict[str, Any]]:
    """Rows {min_confidence, coverage, accuracy, kept} at fixed gate values (accuracy None when none kept)."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    rows = []
    for t in thresholds:
        sel = conf >= t
        kept = int(sel.sum())
        rows.append(
            {
                "min_confidence": float(t),
                "coverage": kept / conf.size if conf.size else None,
                "accuracy": float(ok[sel].mean()) if kept else None,
                "kept": kept,
            }
        )
    return rows


def plot_accuracy_coverage(
    confidence,
    correct,
    path: str | os.PathLike,
    chosen: dict[str, Any] | None = None,
    title: str = "Accuracy vs coverage",
) -> Path:
    """PNG of the curve; `chosen` (a threshold_for_accuracy result) is marked with the target line."""
    from pose_classifier_ros.plotting import pyplot, save_figure

    plt = pyplot()
    curve = accuracy_coverage(confidence, correct)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    try:
        ax.step(curve["coverage"], curve["accuracy"], where="post", color="tab:blue", lw=2, label="kept accuracy")
        if chosen is not None and chosen.get("threshold") is not None:
            ax.axhline(chosen["target"], ls="--", color="tab:red", lw=1, label=f"target {chosen['target']:.0%}")
            if chosen["reached"]:
                ax.plot(
                    [chosen["coverage"]],
                    [chosen["accuracy"]],
                    "o",
                    color="tab:red",
                    ms=8,
                    label=f"{NODE_PARAMETER} {chosen['min_confidence']:g}: coverage {chosen['coverage']:.0%}",
                )
        ax.set_xlim(0, 1.02)
        lowest = float(curve["accuracy"].min()) if curve["accuracy"].size else 0.0
        ax.set_ylim(max(0.0, min(lowest, chosen["target"] if chosen else 1.0) - 0.05), 1.01)
        ax.set_xlabel("coverage (fraction of crops kept)")
        ax.set_ylabel("accuracy of kept crops")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


__all__ = [
    "accuracy_coverage",
    "threshold_for_accuracy",
    "coverage_table",
    "node_threshold",
    "plot_accuracy_coverage",
    "NODE_PARAMETER",
    "TABLE_THRESHOLDS",
]
