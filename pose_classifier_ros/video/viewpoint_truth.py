"""Ground-truth viewpoints from the track file itself: a per-box attribute (CVAT) or column (CSV).

Values are matched case-insensitively after turning "_", " " and "/" into "-": the 8 class names of
``labels.VIEWPOINTS`` and the aliases in ``VIEWPOINT_ALIASES`` (Wild Me / GZGC spellings such as
``frontleft``, reversed orders such as ``left-front``, ``rear`` for ``back``, one- and two-letter
abbreviations, ``left-side``). Values in ``MISSING_VALUES`` (empty, ``unknown``, ``n/a``, ...) mean "the
annotator gave none": those boxes have no ground truth and are counted. Any other value (e.g. Wild Me's
top-down ``up``/``upleft``, not one of the 8 classes) is unknown: by default one error names the first one
(value, frame, track) and counts them all; ``on_unknown="skip"`` drops those boxes with one warning.

A ground-truth CSV keyed by (frame, track) needs no code here: ``replay.ground_truth.load_ground_truth_csv``
reads ``frame_index,track_id,pose`` rows (frame_index = the video's 0-based frame).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from pose_classifier_ros.labels import VIEWPOINTS, normalize_label
from pose_classifier_ros.video.tracks import Tracks

_logger = logging.getLogger(__name__)

DEFAULT_ATTRIBUTE = "viewpoint"

_PAIRS = {  # class -> spellings besides the class name itself (after normalisation)
    "front": ("f", "head-on"),
    "back": ("b", "rear", "tail-on"),
    "left": ("l", "left-side", "side-left", "leftside"),
    "right": ("r", "right-side", "side-right", "rightside"),
    "front-left": ("fl", "frontleft", "left-front", "leftfront"),
    "front-right": ("fr", "frontright", "right-front", "rightfront"),
    "back-left": ("bl", "backleft", "left-back", "leftback", "rear-left", "rearleft", "left-rear", "leftrear"),
    "back-right": ("br", "backright", "right-back", "rightback", "rear-right", "rearright", "right-rear", "rightrear"),
}
VIEWPOINT_ALIASES: dict[str, str] = {alias: name for name, aliases in _PAIRS.items() for alias in aliases}
MISSING_VALUES = frozenset({"", "unknown", "none", "n-a", "na", "-", "?", "unclear", "unlabelled", "unlabeled"})


class UnknownViewpointError(ValueError):
    """An attribute value that is neither a viewpoint class, an alias nor a "missing" word."""


def _key(value: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[_\s/]+", "-", str(value).strip().lower())).strip("-") or ""


def viewpoint_index(value: str) -> int | None:
    """Class index of an annotated value; None for a "missing" value; UnknownViewpointError otherwise."""
    raw = str(value).strip().lower()
    if raw in MISSING_VALUES:
        return None
    key = _key(value)
    if key in MISSING_VALUES:
        return None
    try:
        return normalize_label(VIEWPOINT_ALIASES.get(key, key))
    except ValueError:
        raise UnknownViewpointError(
            f"{value!r} is not a viewpoint: expected one of {', '.join(VIEWPOINTS)} or an alias (docs/field_footage.md)"
        ) from None


@dataclass
class AttributeTruth:
    """by_frame: (frame index, track id) -> true class index (the key GroundTruth.by_frame uses);
    missing: boxes whose value says "none given"; absent: boxes without the attribute; unknown: value ->
    boxes skipped with that unknown value (on_unknown="skip")."""

    by_frame: dict[tuple[int, str], int] = field(default_factory=dict)
    attribute: str = DEFAULT_ATTRIBUTE
    source: str = ""
    missing: int = 0
    absent: int = 0
    unknown: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.by_frame)


def truth_from_attribute(
    tracks: Tracks, attribute: str = DEFAULT_ATTRIBUTE, *, on_unknown: str = "error"
) -> AttributeTruth:
    """True viewpoint per (frame, track) from the per-box attribute `attribute` of `tracks`.

    on_unknown: "error" (UnknownViewpointError naming the first unknown value with its frame and track,
    and how many boxes have unknown values) or "skip" (counted in ``unknown``, one warning). An empty
    result (no box has the attribute) is not an error: the caller decides whether ground truth was needed.
    Wrap it for replay's report as ``GroundTruth(by_frame=truth.by_frame, source=truth.source)``.
    """
    if on_unknown not in ("error", "skip"):
        raise ValueError(f"on_unknown must be 'error' or 'skip', got {on_unknown!r}")
    truth = AttributeTruth(attribute=attribute, source=f"{tracks.source} (attribute {attribute!r})")
    first_unknown = None
    for index in sorted(tracks.frames):
        for det in tracks.frames[index]:
            if det.track_id is None:
                continue
            value = tracks.attributes_of(index, det.track_id).get(attribute)
            if value is None:
                truth.absent += 1
                continue
            try:
                label = viewpoint_index(value)
            except UnknownViewpointError:
                truth.unknown[value] += 1
                first_unknown = first_unknown or (value, index, det.track_id)
                continue
            if label is None:
                truth.missing += 1
            else:
                truth.by_frame[(index, det.track_id)] = label
    if truth.unknown:
        n = sum(truth.unknown.values())
        distinct = ", ".join(repr(v) for v, _ in truth.unknown.most_common(8))
        value, index, track = first_unknown
        message = (
            f"{tracks.source}: {attribute} {value!r} on frame {index}, track {track} is not a viewpoint "
            f"(expected one of {', '.join(VIEWPOINTS)} or an alias in docs/field_footage.md); {n} boxes carry "
            f"unknown values ({distinct})"
        )
        if on_unknown == "error":
            raise UnknownViewpointError(message + "; skip them with on_unknown='skip'")
        _logger.warning("%s; those boxes have no ground truth", message)
    return truth


__all__ = [
    "DEFAULT_ATTRIBUTE",
    "MISSING_VALUES",
    "VIEWPOINT_ALIASES",
    "AttributeTruth",
    "UnknownViewpointError",
    "truth_from_attribute",
    "viewpoint_index",
]
