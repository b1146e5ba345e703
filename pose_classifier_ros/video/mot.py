"""MOTChallenge CSV tracks: read ground truth and tracker results, write them.

Rows are comma-separated, one box per row, frames 1-based (MOT frame f = video frame index f - 1); boxes
are ``bb_left, bb_top, bb_width, bb_height`` in pixels. The layout follows the column count:

====  ==========================================================  ==============================
cols  columns                                                     files
====  ==========================================================  ==============================
10    frame, id, bb_left, bb_top, bb_width, bb_height, conf, x, y, z   MOT15 (all), MOT16-20 det/results
9     frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility   MOT16/17/20 gt.txt
7     frame, id, bb_left, bb_top, bb_width, bb_height, conf             trackers' short form
6     frame, id, bb_left, bb_top, bb_width, bb_height                   boxes only
====  ==========================================================  ==============================

``kind="gt"`` (the default for 9 columns): conf is MOTChallenge's "consider" flag: rows with conf 0 are
ignore regions and are skipped (counted); boxes get score 1.0. ``kind="results"`` (the default otherwise):
conf is the detector/tracker score. id -1 means "no track" (detection files): the pipeline then assigns
its own IoU track ids. The class column, when present, becomes Detection.class_id (its text, e.g. "1",
or the name given in ``class_names``); visibility becomes the attribute "visibility".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.video.tracks import TrackFormatError, Tracks

_logger = logging.getLogger(__name__)

MOT_KINDS = ("auto", "gt", "results")
_LAYOUTS = {10: "frame id left top width height conf x y z", 9: "frame id left top width height conf class visibility"}


def _number(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value


def read_mot(path: str | Path, *, kind: str = "auto", class_names: dict[str, str] | None = None) -> Tracks:
    """Tracks from a MOTChallenge file (layout chosen by the column count, see the module docstring).

    kind: "gt" (conf is the consider flag), "results" (conf is a score) or "auto" (gt for 9 columns).
    class_names: class column value -> name (e.g. {"1": "zebra"}). TrackFormatError naming the file and
    line for a malformed row; boxes with no area are skipped and counted.
    """
    if kind not in MOT_KINDS:
        raise ValueError(f"MOT kind must be one of {', '.join(MOT_KINDS)}, got {kind!r}")
    path = Path(path)
    tracks = Tracks(source=str(path), format="mot")
    names = dict(class_names or {})
    columns = None
    try:
        with path.open(newline="") as fh:
            for line_no, line in enumerate(fh, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                fields = [f.strip() for f in (text.split(",") if "," in text else text.split())]
                if columns is None:
                    columns = len(fields)
                    if columns not in (6, 7, 9, 10):
                        raise TrackFormatError(
                            f"MOT tracks {str(path)}:{line_no}: {columns} columns; MOTChallenge files have 6, 7, 9 "
                            "(gt: frame,id,x,y,w,h,conf,class,visibility) or 10 (frame,id,x,y,w,h,conf,x,y,z)"
                        )
                    is_gt = kind == "gt" or (kind == "auto" and columns == 9)
                elif len(fields) != columns:
                    raise TrackFormatError(
                        f"MOT tracks {str(path)}:{line_no}: {len(fields)} columns where the file has {columns}"
                    )
                _read_row(path, line_no, fields, columns, is_gt, names, tracks)
    except OSError as exc:
        raise TrackFormatError(f"cannot read MOT tracks {str(path)!r}: {exc}") from None
    if not tracks.frames:
        _logger.warning("%s holds no boxes", path)
    return tracks


def _read_row(path, line_no: int, fields: list[str], columns: int, is_gt: bool, names: dict, tracks: Tracks) -> None:
    try:
        frame = int(float(fields[0]))
        if frame < 1 or frame != float(fields[0]):
            raise ValueError(f"frame {fields[0]!r} is not a 1-based frame number")
        ident = int(float(fields[1]))
        left, top, width, height = (_number(v) for v in fields[2:6])
        conf = _number(fields[6]) if columns >= 7 else 1.0
        cls = None
        attributes = {}
        if columns == 9:
            cls = str(int(float(fields[7])))
            attributes["visibility"] = fields[8]
    except ValueError as exc:
        raise TrackFormatError(f"MOT tracks {str(path)}:{line_no}: {exc}") from None
    if is_gt and conf == 0:
        tracks.skipped["ignored rows (conf 0)"] += 1
        return
    if width <= 0 or height <= 0:
        tracks.skipped["boxes with no area"] += 1
        return
    track_id = None if ident < 0 else str(ident)
    class_id = names.get(cls, cls) if cls is not None else None
    det = Detection(
        box=np.array([left, top, left + width, top + height], np.float32),
        score=1.0 if is_gt else conf,
        track_id=track_id,
        class_id=class_id,
    )
    try:
        tracks.add(frame - 1, det, attributes=attributes)
    except ValueError as exc:
        raise TrackFormatError(f"MOT tracks {str(path)}:{line_no}: {exc}") from None
    if track_id is not None and class_id is not None:
        tracks.labels.setdefault(track_id, class_id)


def write_mot(
    path: str | Path, tracks: Tracks, *, kind: str = "gt", class_numbers: dict[str, int] | None = None
) -> dict[str, int]:
    """Write `tracks` as MOTChallenge CSV, frames 1-based, rows ordered by frame then track.

    kind "gt": 9 columns (conf 1, class, visibility from the "visibility" attribute or 1); "results":
    10 columns (conf = score, x y z = -1). class_numbers: class label -> MOT class number; by default
    labels that are integers are kept and the others numbered 1.. in sorted order. Returns the mapping
    used. Track ids are written as they are when all are integers, else numbered 1.. in track order;
    detections without a track id get id -1.
    """
    if kind not in ("gt", "results"):
        raise ValueError(f"MOT kind to write must be gt or results, got {kind!r}")
    labels = sorted({d.class_id or "" for boxes in tracks.frames.values() for d in boxes} - {""})
    if class_numbers is None:
        named = [label for label in labels if not label.isdigit()]
        class_numbers = {label: int(label) for label in labels if label.isdigit()}
        free = (n for n in range(1, 10_000) if n not in class_numbers.values())
        class_numbers.update({label: next(free) for label in named})
    ids = tracks.track_ids()
    as_is = all(t.isdigit() for t in ids)
    numbered = {t: (t if as_is else str(i)) for i, t in enumerate(ids, start=1)}
    rows = []
    for index in sorted(tracks.frames):
        for det in sorted(tracks.frames[index], key=lambda d: (d.track_id is None, _id_key(d.track_id))):
            x1, y1, x2, y2 = (float(v) for v in det.box)
            ident = numbered[det.track_id] if det.track_id is not None else "-1"
            head = f"{index + 1},{ident},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f}"
            if kind == "gt":
                cls = class_numbers.get(det.class_id or "", -1)
                vis = tracks.attributes_of(index, det.track_id).get("visibility", "1") if det.track_id else "1"
                rows.append(f"{head},1,{cls},{vis}")
            else:
                rows.append(f"{head},{det.score:.4f},-1,-1,-1")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + ("\n" if rows else ""))
    return class_numbers


def _id_key(track_id: str | None):
    if track_id is None:
        return (1, 0, "")
    return (0, int(track_id), "") if track_id.lstrip("-").isdigit() else (0, 1 << 62, track_id)


__all__ = ["MOT_KINDS", "read_mot", "write_mot"]
