"""CVAT for video 1.1 XML: read tracks (interpolating keyframes as CVAT does) and write them as CVAT exports.

The format (one file per task or job export)::

    <annotations>
      <version>1.1</version>
      <meta><task>|<job> ... <start_frame>, <stop_frame>, <frame_filter>step=K</frame_filter>,
            <original_size><width/><height/></original_size> ... </meta>
      <track id="0" label="zebra" source="manual">
        <box frame="0" keyframe="1" outside="0" occluded="0" xtl=".." ytl=".." xbr=".." ybr=".." z_order="0">
          <attribute name="viewpoint">left</attribute>
        </box> ...

``frame`` is the video's frame index (CVAT exports absolute numbers: start_frame + k * step). A real export
writes every frame of a track (``keyframe="0"`` on CVAT's interpolations) and ends it with an
``outside="1"`` box; hand-made or converted files often carry keyframes only. The reader follows CVAT's own
interpolation: between two listed boxes of a track whose first is not outside, the frames of the task's
frame grid are filled linearly (box corners; occluded and attributes copied from the earlier box, which
are then flagged interpolated); a box with ``outside="1"`` hides the track until its next box; after the
last box, a track that is not outside continues to ``stop_frame`` when the file states it. Attributes a
box does not list carry over from the track's previous box (CVAT's mutable attributes). Tracks of other
shapes (polygon, points, ...) are skipped and counted.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.video.tracks import BoxFlags, TrackFormatError, Tracks

_logger = logging.getLogger(__name__)

CVAT_VERSION = "1.1"
ANNOTATION_SCORE = 1.0  # drawn boxes carry no detector score; 1.0 keeps them through a score filter
_SHAPES = ("polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton", "tag")


@dataclass
class _Shape:
    frame: int
    box: np.ndarray  # (4,) float64 xyxy
    outside: bool
    occluded: bool
    keyframe: bool
    attributes: dict[str, str]


@dataclass
class _Grid:
    """The task's frames: start_frame, start + step, ... up to stop_frame (None: unknown)."""

    start: int = 0
    step: int = 1
    stop: int | None = None

    def between(self, a: int, b: int) -> range:
        """Grid frames strictly between a and b."""
        first = a + 1 + (-(a + 1 - self.start)) % self.step
        return range(first, b, self.step)


def _fail(path, where: str, why: str) -> TrackFormatError:
    return TrackFormatError(f"CVAT tracks {str(path)!r}, {where}: {why}")


def _int_text(element, name: str, default: int | None = None) -> int | None:
    child = element.find(name) if element is not None else None
    if child is None or not (child.text or "").strip():
        return default
    return int(child.text.strip())


def _read_meta(path, meta, tracks: Tracks) -> _Grid:
    """Frame grid and frame size from <meta> (task, job or a one-task project export)."""
    grid = _Grid()
    if meta is None:
        return grid
    scope = meta.find("task")
    if scope is None:
        scope = meta.find("job")
    if scope is None and meta.find("project") is not None:
        tasks = meta.findall("project/tasks/task")
        if len(tasks) > 1:
            raise _fail(path, "<meta><project>", f"a project export with {len(tasks)} tasks; export the video's task")
        scope = tasks[0] if tasks else None
    try:
        grid.start = _int_text(scope, "start_frame", 0)
        grid.stop = _int_text(scope, "stop_frame", None)
        if grid.stop is None and _int_text(scope, "size", None):
            grid.stop = grid.start + _int_text(scope, "size") - 1
        step_text = (scope.findtext("frame_filter") or "").strip() if scope is not None else ""
        if step_text:
            key, _, value = step_text.partition("=")
            if key.strip() != "step":
                raise ValueError(f"frame_filter {step_text!r} is not step=K")
            grid.step = max(1, int(value))
        size = meta.find(".//original_size")
        if size is not None:
            tracks.width, tracks.height = _int_text(size, "width"), _int_text(size, "height")
    except ValueError as exc:
        raise _fail(path, "<meta>", str(exc)) from None
    tracks.last_frame = grid.stop
    return grid


def _read_box(path, track_id: str, element, previous: dict[str, str]) -> _Shape:
    frame_text = element.get("frame")
    where = f'<track id="{track_id}"> <box frame="{frame_text}">'
    try:
        frame = int(frame_text)
        if frame < 0:
            raise ValueError("frame is negative")
        box = np.array([float(element.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")], np.float64)
    except (TypeError, ValueError) as exc:
        missing = [k for k in ("frame", "xtl", "ytl", "xbr", "ybr") if element.get(k) is None]
        why = f"missing attribute(s) {', '.join(missing)}" if missing else f"not a number ({exc})"
        raise _fail(path, where, why) from None
    if not np.all(np.isfinite(box)):
        raise _fail(path, where, "a coordinate is not finite")
    flags = {}
    for key in ("outside", "occluded", "keyframe"):
        value = element.get(key, "1" if key == "keyframe" else "0")
        if value not in ("0", "1"):
            raise _fail(path, where, f'{key}="{value}" is not 0 or 1')
        flags[key] = value == "1"
    attributes = dict(previous)
    for child in element.findall("attribute"):
        if child.get("name") is None:
            raise _fail(path, where, "an <attribute> without a name")
        attributes[child.get("name")] = (child.text or "").strip()
    return _Shape(frame, box, flags["outside"], flags["occluded"], flags["keyframe"], attributes)


def _add_track(tracks: Tracks, track_id: str, label: str, shapes: list[_Shape], grid: _Grid, fill: bool) -> None:
    """Add a track's boxes: the listed ones plus, with `fill`, CVAT's interpolation on the grid."""

    def add(frame: int, box: np.ndarray, occluded: bool, interpolated: bool, attributes: dict[str, str]):
        det = Detection(box=box.astype(np.float32), score=ANNOTATION_SCORE, track_id=track_id, class_id=label)
        tracks.add(frame, det, BoxFlags(occluded=occluded, interpolated=interpolated), attributes)

    for i, shape in enumerate(shapes):
        if not shape.outside:
            add(shape.frame, shape.box, shape.occluded, not shape.keyframe, shape.attributes)
        if shape.outside or not fill:
            continue
        if i + 1 < len(shapes):
            nxt = shapes[i + 1]
            span = nxt.frame - shape.frame
            for frame in grid.between(shape.frame, nxt.frame):
                box = shape.box + (nxt.box - shape.box) * ((frame - shape.frame) / span)
                add(frame, box, shape.occluded, True, shape.attributes)
        elif grid.stop is not None:
            for frame in grid.between(shape.frame, grid.stop + 1):
                add(frame, shape.box, shape.occluded, True, shape.attributes)


def read_cvat_video(path: str | Path, *, interpolate: bool = True) -> Tracks:
    """Tracks from a "CVAT for video 1.1" XML file (task or job export, or keyframes only).

    interpolate: fill frames between listed boxes as CVAT does (False: the listed boxes only). Each box is a
    Detection with score 1.0, track_id = the track's id, class_id = the track's label. TrackFormatError for
    another format or version, or a malformed element (the message names it).
    """
    path = Path(path)
    tracks = Tracks(source=str(path), format="cvat")
    grid = _Grid()
    seen_version = None
    try:
        events = ET.iterparse(str(path), events=("start", "end"))
        _, root = next(events)
        if root.tag != "annotations":
            raise _fail(path, f"<{root.tag}>", "the root element is not <annotations>; not a CVAT XML export")
        for event, element in events:
            if event == "start":
                if element.tag == "image":
                    raise _fail(
                        path,
                        "<image>",
                        'this is a "CVAT for images" export (per-image boxes); export the task as '
                        '"CVAT for video 1.1" to keep its tracks',
                    )
                continue
            if element.tag == "version":
                seen_version = (element.text or "").strip()
                if seen_version != CVAT_VERSION:
                    raise _fail(path, "<version>", f"version {seen_version!r}; this reader knows {CVAT_VERSION}")
            elif element.tag == "meta":
                grid = _read_meta(path, element, tracks)
                root.remove(element)
            elif element.tag == "track":
                if seen_version is None:
                    raise _fail(path, "<annotations>", "no <version> before the first <track>")
                _read_track(path, element, tracks, grid, interpolate)
                root.remove(element)
    except ET.ParseError as exc:
        line, column = exc.position
        raise TrackFormatError(f"CVAT tracks {str(path)!r}, line {line} column {column}: not well-formed XML") from None
    except OSError as exc:
        raise TrackFormatError(f"cannot read CVAT tracks {str(path)!r}: {exc}") from None
    if seen_version is None:
        raise _fail(path, "<annotations>", "no <version>; not a CVAT for video 1.1 export")
    if not tracks.frames:
        _logger.warning("%s holds no box tracks", path)
    return tracks


def _read_track(path, element, tracks: Tracks, grid: _Grid, interpolate: bool) -> None:
    track_id, label = element.get("id"), element.get("label")
    if track_id is None or label is None:
        raise _fail(path, f'<track id="{track_id}" label="{label}">', "a track needs an id and a label")
    boxes = element.findall("box")
    if not boxes:
        shape = next((child.tag for child in element if child.tag in _SHAPES), "no shapes")
        tracks.skipped[f"{shape} tracks"] += 1
        return
    shapes: list[_Shape] = []
    previous: dict[str, str] = {}
    for box in boxes:
        shapes.append(_read_box(path, track_id, box, previous))
        previous = shapes[-1].attributes
    shapes.sort(key=lambda s: s.frame)
    for a, b in zip(shapes, shapes[1:]):
        if a.frame == b.frame:
            raise _fail(path, f'<track id="{track_id}">', f"two boxes on frame {a.frame}")
    if track_id in tracks.labels:
        raise _fail(path, f'<track id="{track_id}">', "a second track with this id")
    tracks.labels[track_id] = label
    _add_track(tracks, track_id, label, shapes, grid, interpolate)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------
def _runs(frames: list[int]) -> list[list[int]]:
    """Consecutive frame runs: [0, 1, 2, 5, 6] -> [[0, 1, 2], [5, 6]]."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _box_xml(frame: int, det: Detection, keyframe: bool, outside: bool, occluded: bool, attrs: dict) -> list[str]:
    x1, y1, x2, y2 = (float(v) for v in det.box)
    lines = [
        f'    <box frame="{frame}" keyframe="{int(keyframe)}" outside="{int(outside)}" occluded="{int(occluded)}" '
        f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0">'
    ]
    lines += [f"      <attribute name={quoteattr(k)}>{escape(str(v))}</attribute>" for k, v in attrs.items()]
    lines.append("    </box>")
    return lines


def _meta_xml(tracks: Tracks, name: str, num_frames: int, width: int, height: int, source: str, select: dict) -> list:
    now = datetime.now(timezone.utc).isoformat()
    labels: dict[str, set[str]] = {}
    for (_, track_id), attrs in tracks.attributes.items():
        labels.setdefault(tracks.labels.get(track_id, "object"), set()).update(attrs)
    for label in tracks.labels.values():
        labels.setdefault(label, set())
    lines = [
        "  <meta>",
        "    <task>",
        "      <id>1</id>",
        f"      <name>{escape(name)}</name>",
        f"      <size>{num_frames}</size>",
        "      <mode>interpolation</mode>",
        "      <overlap>0</overlap>",
        "      <bugtracker></bugtracker>",
        f"      <created>{now}</created>",
        f"      <updated>{now}</updated>",
        "      <subset>default</subset>",
        "      <start_frame>0</start_frame>",
        f"      <stop_frame>{num_frames - 1}</stop_frame>",
        "      <frame_filter></frame_filter>",
        "      <labels>",
    ]
    for label in sorted(labels):
        lines += ["        <label>", f"          <name>{escape(label)}</name>", "          <type>rectangle</type>"]
        lines.append("          <attributes>")
        for attr in sorted(labels[label]):
            values = select.get(attr)
            lines += [
                "            <attribute>",
                f"              <name>{escape(attr)}</name>",
                "              <mutable>True</mutable>",
                f"              <input_type>{'select' if values else 'text'}</input_type>",
                f"              <default_value>{escape(values[0]) if values else ''}</default_value>",
                f"              <values>{escape(chr(10).join(values or ()))}</values>",
                "            </attribute>",
            ]
        lines += ["          </attributes>", "        </label>"]
    lines += [
        "      </labels>",
        "      <original_size>",
        f"        <width>{width}</width>",
        f"        <height>{height}</height>",
        "      </original_size>",
        "    </task>",
        f"    <dumped>{now}</dumped>",
        f"    <source>{escape(source)}</source>",
        "  </meta>",
    ]
    return lines


def write_cvat_video(
    path: str | Path,
    tracks: Tracks,
    *,
    num_frames: int,
    width: int,
    height: int,
    name: str = "video",
    source: str = "",
    keyframes_only: bool = False,
    select_values: dict[str, tuple[str, ...]] | None = None,
) -> Path:
    """Write `tracks` as a "CVAT for video 1.1" task export.

    Like CVAT: every frame of each track is written (``keyframe="0"`` where the box's flags say
    interpolated; the first box after a gap is always a keyframe), each run of frames ends with an
    ``outside="1"`` copy of its last box on the next frame (none after the video's last frame), boxes carry
    their attributes, coordinates have 2 decimals. keyframes_only: write only keyframes and the outside
    boxes, as hand-made or converted files do (a reader interpolates the rest). Track ids are written as
    they are when all are integers, else numbered 0.. in track order. select_values: attribute name ->
    allowed values, declared in <meta> as a select input (e.g. {"viewpoint": VIEWPOINTS}).
    """
    path = Path(path)
    ids = tracks.track_ids()
    as_is = all(t.isdigit() for t in ids)
    numbered = {t: (t if as_is else str(i)) for i, t in enumerate(ids)}
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", f"  <version>{CVAT_VERSION}</version>"]
    lines += _meta_xml(tracks, name, num_frames, width, height, source, dict(select_values or {}))
    for track_id in ids:
        boxes = tracks.track(track_id)
        label = tracks.labels.get(track_id) or next(iter(boxes.values())).class_id or "object"
        lines.append(f'  <track id={quoteattr(numbered[track_id])} label={quoteattr(label)} source="manual">')
        for run in _runs(sorted(boxes)):
            for k, frame in enumerate(run):
                flags = tracks.flags_of(frame, track_id)
                # a run's first box is a keyframe; keyframes-only files also need its last one
                keyframe = k == 0 or not flags.interpolated or (keyframes_only and k == len(run) - 1)
                if keyframes_only and not keyframe:
                    continue
                attrs = tracks.attributes_of(frame, track_id)
                lines += _box_xml(frame, boxes[frame], keyframe, False, flags.occluded, attrs)
            last = run[-1]
            if last + 1 < num_frames:
                flags = tracks.flags_of(last, track_id)
                attrs = tracks.attributes_of(last, track_id)
                lines += _box_xml(last + 1, boxes[last], True, True, flags.occluded, attrs)
        lines.append("  </track>")
    lines += ["</annotations>", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


__all__ = ["ANNOTATION_SCORE", "CVAT_VERSION", "read_cvat_video", "write_cvat_video"]
