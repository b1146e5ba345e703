"""Duck-typed conversions between ROS messages and the core's types.

Works on rclpy message objects *and* rosbags message dataclasses (same field names), so the live
node and the offline replay share them. Never imports rclpy: message classes come in through a
`types` namespace (see `message_types`).
"""

from __future__ import annotations

import logging
import math
import time
from types import SimpleNamespace

import numpy as np

from pose_classifier_ros.labels import NUM_CLASSES, UNKNOWN_LABEL, UNKNOWN_NAME, heading_from_probs, label_name
from pose_classifier_ros.stream.image_codec import UnsupportedEncodingError, decode_compressed, to_rgb_uint8
from pose_classifier_ros.stream.pipeline_types import Detection, FrameResult

_logger = logging.getLogger(__name__)
_NS = 1_000_000_000
_WARN_EVERY_S = 10.0
_last_warning = [-math.inf]


def _warn_throttled(msg: str, *args) -> None:
    # A detector that always emits one broken box would otherwise log on every frame.
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY_S:
        _last_warning[0] = now
        _logger.warning(msg, *args)
    else:
        _logger.debug(msg, *args)


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time-like (sec, nanosec) -> int nanoseconds. Also accepts rclpy Time (nanoseconds)."""
    if hasattr(stamp, "sec"):
        return int(stamp.sec) * _NS + int(stamp.nanosec)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    raise TypeError(f"not a time stamp: {stamp!r}")


def ns_to_stamp(ns: int, time_cls):
    """int nanoseconds -> time_cls(sec=..., nanosec=...) (builtin_interfaces Time of rclpy or rosbags)."""
    sec, nanosec = divmod(int(ns), _NS)
    return time_cls(sec=sec, nanosec=nanosec)


def _score(det) -> float:
    best = 0.0
    for result in getattr(det, "results", ()) or ():
        hyp = getattr(result, "hypothesis", result)  # vision_msgs >= 3 nests the class/score
        score = float(getattr(hyp, "score", 0.0))
        if math.isfinite(score):
            best = max(best, score)
    return best


def _class_id(det) -> str | None:
    """class_id of the highest-scoring hypothesis (the first one on ties), None without hypotheses."""
    best, best_score = None, -math.inf
    for result in getattr(det, "results", ()) or ():
        hyp = getattr(result, "hypothesis", result)
        score = float(getattr(hyp, "score", 0.0))
        score = score if math.isfinite(score) else -math.inf
        if best is None or score > best_score:
            best, best_score = str(getattr(hyp, "class_id", "") or ""), score
    return best or None


def bbox_to_box(bbox) -> np.ndarray:
    """vision_msgs BoundingBox2D-like (center + size) -> (4,) float32 xyxy pixels (theta ignored)."""
    center = getattr(bbox.center, "position", bbox.center)  # vision_msgs 3.x had center.x directly
    cx, cy, sx, sy = float(center.x), float(center.y), float(bbox.size_x), float(bbox.size_y)
    return np.array([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2], np.float32)


def detections_from_msg(msg) -> list[Detection]:
    """vision_msgs/Detection2DArray-like -> list[Detection] (boxes xyxy pixels), in message order.

    Boxes with non-finite or non-positive sizes are skipped (logged, throttled). Detection2D.id ""
    becomes track_id None; class_id is the best hypothesis' class (for filter.class_ids).
    """
    out: list[Detection] = []
    bad = 0
    for det in getattr(msg, "detections", ()) or ():
        box = bbox_to_box(det.bbox)
        if not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            bad += 1
            continue
        track_id = str(getattr(det, "id", "") or "") or None
        out.append(Detection(box=box, score=_score(det), track_id=track_id, class_id=_class_id(det)))
    if bad:
        _warn_throttled("skipped %d detection(s) with a NaN/inf or non-positive box size", bad)
    return out


def image_from_msg(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage-like -> (H, W, 3) uint8 RGB; UnsupportedEncodingError if not possible."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed(msg.format, msg.data)
    if not hasattr(msg, "encoding"):
        raise UnsupportedEncodingError(f"not an image message: {type(msg).__name__}")
    return to_rgb_uint8(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(getattr(msg, "is_bigendian", False))
    )


# Every Viewpoint field with its value for "nothing known"; rosbags dataclasses need all of them.
_VIEWPOINT_DEFAULTS = dict(
    track_id="",
    detection_score=0.0,
    label=UNKNOWN_LABEL,
    label_name=UNKNOWN_NAME,
    smoothed_label=UNKNOWN_LABEL,
    smoothed_label_name=UNKNOWN_NAME,
    smoothed_confidence=0.0,
    num_votes=0,
    is_stable=False,
    fresh=False,
    truncated=False,
    voted=False,
    heading_deg=math.nan,
    heading_spread_deg=math.nan,
    track_heading_deg=math.nan,
    track_heading_spread_deg=math.nan,
)


def box_to_bbox(box, types):
    """(4,) xyxy pixels -> vision_msgs BoundingBox2D (center + size, theta 0) built from `types`."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return types.BoundingBox2D(
        center=types.Pose2D(position=types.Point2D(x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0), theta=0.0),
        size_x=x2 - x1,
        size_y=y2 - y1,
    )


def make_viewpoint(types, **fields):
    """A Viewpoint from `types` with every field set: `fields` over the "unknown" defaults.

    bbox may be given as `box` ((4,) xyxy pixels); scores default to zeros, label_stamp to zero time.
    """
    values = dict(_VIEWPOINT_DEFAULTS)
    box = fields.pop("box", None)
    values.update(fields)
    if "bbox" not in values:
        values["bbox"] = box_to_bbox(box if box is not None else (0.0, 0.0, 0.0, 0.0), types)
    scores = np.zeros(8, np.float32)
    given = np.asarray(values.get("scores", scores), np.float32).reshape(-1)[:8]
    scores[: given.size] = given
    values["scores"] = scores
    values.setdefault("label_stamp", ns_to_stamp(0, types.Time))
    return types.Viewpoint(**values)


def frame_result_to_msg(result: FrameResult, header, types):
    """FrameResult -> ViewpointArray built from `types` (attributes ViewpointArray, Viewpoint, BoundingBox2D,
    Pose2D, Point2D, Time). Every field is passed explicitly, as rosbags dataclasses require.

    header: the image's header, copied unchanged (its stamp is the capture time). label_stamp is the stamp of
    the frame each label was computed on (zero while UNKNOWN); a track without a classification or vote
    gets UNKNOWN, "unknown", zero scores and num_votes 0.
    """
    viewpoints = []
    for r in result.results:
        fields = dict(
            track_id=str(r.track_id),
            box=r.box,
            detection_score=float(r.detection_score),
            truncated=bool(getattr(r, "truncated", False)),
        )
        label = int(r.label)
        if 0 <= label < NUM_CLASSES:
            probs = np.asarray(r.probs, np.float32).reshape(-1)[:8]
            heading, spread = getattr(r, "heading_deg", None), getattr(r, "heading_spread_deg", None)
            if heading is None:
                heading, spread = heading_from_probs(probs)
            stamp_ns = result.stamp_ns if r.label_stamp_ns is None else r.label_stamp_ns
            fields.update(
                label=label,
                label_name=label_name(label),
                scores=probs,
                label_stamp=ns_to_stamp(stamp_ns, types.Time),
                fresh=bool(r.fresh),
                voted=bool(r.voted),
                heading_deg=float(heading),
                heading_spread_deg=float(spread),
            )
        smoothed = r.smoothed
        if smoothed is not None and int(smoothed.num_votes) > 0:
            track_heading = float(getattr(smoothed, "heading_deg", math.nan))
            track_spread = float(getattr(smoothed, "heading_spread_deg", math.nan))
            if not math.isfinite(track_heading):  # a vote without its own heading: the label's heading
                track_heading, track_spread = (
                    fields.get("heading_deg", math.nan),
                    fields.get("heading_spread_deg", math.nan),
                )
            fields.update(
                smoothed_label=int(smoothed.label),
                smoothed_label_name=label_name(smoothed.label),
                smoothed_confidence=float(smoothed.confidence),
                num_votes=min(int(smoothed.num_votes), 65535),
                is_stable=bool(smoothed.is_stable),
                track_heading_deg=track_heading,
                track_heading_spread_deg=track_spread,
            )
        viewpoints.append(make_viewpoint(types, **fields))
    return types.ViewpointArray(
        header=header, image_width=int(result.width), image_height=int(result.height), viewpoints=viewpoints
    )


def message_namespace(names: dict[str, str], typestore=None, optional: tuple[str, ...] = ()) -> SimpleNamespace:
    """Message classes by full type name, as attributes: ``{"Time": "builtin_interfaces/msg/Time", ...}``.

    From a rosbags typestore (or its ``types`` mapping) when given, else the generated rclpy message modules
    (imports ``<pkg>.msg``, not rclpy). `optional` attributes are None where the typestore lacks the type.
    """
    if typestore is not None:
        t = getattr(typestore, "types", typestore)
        return SimpleNamespace(**{attr: t.get(name) if attr in optional else t[name] for attr, name in names.items()})
    import importlib

    classes = {}
    for attr, name in names.items():
        package, _, cls = name.split("/")
        classes[attr] = getattr(importlib.import_module(f"{package}.msg"), cls)
    return SimpleNamespace(**classes)


VIEWPOINT_TYPES = {
    "ViewpointArray": "pose_classifier_ros/msg/ViewpointArray",
    "Viewpoint": "pose_classifier_ros/msg/Viewpoint",
    "BoundingBox2D": "vision_msgs/msg/BoundingBox2D",
    "Pose2D": "vision_msgs/msg/Pose2D",
    "Point2D": "vision_msgs/msg/Point2D",
    "Header": "std_msgs/msg/Header",
    "Time": "builtin_interfaces/msg/Time",
}


def message_types(typestore=None) -> SimpleNamespace:
    """The `types` namespace for frame_result_to_msg (VIEWPOINT_TYPES): rosbags classes with a typestore
    (e.g. bagio.make_typestore()) or its ``types`` mapping, else the generated rclpy classes."""
    return message_namespace(VIEWPOINT_TYPES, typestore)


__all__ = (
    "UNKNOWN_LABEL",
    "bbox_to_box",
    "box_to_bbox",
    "detections_from_msg",
    "frame_result_to_msg",
    "image_from_msg",
    "make_viewpoint",
    "message_namespace",
    "message_types",
    "ns_to_stamp",
    "stamp_to_ns",
)
