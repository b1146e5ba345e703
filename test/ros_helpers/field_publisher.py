"""A field camera + detector for issue-14 tests: big rgb8 frames at a low rate plus detections with class ids,
and a recorder of the node's viewpoints and diagnostics.

    python test/ros_helpers/field_publisher.py OUT.json /ns [--width 1920 --height 1080] [--rate 1] [--count 20]
        [--image-reliability reliable|best_effort]

Waits for the node's detections subscription to match (the image one may never match or carry data:
that is the point), publishes `count` frames, each with the DETECTIONS below, records every ViewpointArray
and the latest diagnostics, rewrites OUT.json (atomically) every second and once at the end.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers.colour_model import colour_frame
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from pose_classifier_ros.msg import ViewpointArray
from pose_classifier_ros.stream.image_codec import encode_rgb

# (track id, class id, detector score, xyxy as fractions of the frame, label = colour)
DETECTIONS = (
    ("elk-1", "elk", 0.9, (0.30, 0.30, 0.45, 0.60), "left"),
    ("person-1", "person", 0.95, (0.60, 0.30, 0.70, 0.70), "right"),  # another class
    ("elk-2", "elk", 0.2, (0.10, 0.60, 0.20, 0.80), "back"),  # a weak detection
    ("elk-3", "elk", 0.8, (0.0, 0.20, 0.10, 0.40), "front"),  # cut by the left edge
)


def detections_msg(header, width: int, height: int) -> Detection2DArray:
    msg = Detection2DArray(header=header)
    for track_id, class_id, score, (fx1, fy1, fx2, fy2), _ in DETECTIONS:
        x1, y1, x2, y2 = fx1 * width, fy1 * height, fx2 * width, fy2 * height
        det = Detection2D(id=track_id)
        det.bbox.center.position.x, det.bbox.center.position.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        det.bbox.size_x, det.bbox.size_y = x2 - x1, y2 - y1
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, score
        det.results = [hyp]
        msg.detections.append(det)
    return msg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("ns")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--image-reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument(
        "--fix-after",
        type=int,
        default=0,
        help="after this many frames, publish images reliable (a best-effort publisher that a "
        "reliable subscription cannot hear is fixed: frames flow again)",
    )
    args = parser.parse_args()
    ns = args.ns.rstrip("/")
    rec = {"viewpoints": [], "diagnostics": {}, "published": 0, "done": False}

    def on_viewpoints(m):
        rec["viewpoints"].append(
            {
                "stamp": [m.header.stamp.sec, m.header.stamp.nanosec],
                "viewpoints": [
                    {
                        "track_id": v.track_id,
                        "label": v.label_name,
                        "smoothed": v.smoothed_label_name,
                        "votes": v.num_votes,
                        "truncated": v.truncated,
                        "voted": v.voted,
                        "heading": v.heading_deg,
                        "track_heading": v.track_heading_deg,
                        "score": v.detection_score,
                    }
                    for v in m.viewpoints
                ],
            }
        )

    def on_diagnostics(m):
        for s in m.status:
            rec["diagnostics"] = {
                "level": int.from_bytes(s.level, "little") if isinstance(s.level, bytes) else int(s.level),
                "message": s.message,
                "values": {kv.key: kv.value for kv in s.values},
            }

    def save():
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(args.out)

    rclpy.init()
    node = rclpy.create_node("field_publisher")
    reliability = ReliabilityPolicy.RELIABLE if args.image_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    image_pub = node.create_publisher(Image, f"{ns}/image", QoSProfile(depth=1, reliability=reliability))
    det_pub = node.create_publisher(Detection2DArray, f"{ns}/detections", QoSProfile(depth=10))
    node.create_subscription(ViewpointArray, f"{ns}/viewpoints", on_viewpoints, 100)
    node.create_subscription(DiagnosticArray, f"{ns}/diagnostics", on_diagnostics, 10)
    deadline = time.monotonic() + 90
    while det_pub.get_subscription_count() < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            print("the node's detections subscription never matched", flush=True)
            return 1
    time.sleep(0.5)
    w, h = args.width, args.height
    rgb = colour_frame(
        w, h, [((fx1 * w, fy1 * h, fx2 * w, fy2 * h), label) for _, _, _, (fx1, fy1, fx2, fy2), label in DETECTIONS]
    )
    data, step = encode_rgb(rgb, "rgb8")
    data = bytes(data)
    period = 1.0 / args.rate
    next_t = time.monotonic()
    for k in range(args.count):
        if args.fix_after and k == args.fix_after:
            node.destroy_publisher(image_pub)
            image_pub = node.create_publisher(
                Image, f"{ns}/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            )
            wait = time.monotonic() + 10
            while image_pub.get_subscription_count() < 1 and time.monotonic() < wait:
                rclpy.spin_once(node, timeout_sec=0.05)
        img = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=step, data=data)
        img.header.stamp = node.get_clock().now().to_msg()
        img.header.frame_id = "camera"
        image_pub.publish(img)
        det_pub.publish(detections_msg(img.header, w, h))
        rec["published"] += 1
        next_t += period
        while time.monotonic() < next_t:
            rclpy.spin_once(node, timeout_sec=0.05)
        save()
    end = time.monotonic() + 3.0  # the last outputs and one more diagnostics message
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    rec["done"] = True
    save()
    print("done", rec["published"], flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
