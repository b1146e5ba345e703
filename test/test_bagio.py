"""bagio: type store (vision_msgs + our messages, ament hashes), sqlite3/MCAP round trips, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pose_classifier_ros.bags import bagio
from pose_classifier_ros.bags.bagio import BagError, open_reader, open_writer

VENV_SHARE = (
    Path(os.environ.get("AMENT_PREFIX_PATH", Path(__file__).resolve().parents[1] / ".venv").split(os.pathsep)[0])
    / "share"
)


def _header(types, stamp_ns):
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="cam"
    )


def _write_small_bag(path: Path, storage: str, frames: int = 3) -> None:
    with open_writer(path, storage=storage) as writer:
        types = writer.typestore.types
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/viewpoints", "pose_classifier_ros/msg/ViewpointArray")
        for i in range(frames):
            stamp = 1_000_000_000 + i * 100_000_000
            data = np.full(4 * 6 * 3, i, np.uint8)
            writer.write(
                "/camera/image_raw",
                stamp,
                types["sensor_msgs/msg/Image"](
                    header=_header(types, stamp), height=4, width=6, encoding="rgb8", is_bigendian=0, step=18, data=data
                ),
            )
            # raw CDR bytes are accepted too
            msg = types["pose_classifier_ros/msg/ViewpointArray"](
                header=_header(types, stamp), image_width=6, image_height=4, viewpoints=[]
            )
            writer.write(
                "/viewpoints", stamp + 1, writer.typestore.serialize_cdr(msg, "pose_classifier_ros/msg/ViewpointArray")
            )


def test_typestore_has_vision_msgs_and_ours_with_ament_hashes():
    store = bagio.make_typestore()
    for name in (
        "vision_msgs/msg/Detection2DArray",
        "vision_msgs/msg/LabelInfo",
        "pose_classifier_ros/msg/ViewpointArray",
        "pose_classifier_ros/msg/PolicyState",
    ):
        assert name in store.types
    assert bagio.check_type_hashes(store) == {}
    # and the check really compares something: the ament-generated hash of our array type
    ament = json.loads((VENV_SHARE / "pose_classifier_ros/msg/ViewpointArray.json").read_text())["type_hashes"][0]
    assert store.hash_rihs01("pose_classifier_ros/msg/ViewpointArray") == ament["hash_string"]
    ament = json.loads((VENV_SHARE / "vision_msgs/msg/Detection2DArray.json").read_text())["type_hashes"][0]
    assert store.hash_rihs01("vision_msgs/msg/Detection2DArray") == ament["hash_string"]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip(tmp_path, storage):
    bag = tmp_path / "bag"
    _write_small_bag(bag, storage)
    with open_reader(bag) as reader:
        topics = reader.topics
        assert topics["/camera/image_raw"].msgtype == "sensor_msgs/msg/Image"
        assert topics["/camera/image_raw"].count == 3
        assert topics["/viewpoints"].count == 3
        msgs = list(reader.messages(["/camera/image_raw"]))
        assert [m[1] for m in msgs] == [1_000_000_000, 1_100_000_000, 1_200_000_000]
        img = reader.deserialize(msgs[2][2], msgs[2][3])
        assert (img.width, img.height, img.encoding) == (6, 4, "rgb8")
        assert np.all(np.asarray(img.data) == 2)
        everything = list(reader.messages())
        assert len(everything) == 6
    # the single storage file opens directly too
    (single,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    with open_reader(single) as reader:
        assert set(reader.topics) == {"/camera/image_raw", "/viewpoints"}


def test_rosbags_messages_deserialize_into_rclpy_classes(tmp_path):
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from sensor_msgs.msg import Image

    from pose_classifier_ros.msg import ViewpointArray

    bag = tmp_path / "bag"
    _write_small_bag(bag, "mcap", frames=1)
    with open_reader(bag) as reader:
        raw = {topic: data for topic, _, data, _ in reader.messages()}
    img = rclpy_serialization.deserialize_message(raw["/camera/image_raw"], Image)
    assert (img.width, img.height, img.step) == (6, 4, 18)
    arr = rclpy_serialization.deserialize_message(raw["/viewpoints"], ViewpointArray)
    assert arr.header.frame_id == "cam" and arr.image_width == 6


def test_missing_topic_lists_bag_topics(tmp_path):
    bag = tmp_path / "bag"
    _write_small_bag(bag, "mcap", frames=1)
    with open_reader(bag) as reader:
        with pytest.raises(BagError) as err:
            reader.require_topic("/detections")
        assert "/detections" in str(err.value)
        assert "/camera/image_raw" in str(err.value) and "sensor_msgs/msg/Image" in str(err.value)
        with pytest.raises(BagError, match="has type sensor_msgs/msg/Image"):
            reader.require_topic("/camera/image_raw", ["vision_msgs/msg/Detection2DArray"])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_is_a_clear_error(tmp_path, storage):
    bag = tmp_path / "bag"
    _write_small_bag(bag, storage, frames=5)
    (data,) = [p for p in bag.iterdir() if p.name != "metadata.yaml"]
    with data.open("r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    with pytest.raises(BagError, match="corrupt|truncated"):
        with open_reader(bag) as reader:
            list(reader.messages())


def test_not_a_bag(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        open_reader(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="metadata.yaml"):
        open_reader(tmp_path / "empty")
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(BagError, match="cannot open bag"):
        open_reader(garbage)


def test_writer_refuses_existing_path_and_unknown_storage(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="exists already"):
        open_writer(tmp_path / "exists")
    with pytest.raises(BagError, match="unknown storage"):
        open_writer(tmp_path / "new", storage="rosbag1")
