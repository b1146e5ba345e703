"""``ViewpointArray`` -> :class:`PolicyFrame`, duck-typed (rclpy and rosbags message objects both work)."""

from __future__ import annotations

import math
from typing import Any

from ..labels import UNKNOWN_LABEL, UNKNOWN_NAME, VIEWPOINTS, label_name
from ..stream.conversions import stamp_to_ns
from .policy_types import PolicyFrame, TrackObservation


def _label_name(vp: Any) -> str:
    name = str(getattr(vp, "smoothed_label_name", "") or "").strip().lower()
    if name in VIEWPOINTS:
        return name
    name = label_name(getattr(vp, "smoothed_label", UNKNOWN_LABEL))
    return "" if name == UNKNOWN_NAME else name  # the policy's "no label"


def _heading(vp: Any) -> float:
    value = float(getattr(vp, "track_heading_deg", math.nan))
    return value if math.isfinite(value) else math.nan


def frame_from_msg(msg: Any, vigilance: float | None = None) -> PolicyFrame:
    """A :class:`PolicyFrame` from a ``ViewpointArray``-like message (bbox center+size -> xyxy px).

    Older messages without ``label_stamp`` / ``track_heading_deg`` give label_stamp_ns 0 (fresh) and NaN.
    """
    tracks = []
    for vp in msg.viewpoints:
        bbox = vp.bbox
        cx, cy = float(bbox.center.position.x), float(bbox.center.position.y)
        w, h = float(bbox.size_x), float(bbox.size_y)
        label_stamp = getattr(vp, "label_stamp", None)
        tracks.append(
            TrackObservation(
                track_id=str(vp.track_id),
                box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                detection_score=float(vp.detection_score),
                smoothed_label=_label_name(vp),
                is_stable=bool(vp.is_stable),
                label_stamp_ns=stamp_to_ns(label_stamp) if label_stamp is not None else 0,
                heading_deg=_heading(vp),
            )
        )
    return PolicyFrame(
        stamp_ns=stamp_to_ns(msg.header.stamp),
        width=int(msg.image_width),
        height=int(msg.image_height),
        tracks=tracks,
        frame_id=str(msg.header.frame_id),
        vigilance=vigilance,
    )
