"""The evaluation beyond one accuracy: intervals, groups, targets, calibration, selective prediction, errors.

``analyse(labels, raw_probs, ...)`` returns report sections (JSON-ready dicts) that ``report.write_report``
renders into metrics.json / report.txt; ``write_figures`` writes reliability.png, accuracy_coverage.png
and accuracy_coverage.csv. raw_probs are the model's probabilities at T = 1; the checkpoint's temperature
is applied here, so calibration is reported before and after it and the selective-prediction threshold is
in the probabilities the node sees.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.evaluation import calibration as C
from pose_classifier_ros.evaluation import selective as S
from pose_classifier_ros.evaluation.groups import group_indices
from pose_classifier_ros.evaluation.uncertainty import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    accuracy_interval,
    decide,
)
from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.metrics import classification_report, error_structure, summary_row

logger = logging.getLogger(__name__)

# The model card's stated targets: overall accuracy > 85%, front and back (class accuracy) > 90%.
CARD_TARGETS: dict[str, float] = {"overall": 0.85, "front": 0.90, "back": 0.90}
SECTION_KEYS = ("intervals", "groups", "targets", "calibration", "selective", "error_structure")


@dataclass
class AnalysisOptions:
    """factors: group factors ("species", "species+site"); targets: {"overall" | class name: accuracy};
    target_accuracy: selective-prediction goal; level / resamples / seed: bootstrap intervals;
    bins: calibration bins."""

    factors: Sequence[str] = field(default_factory=list)
    targets: Mapping[str, float] | None = None
    target_accuracy: float | None = None
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    bins: int = C.DEFAULT_BINS


def parse_targets(spec: str | None) -> dict[str, float] | None:
    """ "card" -> CARD_TARGETS; "overall=0.9,front=0.95" (class names or "overall"; % values allowed)."""
    if spec is None or not str(spec).strip():
        return None
    out: dict[str, float] = {}
    for item in str(spec).split(","):
        item = item.strip()
        if item == "card":
            out.update(CARD_TARGETS)
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or (name != "overall" and name not in INDEX):
            raise ValueError(
                f"--targets: expected 'card' or NAME=ACCURACY with NAME overall or a class "
                f"({', '.join(VIEWPOINTS)}), got {item!r}"
            )
        v = float(value.rstrip("%")) / (100.0 if value.strip().endswith("%") else 1.0)
        if not 0.0 < v < 1.0:
            raise ValueError(f"--targets {name}: accuracy must be in (0, 1), got {value}")
        out[name] = v
    return out


def _correct_for(metric: str, labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """The outcomes a target metric averages: all samples ("overall") or one true class's."""
    return correct if metric == "overall" else correct[labels == INDEX[metric]]


def _key(scope: str, metric: str = "overall") -> str:
    """Bootstrap stream name of one outcome set: the same set gets the same interval in every table."""
    base = "" if scope == "all" else f"group/{scope}"
    if metric == "overall":
        return base or "overall"
    return f"{base}/{metric}" if base else f"class/{metric}"


def _interval(correct: np.ndarray, key: str, opt: AnalysisOptions) -> dict[str, Any]:
    return accuracy_interval(correct, level=opt.level, resamples=opt.resamples, seed=opt.seed, key=key).to_dict()


def _intervals(labels: np.ndarray, correct: np.ndarray, opt: AnalysisOptions) -> dict[str, Any]:
    return {
        "level": opt.level,
        "resamples": opt.resamples,
        "seed": opt.seed,
        "overall": _interval(correct, _key("all"), opt),
        "per_class": {
            name: _interval(correct[labels == i], _key("all", name), opt) for i, name in enumerate(VIEWPOINTS)
        },
    }


def _groups(labels, pred, correct, metadata, opt: AnalysisOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for factor, groups in group_indices(metadata, opt.factors).items():
        rows = {}
        for value, idx in groups.items():
            rep = classification_report(labels[idx], pred[idx])
            scope = f"{factor}={value}"
            rows[value] = {
                **summary_row(rep),
                "accuracy_ci": _interval(correct[idx], _key(scope), opt),
                "front_ci": _interval(correct[idx][labels[idx] == INDEX["front"]], _key(scope, "front"), opt),
                "back_ci": _interval(correct[idx][labels[idx] == INDEX["back"]], _key(scope, "back"), opt),
                "error_structure": error_structure(labels[idx], pred[idx]),
                "report": rep,
            }
        out[factor] = rows
    return out


def group_rows(
    labels: Sequence[int],
    predicted: Sequence[int],
    metadata: Sequence[Mapping[str, str]],
    options: AnalysisOptions,
) -> dict[str, Any]:
    """The "groups" section for predicted class indices (no probabilities needed): {factor: {value: row}}
    over options.factors, rows as in analyse() (support, accuracy with interval, coarse, angular error, ...)."""
    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
    return _groups(y, pred, pred == y, list(metadata), options)


def _targets(labels, correct, metadata, targets: Mapping[str, float], opt: AnalysisOptions) -> dict[str, Any]:
    scopes: list[tuple[str, np.ndarray]] = [("all", np.arange(len(labels)))]
    if opt.factors:
        for factor, groups in group_indices(metadata, opt.factors).items():
            scopes += [(f"{factor}={value}", idx) for value, idx in groups.items()]
    rows = []
    for scope, idx in scopes:
        for metric, target in targets.items():
            outcomes = _correct_for(metric, labels[idx], correct[idx])
            ci = accuracy_interval(
                outcomes, level=opt.level, resamples=opt.resamples, seed=opt.seed, key=_key(scope, metric)
            )
            rows.append(
                {
                    "scope": scope,
                    "metric": metric,
                    "target": float(target),
                    **ci.to_dict(),
                    "decision": decide(ci, target),
                }
            )
    verdict = {d: sum(r["decision"] == d for r in rows) for d in ("pass", "fail", "not enough data")}
    return {
        "targets": dict(targets),
        "rule": f"pass: the whole {opt.level:.0%} interval is above the target; fail: "
        "it is entirely at or below; otherwise not enough data",
        "rows": rows,
        "counts": verdict,
    }


def _selective(labels, probs, correct, opt: AnalysisOptions) -> dict[str, Any]:
    conf = probs.max(axis=1)
    out: dict[str, Any] = {
        "confidence": "top probability after the checkpoint's temperature",
        "parameter": S.NODE_PARAMETER,
        "table": S.coverage_table(conf, correct),
    }
    if opt.target_accuracy is not None:
        chosen = S.threshold_for_accuracy(conf, correct, opt.target_accuracy)
        if chosen["kept"]:
            ci = _interval(correct[conf >= chosen["threshold"]], "selective/kept", opt)
            chosen["accuracy_ci"] = ci
            # Chosen on this data: only when even the interval's low end reaches the target is the
            # threshold likely to hold on new crops.
            chosen["supported"] = bool(ci["low"] >= opt.target_accuracy)
        out["chosen"] = chosen
    return out


def analyse(
    labels: Sequence[int],
    raw_probs: np.ndarray,
    *,
    temperature: float = 1.0,
    metadata: Sequence[Mapping[str, str]] | None = None,
    options: AnalysisOptions | None = None,
) -> dict[str, Any]:
    """Report sections for labels (N,) class indices and raw_probs (N, 8) probabilities at T = 1."""
    opt = options or AnalysisOptions()
    y = np.asarray(labels, dtype=np.int64)
    raw = np.asarray(raw_probs, dtype=np.float64)
    probs = C.apply_temperature(raw, temperature)
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    correct = pred == y
    metadata = list(metadata) if metadata is not None else [{} for _ in range(len(y))]
    sections: dict[str, Any] = {
        "intervals": _intervals(y, correct, opt),
        "error_structure": error_structure(y, pred),
        "calibration": C.calibration_summary(raw, y, temperature, opt.bins),
        "selective": _selective(y, probs, correct, opt),
    }
    if opt.factors:
        sections["groups"] = _groups(y, pred, correct, metadata, opt)
    if opt.targets:
        sections["targets"] = _targets(y, correct, metadata, opt.targets, opt)
    return sections


def write_figures(
    out_dir: str | os.PathLike,
    labels: Sequence[int],
    raw_probs: np.ndarray,
    sections: Mapping[str, Any],
    title: str = "",
) -> dict[str, Path]:
    """reliability.png, accuracy_coverage.png and accuracy_coverage.csv (every curve point) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(labels, dtype=np.int64)
    probs = C.apply_temperature(np.asarray(raw_probs, dtype=np.float64), sections["calibration"]["temperature"])
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    paths = {
        "reliability": C.plot_reliability(
            sections["calibration"], out / "reliability.png", f"Reliability {title}".strip()
        ),
        "accuracy_coverage": S.plot_accuracy_coverage(
            conf,
            correct,
            out / "accuracy_coverage.png",
            sections["selective"].get("chosen"),
            f"Accuracy vs coverage {title}".strip(),
        ),
    }
    curve = S.accuracy_coverage(conf, correct)
    paths["accuracy_coverage_csv"] = out / "accuracy_coverage.csv"
    with paths["accuracy_coverage_csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["min_confidence", "coverage", "accuracy", "kept"])
        for t, c, a, k in zip(curve["threshold"], curve["coverage"], curve["accuracy"], curve["kept"]):
            w.writerow([f"{t:.6f}", f"{c:.4f}", f"{a:.4f}", int(k)])
    return paths


__all__ = ["AnalysisOptions", "CARD_TARGETS", "SECTION_KEYS", "analyse", "group_rows", "parse_targets", "write_figures"]
