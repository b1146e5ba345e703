"""Image annotations: one LINE_LIST ImageMarker per frame, boxes + stroke-font labels, colours per voted viewpoint,
identical through rclpy and rosbags (each decodes the other's bytes)."""

from __future__ import annotations

import numpy as np
import pytest

from pose_classifier_ros.bags.bagio import make_typestore
from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.stream.pipeline_types import FrameResult, ViewpointResult
from pose_classifier_ros.stream.voting import SmoothedLabel
from pose_classifier_ros.visualization import stroke_font
from pose_classifier_ros.visualization.annotations import (
    UNSTABLE_ALPHA,
    VIEWPOINT_COLORS,
    annotation_types,
    build_overlay,
    frame_result_to_image_marker,
    image_marker_to_overlay,
    label_text,
    render_overlay,
)

W, H = 640, 480
MARKER = "visualization_msgs/msg/ImageMarker"


def vp(track, box, voted, stable=True, label=None):
    label = voted if label is None else label
    return ViewpointResult(
        track_id=track,
        box=np.asarray(box, np.float32),
        detection_score=0.7,
        label=label,
        probs=np.eye(8, dtype=np.float32)[label],
        smoothed=SmoothedLabel(voted, 1.0, 3, stable),
    )


def frame_result(results=None):
    if results is None:
        results = [
            vp("iou-1", (100, 120, 300, 260), INDEX["left"]),
            vp("z7", (400, 200, 600, 400), INDEX["right"], stable=False, label=INDEX["back"]),
        ]
    return FrameResult(stamp_ns=1_700_000_000_123_456_789, width=W, height=H, results=results)


def test_overlay_boxes_labels_and_colours():
    overlay = build_overlay(frame_result())
    assert [t for t, _, _ in overlay.labels] == ["iou-1 left", "z7 right?"]
    n1 = 4 + len(stroke_font.text_segments("iou-1 left", 0, 0, 12))
    assert len(overlay.segments) == n1 + 4 + len(stroke_font.text_segments("z7 right?", 0, 0, 12))
    # the box outline comes first: corners on the box's first and last pixel rows/columns
    np.testing.assert_array_equal(overlay.segments[:4, 0], [[100, 120], [299, 120], [299, 259], [100, 259]])
    np.testing.assert_allclose(overlay.colors[:n1], [[*VIEWPOINT_COLORS["left"], 1.0]] * n1)
    np.testing.assert_allclose(
        overlay.colors[n1:], [[*VIEWPOINT_COLORS["right"], UNSTABLE_ALPHA]] * (len(overlay.segments) - n1)
    )
    # labels sit above their box, inside the image
    text_segs = overlay.segments[4:n1]
    assert text_segs[..., 1].max() < 120 and text_segs[..., 1].min() >= 0 and text_segs[..., 0].min() >= 100


def test_narrow_box_gets_the_short_label_and_top_box_label_goes_inside():
    overlay = build_overlay(frame_result([vp("iou-12", (5, 0, 45, 40), INDEX["back-right"])]))
    assert overlay.labels[0][0] == "iou-12 BR" == label_text(vp("iou-12", (0, 0, 1, 1), INDEX["back-right"]), True)
    assert overlay.labels[0][2] > 0  # no room above: drawn inside the box


def test_marker_round_trip_through_rosbags_keeps_stamp_points_and_colours():
    store = make_typestore()
    types = annotation_types(store)
    header = types.Header(stamp=types.Time(sec=1_700_000_000, nanosec=123_456_789), frame_id="camera_optical")
    result = frame_result()
    marker = frame_result_to_image_marker(result, header, types)
    assert marker.type == 2 and len(marker.points) == 2 * len(build_overlay(result).segments)
    assert len(marker.outline_colors) == len(marker.points)  # one colour per point (Foxglove and RViz read it)
    back = store.deserialize_cdr(store.serialize_cdr(marker, MARKER), MARKER)
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == (
        1_700_000_000,
        123_456_789,
        "camera_optical",
    )
    overlay = image_marker_to_overlay(back, W, H)
    ref = build_overlay(result)
    np.testing.assert_allclose(overlay.segments, ref.segments)
    np.testing.assert_allclose(overlay.colors, ref.colors)
    assert overlay.thickness == ref.thickness == 1.0


def test_empty_frame_is_one_marker_without_points():
    store = make_typestore()
    types = annotation_types(store)
    marker = frame_result_to_image_marker(
        frame_result([]), types.Header(stamp=types.Time(sec=3, nanosec=4), frame_id="c"), types
    )
    back = store.deserialize_cdr(store.serialize_cdr(marker, MARKER), MARKER)
    assert len(back.points) == 0 and back.header.stamp.sec == 3 and back.type == 2


def test_rclpy_and_rosbags_decode_each_others_bytes():
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    store = make_typestore()
    rc = annotation_types()  # the generated rclpy classes
    result = frame_result()
    marker = frame_result_to_image_marker(result, rc.Header(stamp=rc.Time(sec=7, nanosec=8), frame_id="cam"), rc)
    raw = rclpy_serialization.serialize_message(marker)
    back = store.deserialize_cdr(raw, MARKER)
    np.testing.assert_allclose(image_marker_to_overlay(back, W, H).segments, build_overlay(result).segments)
    bt = annotation_types(store)
    ours = frame_result_to_image_marker(result, bt.Header(stamp=bt.Time(sec=7, nanosec=8), frame_id="cam"), bt)
    again = rclpy_serialization.deserialize_message(bytes(store.serialize_cdr(ours, MARKER)), rc.ImageMarker)
    assert again == marker


def test_render_draws_the_marker_segments():
    result = frame_result()
    frame = np.full((H, W, 3), 60, np.uint8)
    drawn = render_overlay(frame, build_overlay(result))
    left = np.round(255 * np.array(VIEWPOINT_COLORS["left"]))
    np.testing.assert_allclose(drawn[190, 100], left, atol=1)  # left edge of the "left" box
    np.testing.assert_array_equal(drawn[190, 200], frame[190, 200])  # inside: untouched
    right = 255 * np.array(VIEWPOINT_COLORS["right"]) * UNSTABLE_ALPHA + 60 * (1 - UNSTABLE_ALPHA)
    np.testing.assert_allclose(drawn[300, 400], right, atol=2)  # unstable: blended
    assert np.array_equal(frame, np.full((H, W, 3), 60, np.uint8))  # input untouched


def test_stroke_font_covers_every_label_and_stays_in_its_box():
    for text in [*VIEWPOINTS, "iou-0123456789", "zebra_7:(a/b)"]:
        assert all(stroke_font.has_glyph(c) for c in text), text
        segs = stroke_font.text_segments(text, 10.0, 20.0, 12.0)
        assert segs[..., 0].min() >= 10.0 and segs[..., 0].max() <= 10.0 + stroke_font.text_width(text, 12.0)
        assert segs[..., 1].min() >= 20.0 and segs[..., 1].max() <= 20.0 + 12.0 * 7 / 6  # "," descends
    assert len(stroke_font.text_segments("\u00e9", 0, 0, 6)) == 4  # unknown characters: a box
