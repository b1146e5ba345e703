"""The package's detections CSV for a video: one box per row, frames 0-based (the video's frame index).

Columns (a header row names them; order free):

=============  ========  =======================================================================
column         required  meaning
=============  ========  =======================================================================
frame_index    yes       0-based frame of the video (decode order of presentation; CVAT's ``frame``)
x1,y1,x2,y2    yes       box corners, pixels, x2/y2 the exclusive right/bottom edge
track_id       no        the tracker's id; empty or absent: the pipeline assigns IoU track ids
score          no        detector score (default 1.0)
class_id       no        detector class (e.g. species), used by the class filter
any other      no        kept as per-box attributes (e.g. ``viewpoint`` for ground truth)
=============  ========  =======================================================================

This extends ``pose-classifier annotate``'s boxes CSV (x1,y1,x2,y2[,track_id], one image) with the frame.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.video.tracks import TrackFormatError, Tracks

_logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("frame_index", "x1", "y1", "x2", "y2")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, "track_id", "score", "class_id")


def read_detections_csv(path: str | Path) -> Tracks:
    """Tracks from the package's detections CSV (see the module docstring); TrackFormatError naming the
    file and line for a malformed row. Boxes with no area are skipped and counted."""
    path = Path(path)
    tracks = Tracks(source=str(path), format="csv")
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or ())]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise TrackFormatError(
                    f"detections CSV {str(path)!r} lacks column(s) {', '.join(missing)}; it has {columns}"
                )
            reader.fieldnames = columns
            extra = [c for c in columns if c not in KNOWN_COLUMNS]
            for line_no, row in enumerate(reader, start=2):
                _read_row(path, line_no, row, extra, tracks)
    except OSError as exc:
        raise TrackFormatError(f"cannot read detections CSV {str(path)!r}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TrackFormatError(f"detections CSV {str(path)!r} is not text: {exc}") from None
    if not tracks.frames:
        _logger.warning("%s holds no boxes", path)
    return tracks


def _read_row(path, line_no: int, row: dict, extra: list[str], tracks: Tracks) -> None:
    try:
        if None in row:
            raise ValueError("more fields than the header names")
        frame_text = (row["frame_index"] or "").strip()
        frame = int(frame_text)
        if frame < 0:
            raise ValueError(f"frame_index {frame} is negative")
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
        if not np.all(np.isfinite(box)):
            raise ValueError("a coordinate is not finite")
        score_text = (row.get("score") or "").strip()
        score = float(score_text) if score_text else 1.0
    except (TypeError, ValueError) as exc:
        raise TrackFormatError(f"detections CSV {str(path)}:{line_no}: {exc}") from None
    if box[2] <= box[0] or box[3] <= box[1]:
        tracks.skipped["boxes with no area"] += 1
        return
    track_id = (row.get("track_id") or "").strip() or None
    class_id = (row.get("class_id") or "").strip() or None
    attributes = {c: (row.get(c) or "").strip() for c in extra if (row.get(c) or "").strip()}
    try:
        tracks.add(frame, Detection(box, score, track_id, class_id), attributes=attributes)
    except ValueError as exc:
        raise TrackFormatError(f"detections CSV {str(path)}:{line_no}: {exc}") from None
    if track_id is not None and class_id is not None:
        tracks.labels.setdefault(track_id, class_id)


def write_detections_csv(path: str | Path, tracks: Tracks, attributes: tuple[str, ...] = ()) -> Path:
    """Write `tracks` as the package's detections CSV, rows by frame; `attributes` adds those per-box
    attributes as columns (empty where a box lacks one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*REQUIRED_COLUMNS[:1], "track_id", *REQUIRED_COLUMNS[1:], "score", "class_id", *attributes])
        for index in sorted(tracks.frames):
            for det in tracks.frames[index]:
                attrs = tracks.attributes_of(index, det.track_id) if det.track_id else {}
                writer.writerow(
                    [
                        index,
                        det.track_id or "",
                        *(f"{float(v):.2f}" for v in det.box),
                        f"{det.score:.4f}",
                        det.class_id or "",
                        *(attrs.get(a, "") for a in attributes),
                    ]
                )
    return path


__all__ = ["KNOWN_COLUMNS", "REQUIRED_COLUMNS", "read_detections_csv", "write_detections_csv"]
