"""Classification and temporal-stability metrics for viewpoint predictions.

Everything returns plain Python types (lists, dicts, floats, ``None`` for undefined values) so a
result can go straight into ``json.dump``. Labels may be class indices or class names anywhere.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from pose_classifier_ros.labels import (
    COARSE_BINS,
    COARSE_INDEX,
    FLIP_INDEX,
    NUM_CLASSES,
    VIEWPOINTS,
    angular_error_deg,
    normalize_label,
)

logger = logging.getLogger(__name__)


def _as_indices(labels: Iterable, what: str) -> np.ndarray:
    """(N,) int64 class indices of labels given as indices or names (ValueError names the culprit)."""
    out = []
    for k, label in enumerate(labels):
        try:
            out.append(normalize_label(label))
        except ValueError as exc:
            raise ValueError(f"{what}[{k}]: {exc}") from None
    return np.asarray(out, dtype=np.int64)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_report(y_true: Sequence, y_pred: Sequence) -> dict[str, Any]:
    """Accuracy, per-class accuracy, confusion matrices and viewpoint-aware errors.

    y_true, y_pred: (N,) class indices or names (``labels.normalize_label``).
    Returns a JSON-ready dict:
      num_samples: N
      accuracy: fraction correct (None when N == 0)
      per_class: {name: {accuracy (recall; None without support), precision, support}}
      class_names: the 8 class names in index order
      confusion_matrix: 8x8 list of counts, rows = true, cols = predicted
      mean_angular_error_deg: mean |heading(pred) - heading(true)| in degrees, 0..180
      coarse_accuracy: accuracy on the front/side/back bins
      coarse_bins, coarse_confusion_matrix: 3x3 list, rows = true, cols = predicted
    """
    return classification_report_from_confusion(_confusion_of(y_true, y_pred))


def _confusion_of(y_true: Sequence, y_pred: Sequence) -> np.ndarray:
    t = _as_indices(y_true, "y_true")
    p = _as_indices(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    return confusion_matrix(t, p, NUM_CLASSES)


def _angle_matrix() -> np.ndarray:
    """(8, 8) heading difference in degrees between true class (row) and predicted class (column)."""
    idx = np.arange(NUM_CLASSES)
    return angular_error_deg(idx[None, :], idx[:, None])


def classification_report_from_confusion(cm) -> dict[str, Any]:
    """classification_report of the samples an (8, 8) confusion matrix counts (rows = true, cols =
    predicted): the same dict, so reports over many runs can be summed as matrices (season reports)."""
    cm = np.asarray(cm, dtype=np.int64).reshape(NUM_CLASSES, NUM_CLASSES)
    n = int(cm.sum())
    coarse = np.asarray(COARSE_INDEX, dtype=np.int64)
    coarse_cm = np.zeros((len(COARSE_BINS), len(COARSE_BINS)), dtype=np.int64)
    np.add.at(coarse_cm, (coarse[:, None], coarse[None, :]), cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per_class = {
        name: {
            "accuracy": _ratio(cm[i, i], support[i]),
            "precision": _ratio(cm[i, i], predicted[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(VIEWPOINTS)
    }
    return {
        "num_samples": n,
        "accuracy": _ratio(np.trace(cm), n),
        "per_class": per_class,
        "class_names": list(VIEWPOINTS),
        "confusion_matrix": cm.tolist(),
        "mean_angular_error_deg": float((cm * _angle_matrix()).sum() / n) if n else None,
        "coarse_accuracy": _ratio(np.trace(coarse_cm), n),
        "coarse_bins": list(COARSE_BINS),
        "coarse_confusion_matrix": coarse_cm.tolist(),
    }


def error_structure(y_true: Sequence, y_pred: Sequence) -> dict[str, Any]:
    """How the wrong predictions are wrong: the model card's "expected" confusions vs real failures.

    Shares are fractions of the errors (None when there are none):
      adjacent: neighbouring classes, 45 deg apart (front <-> front-left, ...)
      flip_symmetric: the mirror class (left <-> right, front-left <-> front-right, back-left <-> back-right)
      opposite: 180 deg apart (front <-> back, left <-> right; left <-> right is also flip_symmetric)
      expected: adjacent or flip_symmetric; unexpected: every other error (90 / 135 / 180 deg non-mirror)
      by_angle_deg: {"45", "90", "135", "180"} counts and shares
    """
    return error_structure_from_confusion(_confusion_of(y_true, y_pred))


def error_structure_from_confusion(cm) -> dict[str, Any]:
    """error_structure of the samples an (8, 8) confusion matrix counts (rows = true, cols = predicted)."""
    cm = np.asarray(cm, dtype=np.int64).reshape(NUM_CLASSES, NUM_CLASSES)
    wrong = cm * (1 - np.eye(NUM_CLASSES, dtype=np.int64))
    n_err = int(wrong.sum())
    angle = np.rint(_angle_matrix()).astype(int)
    flip = np.asarray(FLIP_INDEX, dtype=np.int64)[:, None] == np.arange(NUM_CLASSES)[None, :]
    adjacent, opposite = angle == 45, angle == 180
    expected = adjacent | flip

    def part(mask: np.ndarray) -> dict[str, Any]:
        count = int(wrong[mask].sum())
        return {"count": count, "share": _ratio(count, n_err)}

    return {
        "num_samples": int(cm.sum()),
        "errors": n_err,
        "adjacent": part(adjacent),
        "flip_symmetric": part(flip),
        "opposite": part(opposite),
        "expected": part(expected),
        "unexpected": part(~expected),
        "by_angle_deg": {str(a): part(angle == a) for a in (45, 90, 135, 180)},
    }


def class_accuracy(report: dict[str, Any], name: str) -> float | None:
    """Accuracy (recall) of one class in a classification_report (None without support)."""
    return (report.get("per_class") or {}).get(name, {}).get("accuracy")


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The side-by-side columns of one classification_report: support, accuracy, coarse accuracy,
    mean angular error (deg), front and back class accuracy."""
    return {
        "support": report["num_samples"],
        "accuracy": report["accuracy"],
        "coarse_accuracy": report["coarse_accuracy"],
        "mean_angular_error_deg": report["mean_angular_error_deg"],
        "front_accuracy": class_accuracy(report, "front"),
        "back_accuracy": class_accuracy(report, "back"),
    }


def flip_rate(track_ids: Sequence[Hashable], stamps_s: Sequence[float], labels: Sequence) -> dict[str, Any]:
    """How often each track's label changes, in flips per second.

    track_ids: (N,) track id per observation; stamps_s: (N,) float seconds; labels: (N,) class
    index or name per observation, ``None`` for "no label" (skipped, e.g. a not-yet-stable vote).
    Observations are ordered by stamp within each track; a flip is a label that differs from the
    track's previous labelled observation. A track's rate is flips / (last - first stamp); tracks
    with fewer than two labelled observations or zero duration have no rate and are left out of
    ``per_track`` and the mean.
    Returns {"per_track": {id: flips_per_s}, "mean_flips_per_s": mean over tracks (0.0 when none),
             "flips_per_track": {id: count}, "total_flips": int, "total_duration_s": float,
             "overall_flips_per_s": total_flips / total_duration_s (0.0 when no duration)}.
    """
    if not len(track_ids) == len(stamps_s) == len(labels):
        raise ValueError(
            f"track_ids ({len(track_ids)}), stamps_s ({len(stamps_s)}) and labels "
            f"({len(labels)}) must have the same length"
        )
    series: dict[Hashable, list[tuple[float, Any]]] = defaultdict(list)
    for track, stamp, label in zip(track_ids, stamps_s, labels):
        if label is None or (isinstance(label, float) and math.isnan(label)):
            continue
        series[track].append((float(stamp), normalize_label(label)))
    per_track: dict[str, float] = {}
    flips_per_track: dict[str, int] = {}
    total_flips, total_duration = 0, 0.0
    for track, obs in series.items():
        obs.sort(key=lambda o: o[0])  # stable: equal stamps keep input order
        flips = sum(1 for (_, a), (_, b) in zip(obs, obs[1:]) if a != b)
        duration = obs[-1][0] - obs[0][0]
        key = str(track)
        flips_per_track[key] = flips
        if len(obs) < 2 or duration <= 0.0:
            continue
        per_track[key] = flips / duration
        total_flips += flips
        total_duration += duration
    return {
        "per_track": per_track,
        "mean_flips_per_s": float(np.mean(list(per_track.values()))) if per_track else 0.0,
        "flips_per_track": flips_per_track,
        "total_flips": int(total_flips),
        "total_duration_s": float(total_duration),
        "overall_flips_per_s": total_flips / total_duration if total_duration > 0 else 0.0,
    }


__all__ = [
    "classification_report",
    "classification_report_from_confusion",
    "confusion_matrix",
    "error_structure",
    "error_structure_from_confusion",
    "class_accuracy",
    "summary_row",
    "flip_rate",
]
