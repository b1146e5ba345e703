"""Image annotations of a FrameResult: boxes and "track voted-viewpoint" labels that viewers draw on the image.

One ``visualization_msgs/msg/ImageMarker`` per processed frame, stamped with the image header, of type
LINE_LIST: 4 segments per box plus the label text as stroke-font segments (visualization/stroke_font.py), in
image pixels, coloured by voted viewpoint. Why this shape (docs/visualization.md has the details):

- Foxglove's Image panel draws ``visualization_msgs/msg/ImageMarker`` (and ``foxglove_msgs`` ImageAnnotations,
  which ROS installs here lack); ``ImageMarkerArray`` exists only as a Foxglove legacy schema, not in ROS 2.
- ImageMarker has no TEXT type, so text is drawn as lines; one LINE_LIST carries every box and label, so a
  frame is exactly one message and a frame without animals (zero points) clears the previous drawing.
- ``outline_colors`` holds one colour per point (both ends of a segment alike): Foxglove reads per-point and
  per-segment lists, and this is the RViz convention.

The core builds an ``Overlay`` (segments, colours, thickness); ``overlay_to_image_marker`` turns it into a
message from a ``types`` namespace (rclpy or rosbags classes, see ``annotation_types``) and
``render_overlay`` draws the very same segments with PIL (debug image, examples, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from pose_classifier_ros.labels import label_name
from pose_classifier_ros.stream.conversions import message_namespace
from pose_classifier_ros.visualization import stroke_font

# RGB 0..1 per viewpoint: left flank cool (blues/purple), right flank warm (yellow/orange/red), front white,
# back green (Okabe-Ito based, distinguishable with the common colour-vision deficiencies).
VIEWPOINT_COLORS: dict[str, tuple[float, float, float]] = {
    "front": (1.0, 1.0, 1.0),
    "front-left": (0.55, 0.85, 1.0),
    "left": (0.25, 0.55, 1.0),
    "back-left": (0.75, 0.55, 1.0),
    "back": (0.0, 0.85, 0.55),
    "back-right": (1.0, 0.35, 0.2),
    "right": (0.90, 0.62, 0.0),
    "front-right": (0.94, 0.89, 0.26),
}
UNKNOWN_COLOR = (0.6, 0.6, 0.6)
UNSTABLE_ALPHA = 0.6  # a track whose vote is not stable yet is drawn translucent (and its label ends in "?")
MARKER_NS = "pose_classifier/viewpoints"


def viewpoint_color(label) -> tuple[float, float, float]:
    """RGB 0..1 of a class index or name (grey for unknown)."""
    if isinstance(label, (int, np.integer)):
        label = label_name(label)
    return VIEWPOINT_COLORS.get(str(label), UNKNOWN_COLOR)


@dataclass
class OverlayStyle:
    """thickness: line width, px (0 = max(1, round(longest image side / 640))); text_height: label cap
    height, px (0 = 9 x thickness, at least 12)."""

    thickness: float = 0.0
    text_height: float = 0.0

    def resolve(self, width: int, height: int) -> tuple[float, float]:
        thickness = float(self.thickness) if self.thickness > 0 else float(max(1, round(max(width, height) / 640)))
        text_height = float(self.text_height) if self.text_height > 0 else max(12.0, 9.0 * thickness)
        return thickness, text_height


@dataclass
class Overlay:
    """Line segments to draw on one image. segments: (M, 2, 2) float32 [segment, end, xy] pixels;
    colors: (M, 4) float32 RGBA 0..1 per segment; labels: (text, x, y) of each label's top-left corner."""

    width: int
    height: int
    thickness: float
    segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2), np.float32))
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: list = field(default_factory=list)


def box_segments(box) -> np.ndarray:
    """(4, 2, 2) float32 outline of an xyxy box (x2/y2 exclusive: drawn on the last pixel row/column)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float32).reshape(4))
    x2, y2 = max(x1, x2 - 1.0), max(y1, y2 - 1.0)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
    return np.stack([corners, np.roll(corners, -1, axis=0)], axis=1)


SHORT_NAMES = {
    "front": "F",
    "front-left": "FL",
    "front-right": "FR",
    "left": "L",
    "right": "R",
    "back-left": "BL",
    "back-right": "BR",
    "back": "B",
    "unknown": "?",
}


def label_text(result, short: bool = False) -> str:
    """ "<track> <voted viewpoint>" (short: "F", "FL", ... "B"), with "?" while the vote is not stable."""
    smoothed = result.smoothed
    name = label_name(getattr(smoothed, "label", -1))
    name = SHORT_NAMES[name] if short else name
    return f"{result.track_id} {name}{'' if getattr(smoothed, 'is_stable', False) else '?'}"


def _label_origin(box, text: str, text_h: float, thickness: float, width: int) -> tuple[float, float]:
    x1, y1 = float(box[0]), float(box[1])
    gap = 2.0 * thickness
    y = y1 - gap - text_h if y1 - gap - text_h >= 0 else y1 + gap + thickness  # above the box, else inside
    x = min(max(x1, 0.0), max(0.0, width - stroke_font.text_width(text, text_h) - thickness))
    return x, y


def build_overlay(result, style: OverlayStyle | None = None) -> Overlay:
    """Overlay of a FrameResult: each result's box and label in the colour of its voted viewpoint."""
    thickness, text_h = (style or OverlayStyle()).resolve(result.width, result.height)
    segments, colors, labels = [], [], []
    for r in result.results:
        smoothed = r.smoothed
        rgba = (
            *viewpoint_color(int(getattr(smoothed, "label", -1))),
            1.0 if getattr(smoothed, "is_stable", False) else UNSTABLE_ALPHA,
        )
        text = label_text(r)
        if stroke_font.text_width(text, text_h) > float(r.box[2] - r.box[0]):  # keep labels of close boxes apart
            text = label_text(r, short=True)
        x, y = _label_origin(r.box, text, text_h, thickness, result.width)
        segs = np.concatenate([box_segments(r.box), stroke_font.text_segments(text, x, y, text_h)])
        segments.append(segs)
        colors.append(np.tile(np.asarray(rgba, np.float32), (len(segs), 1)))
        labels.append((text, x, y))
    if segments:
        return Overlay(result.width, result.height, thickness, np.concatenate(segments), np.concatenate(colors), labels)
    return Overlay(result.width, result.height, thickness)


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
ANNOTATION_TYPES = {
    "ImageMarker": "visualization_msgs/msg/ImageMarker",
    "Point": "geometry_msgs/msg/Point",
    "ColorRGBA": "std_msgs/msg/ColorRGBA",
    "Duration": "builtin_interfaces/msg/Duration",
    "Header": "std_msgs/msg/Header",
    "Time": "builtin_interfaces/msg/Time",
    "TrackSummary": "pose_classifier_ros/msg/TrackSummary",
}


def annotation_types(typestore=None) -> SimpleNamespace:
    """Message classes for this module and best_views (ANNOTATION_TYPES). From a rosbags typestore (or its
    ``types`` mapping; TrackSummary may be missing there), else the generated rclpy classes."""
    return message_namespace(ANNOTATION_TYPES, typestore, optional=("TrackSummary",))


LINE_LIST = 2  # visualization_msgs/ImageMarker.LINE_LIST
ADD = 0


def overlay_to_image_marker(overlay: Overlay, header, types, ns: str = MARKER_NS, marker_id: int = 0):
    """One ImageMarker (LINE_LIST, 2 points per segment, one colour per point) with `header` copied."""
    pts = overlay.segments.reshape(-1, 2).astype(float)
    cols = np.repeat(overlay.colors, 2, axis=0).astype(float)
    Point, Color = types.Point, types.ColorRGBA
    points = [Point(x=x, y=y, z=0.0) for x, y in pts.tolist()]
    colors = [Color(r=r, g=g, b=b, a=a) for r, g, b, a in cols.tolist()]
    first = colors[0] if colors else Color(r=1.0, g=1.0, b=1.0, a=1.0)
    return types.ImageMarker(
        header=header,
        ns=ns,
        id=int(marker_id),
        type=LINE_LIST,
        action=ADD,
        position=Point(x=0.0, y=0.0, z=0.0),
        scale=float(overlay.thickness),
        outline_color=first,
        filled=0,
        fill_color=Color(r=0.0, g=0.0, b=0.0, a=0.0),
        lifetime=types.Duration(sec=0, nanosec=0),
        points=points,
        outline_colors=colors,
    )


def frame_result_to_image_marker(result, header, types, style: OverlayStyle | None = None):
    """FrameResult -> the frame's ImageMarker (header: the image's, copied)."""
    return overlay_to_image_marker(build_overlay(result, style), header, types)


def image_marker_to_overlay(marker, width: int, height: int) -> Overlay:
    """Overlay of a decoded LINE_LIST ImageMarker (rclpy or rosbags object), to draw what a viewer draws."""
    pts = np.array([[p.x, p.y] for p in marker.points], np.float32).reshape(-1, 2)
    n = len(pts) // 2
    cols = [(c.r, c.g, c.b, c.a) for c in marker.outline_colors]
    oc = marker.outline_color
    per_point = len(cols) == 2 * n
    colors = np.array(
        [cols[2 * i] if per_point else cols[i] if len(cols) == n else (oc.r, oc.g, oc.b, oc.a) for i in range(n)],
        np.float32,
    ).reshape(-1, 4)
    return Overlay(width, height, float(marker.scale), pts[: 2 * n].reshape(n, 2, 2), colors)


def _draw_segments(draw, segments, fill, width: int, offset=(0.0, 0.0)) -> None:
    ox, oy = offset
    r = width / 2.0
    for (ax, ay), (bx, by) in segments:
        draw.line([(ax - ox, ay - oy), (bx - ox, by - oy)], fill=fill, width=width)
        if width > 4:  # round joints for thick lines (Foxglove strokes with round caps)
            for x, y in ((ax - ox, ay - oy), (bx - ox, by - oy)):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def render_overlay(frame: np.ndarray, overlay: Overlay) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of `frame` with the overlay's segments drawn (alpha-blended), as a viewer would.

    Opaque runs are drawn straight into the copy; translucent ones are blended only inside their bounding box
    (blending the whole frame costs ~100 ms at 1080p).
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    width = max(1, int(round(overlay.thickness)))
    segs, cols = overlay.segments, overlay.colors
    # runs of consecutive segments with one colour (one box + its label)
    breaks = np.flatnonzero(np.any(cols[1:] != cols[:-1], axis=1)) + 1 if len(cols) else np.zeros(0, int)
    for start, stop in zip(np.r_[0, breaks].astype(int), np.r_[breaks, len(cols)].astype(int)):
        if stop <= start:
            continue
        rgba = tuple(int(round(255 * v)) for v in cols[start].tolist())
        run = segs[start:stop].tolist()
        if rgba[3] >= 255:
            _draw_segments(draw, run, rgba[:3], width)
            continue
        pad = width + 1
        x0 = int(max(0, np.floor(segs[start:stop, :, 0].min()) - pad))
        y0 = int(max(0, np.floor(segs[start:stop, :, 1].min()) - pad))
        x1 = int(min(image.width, np.ceil(segs[start:stop, :, 0].max()) + pad + 1))
        y1 = int(min(image.height, np.ceil(segs[start:stop, :, 1].max()) + pad + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        region = image.crop((x0, y0, x1, y1)).convert("RGBA")
        layer = Image.new("RGBA", region.size, (0, 0, 0, 0))
        _draw_segments(ImageDraw.Draw(layer), run, rgba, width, (x0, y0))
        image.paste(Image.alpha_composite(region, layer).convert("RGB"), (x0, y0))
    return np.asarray(image)


__all__ = (
    "MARKER_NS",
    "Overlay",
    "OverlayStyle",
    "UNKNOWN_COLOR",
    "VIEWPOINT_COLORS",
    "annotation_types",
    "box_segments",
    "build_overlay",
    "frame_result_to_image_marker",
    "image_marker_to_overlay",
    "label_text",
    "overlay_to_image_marker",
    "render_overlay",
    "SHORT_NAMES",
    "viewpoint_color",
)
