"""Publish a scripted scenario (scenario.py) as sensor_msgs/Image + vision_msgs/Detection2DArray.

    python test/ros_helpers/play_frames.py --image /ns/image --detections /ns/detections [--scenario main]
        [--period 0.1] [--best-effort-detections]

Waits until the node's subscriptions match, publishes every frame, prints "done" and exits.
--best-effort-detections also opens a best-effort publisher on the detections topic: incompatible with
the node's reliable subscription, so the node must warn about it (it carries no data).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import scenario
from ros_helpers.colour_model import colour_frame
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from pose_classifier_ros.stream.image_codec import encode_rgb


def stamp(msg, ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
    msg.header.frame_id = scenario.FRAME_ID


def image_msg(frame: scenario.Frame) -> Image:
    rgb = colour_frame(scenario.WIDTH, scenario.HEIGHT, [(b.xyxy, b.label) for b in frame.boxes])
    msg = Image(height=scenario.HEIGHT, width=scenario.WIDTH, encoding=frame.encoding, is_bigendian=0)
    if frame.encoding in ("rgb8", "bgr8", "bgra8", "mono8"):
        data, msg.step = encode_rgb(rgb, frame.encoding)
        msg.data = bytes(data)
    else:  # an encoding nobody decodes
        msg.step = scenario.WIDTH * 2
        msg.data = bytes(np.zeros(scenario.HEIGHT * msg.step, np.uint8))
    stamp(msg, frame.stamp_ns)
    return msg


def detections_msg(stamp_ns: int, boxes) -> Detection2DArray:
    msg = Detection2DArray()
    stamp(msg, stamp_ns)
    for b in boxes:
        x1, y1, x2, y2 = b.xyxy
        det = Detection2D(id=b.track_id)
        det.bbox.center.position.x, det.bbox.center.position.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        det.bbox.size_x, det.bbox.size_y = float(x2 - x1), float(y2 - y1)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = "animal", 0.9
        det.results = [hyp]
        msg.detections.append(det)
    return msg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--detections", required=True)
    parser.add_argument("--scenario", default="main", choices=("main", "zero"))
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--best-effort-detections", action="store_true")
    args = parser.parse_args()
    frames, orphans = scenario.main_scenario() if args.scenario == "main" else scenario.zero_stamp_scenario()

    rclpy.init()
    node = rclpy.create_node("frame_player")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # a driver publishes reliable
    image_pub = node.create_publisher(Image, args.image, reliable)
    det_pub = node.create_publisher(Detection2DArray, args.detections, reliable)
    if args.best_effort_detections:
        node.create_publisher(
            Detection2DArray, args.detections, QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
    deadline = time.monotonic() + 60
    while image_pub.get_subscription_count() < 1 or det_pub.get_subscription_count() < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            print("node subscriptions never matched", flush=True)
            return 1
    time.sleep(0.5)  # let the node's readers finish matching before the first sample
    for frame in frames:
        img, det = image_msg(frame), detections_msg(frame.stamp_ns, frame.boxes)
        if frame.detections_first and frame.send_detections:
            det_pub.publish(det)
        image_pub.publish(img)
        if frame.send_detections and not frame.detections_first:
            det_pub.publish(det)
        for orphan in orphans:
            if frame.stamp_ns < orphan <= frame.stamp_ns + scenario.PERIOD_NS:
                det_pub.publish(detections_msg(orphan, frame.boxes))
        time.sleep(args.period)
    print("done", len(frames), flush=True)
    time.sleep(1.0)  # reliable samples still in flight
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
