"""Evaluation reports: metrics.json, a human-readable report.txt and PNG figures.

A report is the dict of ``metrics.classification_report`` plus any extra keys a caller adds
(flip rates, timings, run arguments). The sections of ``evaluation.analysis.analyse`` (intervals,
groups, targets, calibration, selective, error_structure) get their own tables in report.txt.
Figures use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: CLIs and tests run without a display
    import matplotlib.pyplot as plt

    return plt


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
        from pose_classifier_ros.evaluation.text import format_sections

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
        from pose_classifier_ros.evaluation.text import format_appendix

        lines += format_appendix(report)
    return "\n".join(lines) + "\n"


def _summarise(value: Any, limit: int = 200) -> str:
    """One line for an extra report value (dicts of scalars stay readable, long ones are cut)."""
    if isinstance(value, float):
        return _fmt(value)
    text = json.dumps(to_jsonable(value), sort_keys=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plot_confusion_matrix(
    confusion_matrix: Sequence[Sequence[int]],
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> Path:
    """PNG heat map of a (C, C) count matrix (rows = true); colour = row-normalised rate, text = count."""
    plt = _pyplot()
    cm = np.asarray(confusion_matrix, dtype=np.int64)
    names = (
        list(class_names)
        if class_names is not None
        else (list(VIEWPOINTS) if len(cm) == len(VIEWPOINTS) else [str(i) for i in range(len(cm))])
    )
    rows = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    size = 1.0 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        im = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if rate[i, j] > 0.5 else "black",
                    )
        return _save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def _save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Lay out and write `fig` to `path` (parent folders created); returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _label_index(label: Any) -> float:
    """Class index of a label for plotting; NaN (a gap) for None/unknown."""
    from pose_classifier_ros.labels import normalize_label

    if label is None:
        return float("nan")
    try:
        return float(normalize_label(label))
    except (ValueError, TypeError):
        return float("nan")


def plot_track_timeline(
    track_ids: Sequence[Hashable],
    stamps_s: Sequence[float],
    labels_per_frame: Sequence,
    labels_smoothed: Sequence,
    path: str | os.PathLike,
    max_tracks: int = 12,
    title: str = "Viewpoint per track",
) -> Path:
    """PNG with one panel per track: per-frame labels (dots) and smoothed labels (step line) over time.

    All sequences are (N,) per observation; labels are class indices or names, None = no label.
    Time axis is seconds since the first stamp. With more than `max_tracks` tracks the ones
    with the most observations are drawn (a note in the title says how many were left out).
    """
    if not len(track_ids) == len(stamps_s) == len(labels_per_frame) == len(labels_smoothed):
        raise ValueError("track_ids, stamps_s, labels_per_frame and labels_smoothed must have the same length")
    plt = _pyplot()
    by_track: dict[Hashable, list[int]] = {}
    for k, track in enumerate(track_ids):
        by_track.setdefault(track, []).append(k)
    tracks = sorted(by_track, key=lambda t: (-len(by_track[t]), str(t)))
    shown = tracks[:max_tracks]
    stamps = np.asarray(stamps_s, dtype=np.float64)
    t0 = float(stamps.min()) if len(stamps) else 0.0
    n_panels = max(1, len(shown))
    fig, axes = plt.subplots(n_panels, 1, figsize=(10, 1.0 + 1.6 * n_panels), sharex=True, squeeze=False)
    try:
        for ax, track in zip(axes[:, 0], shown):
            idx = sorted(by_track[track], key=lambda k: stamps[k])
            t = stamps[idx] - t0
            raw = np.array([_label_index(labels_per_frame[k]) for k in idx])
            smooth = np.array([_label_index(labels_smoothed[k]) for k in idx])
            ax.plot(t, raw, "o", ms=3, alpha=0.6, color="tab:gray", label="per frame")
            ax.step(t, smooth, where="post", lw=2, color="tab:blue", label="smoothed")
            ax.set_yticks(range(len(VIEWPOINTS)), VIEWPOINTS, fontsize=7)
            ax.set_ylim(-0.5, len(VIEWPOINTS) - 0.5)
            ax.grid(axis="y", alpha=0.3)
            ax.set_ylabel(str(track), rotation=0, ha="right", va="center", fontsize=8)
        if not shown:
            axes[0, 0].text(0.5, 0.5, "no tracks", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].legend(loc="upper right", fontsize=7) if shown else None
        axes[-1, 0].set_xlabel("time [s]")
        left_out = len(tracks) - len(shown)
        fig.suptitle(title + (f" ({left_out} shorter tracks not shown)" if left_out else ""))
        return _save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)


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


__all__ = [
    "ReportPaths",
    "to_jsonable",
    "format_text_report",
    "plot_confusion_matrix",
    "plot_track_timeline",
    "write_report",
]
