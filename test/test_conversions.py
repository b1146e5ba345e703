"""conversions: the same functions on rclpy message objects and on rosbags dataclasses."""

import logging

import numpy as np
import pytest

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.conversions import (
    detections_from_msg,
    frame_result_to_msg,
    image_from_msg,
    message_types,
    ns_to_stamp,
    stamp_to_ns,
)
from pose_classifier_ros.stream.image_codec import UnsupportedEncodingError, encode_compressed, encode_rgb
from pose_classifier_ros.stream.pipeline_types import FrameResult, ViewpointResult
from pose_classifier_ros.stream.voting import SmoothedLabel

rclpy_serialization = pytest.importorskip("rclpy.serialization")
vision_msgs = pytest.importorskip("vision_msgs.msg")
sensor_msgs = pytest.importorskip("sensor_msgs.msg")
from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from pose_classifier_ros.msg import ViewpointArray  # noqa: E402

STAMP_NS = 1_700_000_123_456_789_012


@pytest.fixture(scope="module")
def typestore():
    from pose_classifier_ros.bags.bagio import make_typestore

    return make_typestore()


def make_detection(cx, cy, w, h, scores=(), det_id=""):
    det = vision_msgs.Detection2D()
    det.id = det_id
    det.bbox.center.position.x, det.bbox.center.position.y = float(cx), float(cy)
    det.bbox.size_x, det.bbox.size_y = float(w), float(h)
    for s in scores:
        hyp = vision_msgs.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = "zebra", float(s)
        det.results.append(hyp)
    return det


@pytest.fixture
def detection_array():
    msg = vision_msgs.Detection2DArray()
    msg.header = Header(stamp=Time(sec=12, nanosec=5), frame_id="cam")
    msg.detections = [
        make_detection(100, 50, 40, 20, (0.3, 0.8), "zebra-1"),
        make_detection(10, 10, 4, 6),
        make_detection(np.nan, 10, 4, 6, (0.9,)),
        make_detection(10, 10, -4, 6, (0.9,)),
        make_detection(10, 10, 0, 6, (0.9,)),
    ]
    return msg


def test_stamps():
    t = Time(sec=1_700_000_123, nanosec=456_789_012)
    assert stamp_to_ns(t) == STAMP_NS
    assert ns_to_stamp(STAMP_NS, Time) == t
    back = ns_to_stamp(-1, Time)  # one ns before the epoch: nanosec stays in 0..1e9-1
    assert (back.sec, back.nanosec) == (-1, 999_999_999)
    rclpy_time = pytest.importorskip("rclpy.time")
    assert stamp_to_ns(rclpy_time.Time(nanoseconds=42)) == 42
    with pytest.raises(TypeError):
        stamp_to_ns("yesterday")


def check_detections(dets):
    assert len(dets) == 2
    np.testing.assert_allclose(dets[0].box, [80, 40, 120, 60])
    assert dets[0].score == pytest.approx(0.8) and dets[0].track_id == "zebra-1"
    np.testing.assert_allclose(dets[1].box, [8, 7, 12, 13])
    assert dets[1].score == 0.0 and dets[1].track_id is None
    assert dets[0].box.dtype == np.float32


def test_detections_from_rclpy_msg(detection_array, caplog):
    with caplog.at_level(logging.DEBUG, logger="pose_classifier_ros.stream.conversions"):
        dets = detections_from_msg(detection_array)
    check_detections(dets)
    assert "skipped 3 detection(s)" in caplog.text


def test_detections_from_rosbags_msg(detection_array, typestore):
    raw = rclpy_serialization.serialize_message(detection_array)
    msg = typestore.deserialize_cdr(raw, "vision_msgs/msg/Detection2DArray")
    assert type(msg).__module__.startswith("rosbags")
    check_detections(detections_from_msg(msg))


def test_empty_detection_array():
    assert detections_from_msg(vision_msgs.Detection2DArray()) == []


@pytest.fixture(scope="module")
def rgb():
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 7, y * 9, 200 - x * 3], -1).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8", "bayer_rggb8"])
def test_image_from_rclpy_and_rosbags(rgb, typestore, encoding):
    data, step = encode_rgb(rgb, encoding, row_padding=4)
    msg = sensor_msgs.Image(height=24, width=32, encoding=encoding, is_bigendian=0, step=step, data=data)
    out = image_from_msg(msg)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    if encoding in ("rgb8", "bgra8"):
        np.testing.assert_array_equal(out, rgb)
    bag_msg = typestore.deserialize_cdr(rclpy_serialization.serialize_message(msg), "sensor_msgs/msg/Image")
    assert isinstance(bag_msg.data, np.ndarray)
    np.testing.assert_array_equal(image_from_msg(bag_msg), out)


def test_compressed_image(rgb, typestore):
    msg = sensor_msgs.CompressedImage(format="rgb8; png compressed bgr8", data=encode_compressed(rgb, "png"))
    np.testing.assert_array_equal(image_from_msg(msg), rgb)
    bag_msg = typestore.deserialize_cdr(rclpy_serialization.serialize_message(msg), "sensor_msgs/msg/CompressedImage")
    np.testing.assert_array_equal(image_from_msg(bag_msg), rgb)
    with pytest.raises(UnsupportedEncodingError):
        image_from_msg(sensor_msgs.CompressedImage(format="jpeg", data=b"garbage"))
    with pytest.raises(UnsupportedEncodingError, match="depth image"):
        image_from_msg(sensor_msgs.Image(height=1, width=1, encoding="32FC1", step=4, data=bytes(4)))


@pytest.fixture
def frame_result():
    probs = np.array([0.01, 0.02, 0.03, 0.80, 0.05, 0.04, 0.03, 0.02], np.float32)
    results = [
        ViewpointResult(
            "zebra-1",
            np.array([80, 40, 120, 60], np.float32),
            0.8,
            INDEX["left"],
            probs,
            SmoothedLabel(INDEX["left"], 0.6, 5, True),
        ),
        ViewpointResult(
            "iou-3",
            np.array([0.5, 1.5, 10.5, 31.5], np.float32),
            0.0,
            INDEX["left"],
            probs[::-1].copy(),
            SmoothedLabel(INDEX["back"], 1.0, 1, False),
        ),
    ]
    return FrameResult(stamp_ns=STAMP_NS, width=640, height=480, results=results, skipped=1, timings_ms={"total": 1.0})


def check_viewpoint_array(msg, frame_result):
    assert stamp_to_ns(msg.header.stamp) == STAMP_NS and msg.header.frame_id == "cam"
    assert (msg.image_width, msg.image_height) == (640, 480)
    assert len(msg.viewpoints) == 2
    v0, v1 = msg.viewpoints
    assert v0.track_id == "zebra-1" and v1.track_id == "iou-3"
    assert (v0.bbox.center.position.x, v0.bbox.center.position.y) == (100.0, 50.0)
    assert (v0.bbox.size_x, v0.bbox.size_y, v0.bbox.center.theta) == (40.0, 20.0, 0.0)
    assert (v1.bbox.center.position.x, v1.bbox.size_y) == (5.5, 30.0)
    assert v0.detection_score == pytest.approx(0.8)
    assert (v0.label, v0.label_name) == (3, "left")
    np.testing.assert_allclose(np.asarray(v0.scores), frame_result.results[0].probs)
    assert (v0.smoothed_label, v0.smoothed_label_name) == (3, "left")
    assert v0.smoothed_confidence == pytest.approx(0.6) and v0.num_votes == 5 and v0.is_stable
    assert (v1.smoothed_label_name, v1.num_votes, v1.is_stable) == ("back", 1, False)


def test_frame_result_to_rclpy_msg_round_trip(frame_result):
    types = message_types()
    header = Header(stamp=ns_to_stamp(STAMP_NS, Time), frame_id="cam")
    msg = frame_result_to_msg(frame_result, header, types)
    assert isinstance(msg, ViewpointArray)
    check_viewpoint_array(msg, frame_result)
    raw = rclpy_serialization.serialize_message(msg)
    back = rclpy_serialization.deserialize_message(raw, ViewpointArray)
    check_viewpoint_array(back, frame_result)
    assert back.viewpoints[0].detection_score == pytest.approx(0.8, abs=1e-6)  # float32 on the wire


def test_frame_result_to_rosbags_msg(frame_result, typestore):
    types = message_types(typestore)
    header = types.Header(stamp=ns_to_stamp(STAMP_NS, types.Time), frame_id="cam")
    msg = frame_result_to_msg(frame_result, header, types)
    check_viewpoint_array(msg, frame_result)
    raw = typestore.serialize_cdr(msg, "pose_classifier_ros/msg/ViewpointArray")
    # Bytes written by rosbags (replay) read back in rclpy (a live subscriber) and are identical to rclpy's.
    rclpy_msg = rclpy_serialization.deserialize_message(bytes(raw), ViewpointArray)
    check_viewpoint_array(rclpy_msg, frame_result)
    rclpy_raw = rclpy_serialization.serialize_message(
        frame_result_to_msg(frame_result, Header(stamp=ns_to_stamp(STAMP_NS, Time), frame_id="cam"), message_types())
    )
    # Same message content either way (bytes may differ only in CDR alignment padding).
    assert rclpy_serialization.deserialize_message(rclpy_raw, ViewpointArray) == rclpy_msg
    assert len(bytes(raw)) == len(rclpy_raw)


def test_empty_frame_result(typestore):
    empty = FrameResult(stamp_ns=0, width=10, height=20, results=[], skipped=0, timings_ms={})
    for types, header in [
        (message_types(), Header()),
        (
            message_types(typestore),
            message_types(typestore).Header(stamp=ns_to_stamp(0, message_types(typestore).Time), frame_id=""),
        ),
    ]:
        msg = frame_result_to_msg(empty, header, types)
        assert list(msg.viewpoints) == [] and (msg.image_width, msg.image_height) == (10, 20)
