"""The per-detection table of a replay: one row per published detection, as CSV and (with pyarrow) Parquet.

One writer for every source and for ``pose-classifier batch`` (each input's folder gets the same files), so
``pyarrow.dataset.dataset(DIR, format="parquet")`` or ``pandas.read_csv`` read a whole season alike. Every
column is documented in ``COLUMNS`` (and in docs/field_footage.md); empty CSV cells / Parquet nulls mean
"none" (no label yet, no vote, no ground truth).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS, heading_from_probs

_logger = logging.getLogger(__name__)

CSV_FILE = "detections.csv"
PARQUET_FILE = "detections.parquet"
SCORE_COLUMNS = tuple(f"p_{name.replace('-', '_')}" for name in VIEWPOINTS)

# column -> (Parquet type name, meaning)
COLUMNS: dict[str, tuple[str, str]] = {
    "input": ("string", "the input's name (the video or bag file name; batch: the manifest row's name)"),
    "frame_index": (
        "int64",
        "the frame: video frame number (0-based, CVAT's frame, MOT's frame - 1); bag: image index",
    ),
    "stamp_ns": ("int64", "the frame's stamp, ns (video: presentation time from the file's first frame)"),
    "time_s": ("float64", "seconds from the first frame (video: presentation time; bag: from the first paired frame)"),
    "track_id": ("string", "track id (the track file's / Detection2D.id; iou-<n> when the detector gave none)"),
    "class": ("string", "the track's detector class: CVAT track label, MOT class, Detection2D class_id (species)"),
    "x1": ("float64", "box left edge, px (as classified: clamped to the frame)"),
    "y1": ("float64", "box top edge, px"),
    "x2": ("float64", "box right edge, px (exclusive)"),
    "y2": ("float64", "box bottom edge, px (exclusive)"),
    "score": ("float64", "detection score (1.0 for drawn CVAT boxes)"),
    "label": ("string", "per-frame viewpoint: argmax of the crop's scores (scheduled: maybe from an earlier frame)"),
    **{
        col: ("float64", f"score of class {name} in `label`'s classification")
        for col, name in zip(SCORE_COLUMNS, VIEWPOINTS)
    },
    "heading_deg": (
        "float64",
        "continuous heading of those scores, deg: 0 faces the camera, +90 left flank, -90 right",
    ),
    "fresh": ("bool", "`label` was computed on this frame (every_frame: always when there is a label)"),
    "label_age_s": ("float64", "this frame's stamp minus the stamp of the frame `label` was computed on, s"),
    "voted": ("bool", "this frame's label joined the track's vote (not when truncated or below min_confidence)"),
    "truncated": ("bool", "the padded crop is cut by the frame edge (the animal may be partly outside)"),
    "smoothed": (
        "string",
        "the track's voted viewpoint (voting.window votes, voting.window_s seconds); empty while it has no vote",
    ),
    "smoothed_confidence": ("float64", "share of the vote behind `smoothed` (majority) or its mean score (mean)"),
    "num_votes": ("int64", "votes behind `smoothed`"),
    "track_heading_deg": ("float64", "the track's heading over the voted window, deg (as heading_deg)"),
    "true": ("string", "ground-truth viewpoint of this box (track file attribute or --ground-truth CSV); empty: none"),
}


def _name(index) -> str | None:
    return VIEWPOINTS[index] if index is not None else None


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def table_columns(result, input_name: str = "") -> dict[str, list[Any]]:
    """{column: values} of a ReplayResult's records, in COLUMNS order (None = empty)."""
    recs = result.records
    classes = getattr(result, "track_classes", {}) or {}
    origin = int(getattr(result, "time_origin_ns", 0))
    probs = np.full((len(recs), len(VIEWPOINTS)), np.nan, np.float32)
    for i, r in enumerate(recs):
        if r.probs is not None:
            probs[i] = r.probs
    known = ~np.isnan(probs[:, 0])
    headings = np.full(len(recs), np.nan)
    if known.any():
        headings[known] = heading_from_probs(probs[known])[0]
    boxes = np.array([r.box if r.box is not None else (np.nan,) * 4 for r in recs], np.float64).reshape(-1, 4)
    cols: dict[str, list[Any]] = {
        "input": [input_name] * len(recs),
        "frame_index": [int(r.frame_index) for r in recs],
        "stamp_ns": [int(r.stamp_ns) for r in recs],
        "time_s": [(r.stamp_ns - origin) * 1e-9 for r in recs],
        "track_id": [r.track_id for r in recs],
        "class": [classes.get(r.track_id) for r in recs],
    }
    for j, col in enumerate(("x1", "y1", "x2", "y2")):
        cols[col] = [_finite(v) for v in boxes[:, j]]
    cols["score"] = [float(r.score) for r in recs]
    cols["label"] = [_name(r.label) for r in recs]
    for j, col in enumerate(SCORE_COLUMNS):
        cols[col] = [_finite(v) if k else None for v, k in zip(probs[:, j].tolist(), known)]
    cols["heading_deg"] = [
        _finite(r.heading_deg) if r.heading_deg is not None else _finite(h) for r, h in zip(recs, headings.tolist())
    ]
    cols["fresh"] = [bool(r.fresh) for r in recs]
    cols["label_age_s"] = [_finite(r.label_age_s) if r.label_age_s is not None else None for r in recs]
    cols["voted"] = [bool(r.voted) for r in recs]
    cols["truncated"] = [bool(r.truncated) for r in recs]
    cols["smoothed"] = [_name(r.smoothed) for r in recs]
    cols["smoothed_confidence"] = [
        _finite(r.smoothed_confidence) if r.smoothed_confidence is not None else None for r in recs
    ]
    cols["num_votes"] = [int(r.num_votes) for r in recs]
    cols["track_heading_deg"] = [
        _finite(r.track_heading_deg) if r.track_heading_deg is not None else None for r in recs
    ]
    cols["true"] = [_name(r.true) for r in recs]
    return {c: cols[c] for c in COLUMNS}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, columns: dict[str, Sequence[Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        writer.writerows([_cell(v) for v in row] for row in zip(*columns.values()))
    return path


def write_parquet(path: Path, columns: dict[str, Sequence[Any]]) -> Path | None:
    """The table as Parquet; None (and a log line) when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        _logger.info("pyarrow is not installed: %s not written (the CSV has the same rows)", path.name)
        return None
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    table = pa.table({c: pa.array(v, types[COLUMNS[c][0]]) for c, v in columns.items()})
    pq.write_table(table, path)
    return path


def write_detections_table(out_dir: str | Path, result, input_name: str = "") -> list[Path]:
    """out_dir/detections.csv, and out_dir/detections.parquet when pyarrow is installed; the paths written.
    result: a ReplayResult (records, track_classes, time_origin_ns)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = table_columns(result, input_name)
    paths = [write_csv(out / CSV_FILE, columns)]
    parquet = write_parquet(out / PARQUET_FILE, columns)
    return paths + ([parquet] if parquet is not None else [])


__all__ = [
    "COLUMNS",
    "CSV_FILE",
    "PARQUET_FILE",
    "SCORE_COLUMNS",
    "table_columns",
    "write_csv",
    "write_detections_table",
    "write_parquet",
]
