"""Figures of the reports (PNG, matplotlib's Agg backend: no display needed).

``pyplot()`` and ``save_figure()`` are what every figure here and in ``evaluation/`` is drawn and written with.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS, normalize_label


def pyplot():
    """matplotlib.pyplot on the Agg backend (headless: CLIs and tests run without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Lay out and write `fig` to `path` (parent folders created); returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(
    confusion_matrix: Sequence[Sequence[int]],
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> Path:
    """PNG heat map of a (C, C) count matrix (rows = true); colour = row-normalised rate, text = count."""
    plt = pyplot()
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
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def _label_index(label: Any) -> float:
    """Class index of a label for plotting; NaN (a gap) for None/unknown."""
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
    plt = pyplot()
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
        return save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)


__all__ = ["pyplot", "save_figure", "plot_confusion_matrix", "plot_track_timeline"]
