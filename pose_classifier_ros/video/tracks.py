"""Tracks of a video, whatever file they came from: per frame index, the boxes as pipeline Detections.

Every reader (``cvat``, ``mot``, ``detections_csv``) returns one ``Tracks``: frame index (0-based, the
video's frame numbering, see ``decode``) -> list of ``stream.pipeline.Detection`` (box (4,) float32 xyxy
px, score, track_id str, class_id str | None), plus per (frame, track) flags (occluded, interpolated) and
attributes (CVAT per-box attributes, extra CSV columns). ``load_tracks`` picks the reader.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pose_classifier_ros.stream.pipeline import Detection

_logger = logging.getLogger(__name__)

TRACK_FORMATS = ("cvat", "mot", "csv")


class TrackFormatError(ValueError):
    """A track file that cannot be read as the format asked for; the message names the file and the line
    or element."""


@dataclass(frozen=True)
class BoxFlags:
    """occluded: the annotator marked the animal as occluded; interpolated: the box was not drawn by a
    person (CVAT keyframe="0", or filled in between keyframes by the reader)."""

    occluded: bool = False
    interpolated: bool = False


NO_FLAGS = BoxFlags()


@dataclass
class FitCounts:
    """What fitting the boxes to the video changed. clamped: boxes cut back to the frame; outside: boxes
    wholly outside the frame (dropped); beyond_frames / beyond_boxes: track frames at or after the video's
    last frame, and their boxes (kept in Tracks; the video never shows them)."""

    clamped: int = 0
    outside: int = 0
    beyond_frames: int = 0
    beyond_boxes: int = 0


@dataclass
class Tracks:
    """frames: frame index -> detections on it (in file order); flags / attributes: per (frame, track_id)
    (absent = no flags / none); labels: track_id -> class label (the CVAT track's label, MOT class, CSV
    class_id); width/height: frame size the file states (None when it does not); last_frame: the last frame
    the annotation covers when the file states it (CVAT stop_frame); skipped: reason -> rows or boxes
    skipped while reading; fitted: the (width, height, num_frames) fit_to_video last fitted the boxes to, and
    what it changed."""

    frames: dict[int, list[Detection]] = field(default_factory=dict)
    flags: dict[tuple[int, str], BoxFlags] = field(default_factory=dict)
    attributes: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    source: str = ""
    format: str = ""
    width: int | None = None
    height: int | None = None
    last_frame: int | None = None
    skipped: Counter = field(default_factory=Counter)
    fitted: tuple[tuple[int, int, int | None], FitCounts] | None = None

    def add(
        self,
        index: int,
        detection: Detection,
        flags: BoxFlags = NO_FLAGS,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Add one box; ValueError when the track already has a box on that frame."""
        index = int(index)
        boxes = self.frames.setdefault(index, [])
        track = detection.track_id
        if track is not None:
            if any(d.track_id == track for d in boxes):
                raise ValueError(f"track {track!r} has two boxes on frame {index}")
            if flags != NO_FLAGS:
                self.flags[(index, track)] = flags
            if attributes:
                self.attributes[(index, track)] = dict(attributes)
        boxes.append(detection)

    def detections(self, index: int) -> list[Detection]:
        return self.frames.get(int(index), [])

    def flags_of(self, index: int, track_id: str) -> BoxFlags:
        return self.flags.get((int(index), track_id), NO_FLAGS)

    def attributes_of(self, index: int, track_id: str) -> dict[str, str]:
        return self.attributes.get((int(index), track_id), {})

    @property
    def num_boxes(self) -> int:
        return sum(len(boxes) for boxes in self.frames.values())

    def frame_indices(self) -> list[int]:
        """Frames with at least one box, ascending."""
        return sorted(i for i, boxes in self.frames.items() if boxes)

    def track_ids(self) -> list[str]:
        ids = {d.track_id for boxes in self.frames.values() for d in boxes if d.track_id is not None}
        return sorted(ids, key=_natural)

    def track(self, track_id: str) -> dict[int, Detection]:
        """Frame index -> the track's box, ascending."""
        out = {}
        for index in sorted(self.frames):
            for d in self.frames[index]:
                if d.track_id == track_id:
                    out[index] = d
        return out

    def summary(self) -> str:
        text = f"{len(self.track_ids())} tracks, {self.num_boxes} boxes on {len(self.frame_indices())} frames"
        if self.skipped:
            text += " (skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) + ")"
        return text


def _natural(track_id: str):
    """Sort key: numeric ids in numeric order, others after them in text order."""
    return (0, int(track_id), "") if track_id.lstrip("-").isdigit() else (1, 0, track_id)


def fit_to_video(tracks: Tracks, width: int, height: int, num_frames: int | None = None) -> FitCounts:
    """Clamp every box to the width x height frame (in place) and count what did not fit.

    Boxes partly outside are clamped (counted); boxes with no area inside are dropped (counted); with
    num_frames, frames at index >= num_frames are counted (their boxes are kept: the video just never
    reaches them). Nothing here is fatal: the caller reports the counts. Fitting the same tracks to the
    same video again (backend calibration, then the replay) returns the first fit's counts: the boxes are
    clamped already, and the counts say what the file held.
    """
    video = (int(width), int(height), None if num_frames is None else int(num_frames))
    if tracks.fitted is not None and tracks.fitted[0] == video:
        return tracks.fitted[1]
    counts = FitCounts()
    limits = np.array([width, height, width, height], np.float32)
    for index in list(tracks.frames):
        kept = []
        for det in tracks.frames[index]:
            box = np.clip(det.box, 0.0, limits)
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                counts.outside += 1
                tracks.flags.pop((index, det.track_id), None)
                tracks.attributes.pop((index, det.track_id), None)
                continue
            if not np.array_equal(box, det.box):
                counts.clamped += 1
                det.box = box.astype(np.float32)
            kept.append(det)
        tracks.frames[index] = kept
        if num_frames is not None and index >= num_frames and kept:
            counts.beyond_frames += 1
            counts.beyond_boxes += len(kept)
    if counts.clamped or counts.outside:
        _logger.warning(
            "%s: %d boxes reach outside the %dx%d frame (clamped), %d lie wholly outside (dropped)",
            tracks.source,
            counts.clamped,
            width,
            height,
            counts.outside,
        )
    if counts.beyond_frames:
        _logger.warning(
            "%s: %d boxes on %d frames lie beyond the video's %d frames",
            tracks.source,
            counts.beyond_boxes,
            counts.beyond_frames,
            num_frames,
        )
    tracks.fitted = (video, counts)
    return counts


def guess_format(path: str | Path) -> str:
    """Track format from the name: "cvat" for .xml, "mot" for .txt, .csv by its header (TrackFormatError if unclear)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "cvat"
    if suffix == ".txt":
        return "mot"
    if suffix == ".csv":
        try:
            with path.open(newline="") as fh:
                first = fh.readline()
        except OSError as exc:
            raise TrackFormatError(f"cannot read tracks {str(path)!r}: {exc}") from None
        return "csv" if "frame_index" in first else "mot"
    raise TrackFormatError(
        f"cannot tell the format of tracks {str(path)!r} from its name; give it (one of {', '.join(TRACK_FORMATS)})"
    )


def load_tracks(path: str | Path, fmt: str | None = None, **options) -> Tracks:
    """Read a track file: fmt "cvat" (CVAT for video 1.1 XML), "mot" (MOTChallenge CSV) or "csv" (the
    package's detections CSV); None guesses from the name. ``options`` go to the reader."""
    fmt = guess_format(path) if fmt is None else fmt
    if fmt == "cvat":
        from pose_classifier_ros.video.cvat import read_cvat_video

        tracks = read_cvat_video(path, **options)
    elif fmt == "mot":
        from pose_classifier_ros.video.mot import read_mot

        tracks = read_mot(path, **options)
    elif fmt == "csv":
        from pose_classifier_ros.video.detections_csv import read_detections_csv

        tracks = read_detections_csv(path, **options)
    else:
        raise TrackFormatError(f"unknown track format {fmt!r}; expected one of {', '.join(TRACK_FORMATS)}")
    _logger.info("%s (%s): %s", path, fmt, tracks.summary())
    return tracks


__all__ = [
    "NO_FLAGS",
    "TRACK_FORMATS",
    "BoxFlags",
    "FitCounts",
    "TrackFormatError",
    "Tracks",
    "fit_to_video",
    "guess_format",
    "load_tracks",
]
