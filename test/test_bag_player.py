"""bag_player: a bag played in one process is received, in order and with /clock, in another."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
from helpers.waiting import wait_for

from pose_classifier_ros.bags.bagio import open_writer

pytestmark = pytest.mark.ros

FRAMES = 8
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 50_000_000

LISTENER = textwrap.dedent("""
    import json, sys
    import rclpy
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    out = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node("bag_listener")
    got = {"images": [], "detections": [], "clock": []}
    stamp = lambda h: h.stamp.sec * 10**9 + h.stamp.nanosec
    # images as a sensor-data (best-effort) consumer, detections reliable, /clock as TimeSource does
    node.create_subscription(Image, "/camera/image_raw",
                             lambda m: got["images"].append([stamp(m.header), int(m.data[0])]), qos_profile_sensor_data)
    node.create_subscription(Detection2DArray, "/detections",
                             lambda m: got["detections"].append([stamp(m.header), [d.id for d in m.detections]]),
                             QoSProfile(depth=50))
    node.create_subscription(Clock, "/clock",
                             lambda m: got["clock"].append(m.clock.sec * 10**9 + m.clock.nanosec), QoSProfile(depth=100))
    print("listening", flush=True)
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.05)
            with open(out + ".tmp", "w") as fh:
                json.dump(got, fh)
            import os; os.replace(out + ".tmp", out)
    except KeyboardInterrupt:
        pass
""")


def _write_bag(path):
    with open_writer(path) as writer:
        types = writer.typestore.types

        def header(stamp):
            return types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"
            )

        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/detections", "vision_msgs/msg/Detection2DArray")
        writer.add_topic("/other", "std_msgs/msg/String")
        bbox = types["vision_msgs/msg/BoundingBox2D"](
            center=types["vision_msgs/msg/Pose2D"](position=types["vision_msgs/msg/Point2D"](x=5.0, y=5.0), theta=0.0),
            size_x=4.0,
            size_y=4.0,
        )
        for i in range(FRAMES):
            stamp = START_NS + i * PERIOD_NS
            writer.write(
                "/camera/image_raw",
                stamp,
                types["sensor_msgs/msg/Image"](
                    header=header(stamp),
                    height=8,
                    width=8,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=24,
                    data=np.full(8 * 8 * 3, i, np.uint8),
                ),
            )
            det = types["vision_msgs/msg/Detection2D"](header=header(stamp), results=[], bbox=bbox, id=f"t{i}")
            writer.write(
                "/detections",
                stamp + 10_000_000,
                types["vision_msgs/msg/Detection2DArray"](header=header(stamp), detections=[det]),
            )
            writer.write("/other", stamp + 20_000_000, types["std_msgs/msg/String"](data="not played"))


def test_play_bag_with_clock_to_another_process(tmp_path, ros_env, processes):
    bag = tmp_path / "bag"
    _write_bag(bag)
    out = tmp_path / "received.json"
    listener_py = tmp_path / "listener.py"
    listener_py.write_text(LISTENER)
    listener = processes.start([sys.executable, str(listener_py), str(out)], ros_env, "listener")
    wait_for(lambda: "listening" in processes.output(listener), 60, message="listener start")

    player = processes.start(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "play",
            str(bag),
            "--clock",
            "--topics",
            "/camera/image_raw",
            "/detections",
            "--rate",
            "2",
            "--wait-for-subscribers",
            "30",
        ],
        ros_env,
        "player",
    )
    assert player.wait(120) == 0, processes.output(player)
    log = processes.output(player)
    assert f"published {2 * FRAMES} messages" in log, log

    def received():
        if not out.exists():
            return None
        got = json.loads(out.read_text())
        return got if len(got["images"]) == FRAMES and len(got["detections"]) == FRAMES else None

    got = wait_for(received, 20, message=f"{FRAMES} images and detections at the listener")
    stamps = [START_NS + i * PERIOD_NS for i in range(FRAMES)]
    assert [s for s, _ in got["images"]] == stamps
    assert [v for _, v in got["images"]] == list(range(FRAMES))  # payload intact, in order
    assert got["detections"] == [[s, [f"t{i}"]] for i, s in enumerate(stamps)]
    clock = got["clock"]
    assert clock, "no /clock received"
    assert clock == sorted(clock), "/clock went backwards"
    assert START_NS <= clock[0] and clock[-1] <= stamps[-1] + 10_000_000
    assert clock[-1] >= stamps[-1]
    processes.stop(listener)


def test_play_missing_topic_fails_with_topic_list(tmp_path, ros_env, processes):
    bag = tmp_path / "bag"
    _write_bag(bag)
    player = processes.start(
        [sys.executable, "-m", "pose_classifier_ros.cli", "play", str(bag), "--topics", "/nope"], ros_env, "player"
    )
    assert player.wait(60) == 1
    log = processes.output(player)
    assert "/nope" in log and "/camera/image_raw" in log and "Traceback" not in log
