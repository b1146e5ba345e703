"""Evaluation reports: metrics.json, a human-readable report.txt and confusion_matrix.png.

A report is the dict of ``metrics.classification_report`` plus any extra keys a caller adds
(flip rates, timings, run arguments). The sections of ``evaluation.analysis.analyse`` (intervals,
groups, targets, calibration, selective, error_structure) get their own tables in report.txt
(``evaluation.text``), then the full report of every group. Figures: ``plotting``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pose_classifier_ros.evaluation.text import format_sections
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.plotting import plot_confusion_matrix

logger = logging.getLogger(__name__)

_CLASSIFICATION_KEYS = frozenset(
    {
        "num_samples",
        "accuracy",
        "per_class",
        "class_names",
        "confusion_matrix",
        "mean_angular_error_deg",
        "coarse_accuracy",
        "coarse_bins",
        "coarse_confusion_matrix",
        "title",
    }
)
_SECTION_KEYS = frozenset({"intervals", "groups", "targets", "calibration", "selective", "error_structure"})


class ReportPaths(NamedTuple):
    """Files written by ``write_report``; ``confusion_matrix`` is None when the report has none."""

    json: Path
    text: Path
    confusion_matrix: Path | None


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy/torch scalars and arrays, Paths and tuples to JSON types; NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch.Tensor without importing torch
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _classification_part(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The classification_report dict inside `report` (top level or under "classification")."""
    if "confusion_matrix" in report:
        return report
    inner = report.get("classification")
    if isinstance(inner, Mapping) and "confusion_matrix" in inner:
        return inner
    return None


def _fmt(value: Any, pct: bool = False, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100.0 * float(value):.{digits}f}%"
    if isinstance(value, float):
        return f"{value:.{digits + 2}g}"
    return str(value)


def _matrix_lines(matrix: Sequence[Sequence[int]], names: Sequence[str], corner: str) -> list[str]:
    width = max(6, max(len(n) for n in names) + 1, *(len(str(v)) + 1 for row in matrix for v in row))
    head = f"{corner:<14}" + "".join(f"{n[: width - 1]:>{width}}" for n in names)
    lines = [head]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<14}" + "".join(f"{int(v):>{width}}" for v in row))
    return lines


def format_text_report(report: Mapping[str, Any], title: str = "Viewpoint evaluation", appendix: bool = True) -> str:
    """Plain-text report: headline metrics, per-class table, 8x8 and 3x3 confusion matrices, analysis
    sections, extras; appendix: also the full report of every group (report.txt has it, consoles need not)."""
    lines = [title, "=" * len(title)]
    cls = _classification_part(report)
    if cls is not None:
        names = list(cls.get("class_names") or VIEWPOINTS)
        lines += [
            f"samples:               {cls.get('num_samples', 'n/a')}",
            f"accuracy:              {_fmt(cls.get('accuracy'), pct=True)}",
            f"coarse accuracy:       {_fmt(cls.get('coarse_accuracy'), pct=True)}  (front / side / back)",
            f"mean angular error:    {_fmt(cls.get('mean_angular_error_deg'))} deg",
            "",
            f"{'class':<14}{'accuracy':>10}{'precision':>11}{'support':>9}",
        ]
        for name in names:
            pc = (cls.get("per_class") or {}).get(name, {})
            lines.append(
                f"{name:<14}{_fmt(pc.get('accuracy'), pct=True, digits=1):>10}"
                f"{_fmt(pc.get('precision'), pct=True, digits=1):>11}{pc.get('support', 0):>9}"
            )
        lines += ["", "confusion matrix (rows = true, columns = predicted):"]
        lines += _matrix_lines(cls["confusion_matrix"], names, "true\\pred")
        if cls.get("coarse_confusion_matrix") is not None:
            lines += ["", "coarse confusion matrix:"]
            lines += _matrix_lines(
                cls["coarse_confusion_matrix"], list(cls.get("coarse_bins") or ("front", "side", "back")), "true\\pred"
            )
    if any(report.get(k) for k in _SECTION_KEYS):
        lines += format_sections(report)
    extras = {
        k: v
        for k, v in report.items()
        if k not in _CLASSIFICATION_KEYS
        and k not in _SECTION_KEYS
        and not (k == "classification" and cls is not report)
    }
    if extras:
        lines += ["", "other:"]
        for key, value in extras.items():
            lines.append(f"  {key}: {_summarise(value)}")
    if appendix and report.get("groups"):
        lines += _group_appendix(report["groups"])
    return "\n".join(lines) + "\n"


def _group_appendix(groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The full report of every group (end of report.txt): {factor: {value: {"report": ...}}}."""
    lines = ["", "Per-group reports", "================="]
    for factor, rows in groups.items():
        for value, row in rows.items():
            lines += ["", format_text_report(row["report"], f"Group {factor} = {value}").rstrip("\n")]
    return lines


def _summarise(value: Any, limit: int = 200) -> str:
    """One line for an extra report value (dicts of scalars stay readable, long ones are cut)."""
    if isinstance(value, float):
        return _fmt(value)
    text = json.dumps(to_jsonable(value), sort_keys=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_report(
    out_dir: str | os.PathLike, report: Mapping[str, Any], title: str = "Viewpoint evaluation"
) -> ReportPaths:
    """Write out_dir/metrics.json, report.txt and (when the report has one) confusion_matrix.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = to_jsonable(dict(report))
    data.setdefault("title", title)
    json_path = out / "metrics.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, json_path)  # readers never see a half-written file
    text_path = out / "report.txt"
    text_path.write_text(format_text_report(report, title))
    cm_path = None
    cls = _classification_part(report)
    if cls is not None and cls.get("num_samples", 1):
        cm_path = plot_confusion_matrix(
            cls["confusion_matrix"], out / "confusion_matrix.png", cls.get("class_names"), title
        )
    logger.info("wrote %s, %s%s", json_path, text_path, f", {cm_path}" if cm_path else "")
    return ReportPaths(json_path, text_path, cm_path)


__all__ = ["ReportPaths", "to_jsonable", "format_text_report", "write_report"]
