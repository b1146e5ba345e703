"""Camera + detector + consumer for the scheduled-mode node test, in one process.

    python test/ros_helpers/schedule_stream.py OUT.json /ns --frames 50 --period 0.1 --new-track-at 25

Publishes colour frames (ros_helpers.colour_model: the label is the colour of the box) with two tracks,
"elk-1" (left) and "deer-2" (back), plus "fox-3" (front-right) from frame --new-track-at on, and records
every ViewpointArray with the fields that say how fresh each label is. Writes OUT.json.ready when matched
and OUT.json when all frames' messages arrived (or after --timeout).

Faults: --outage-at K --outage-s S (no frame for S s of wall and stamp time before frame K: a camera
outage); --jump-back-at K --jump-back-s J (stamps from frame K on are J s earlier: a bag loop or clock
reset); --bad-image-at K (an extra image with encoding "fault-injection", no detections, before frame K).
"""

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers.colour_model import colour_frame
from ros_helpers.stream_common import (
    detections,
    pace,
    shutdown,
    spin_in_background,
    viewpoints_record,
    wait_for_messages,
    wait_matched,
)
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from pose_classifier_ros.msg import ViewpointArray
from pose_classifier_ros.stream.image_codec import encode_rgb

WIDTH, HEIGHT, BASE_NS = 320, 240, 2000 * 10**9
TRACKS = [("elk-1", (20, 40, 90, 110), "left"), ("deer-2", (200, 130, 280, 200), "back")]
NEW_TRACK = ("fox-3", (120, 20, 180, 80), "front-right")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("ns")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--period", type=float, default=0.1)
    p.add_argument("--new-track-at", type=int, default=25)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--outage-at", type=int, default=-1)
    p.add_argument("--outage-s", type=float, default=0.0)
    p.add_argument("--jump-back-at", type=int, default=-1)
    p.add_argument("--jump-back-s", type=float, default=0.0)
    p.add_argument("--bad-image-at", type=int, default=-1)
    args = p.parse_args()
    ns = args.ns.rstrip("/")
    rclpy.init()
    node = rclpy.create_node("schedule_stream")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f"{ns}/image", reliable)
    det_pub = node.create_publisher(Detection2DArray, f"{ns}/detections", reliable)
    received = []
    lock = threading.Lock()

    def votes(v):
        return {
            "voted": bool(v.voted),
            "num_votes": int(v.num_votes),
            "smoothed": v.smoothed_label_name,
            "score_sum": float(sum(v.scores)),
        }

    def on_viewpoints(m):
        with lock:
            received.append(viewpoints_record(m, votes))

    sub = node.create_subscription(ViewpointArray, f"{ns}/viewpoints", on_viewpoints, reliable)
    executor = spin_in_background(node)
    deadline = time.monotonic() + args.timeout
    if not wait_matched([image_pub, det_pub], [sub], deadline):
        return 1
    (args.out.parent / (args.out.name + ".ready")).write_text("1")
    time.sleep(0.5)
    start = time.monotonic()
    offset_ns = 0
    for i in range(args.frames):
        tracks = TRACKS + ([NEW_TRACK] if i >= args.new_track_at else [])
        if i == args.outage_at:
            time.sleep(args.outage_s)
            start += args.outage_s
            offset_ns += int(args.outage_s * 1e9)
        if i == args.jump_back_at:
            offset_ns -= int(args.jump_back_s * 1e9)
        stamp_ns = BASE_NS + i * 100_000_000 + offset_ns
        if i == args.bad_image_at:
            bad = Image(height=2, width=2, encoding="fault-injection", is_bigendian=0, step=2, data=bytes(4))
            bad.header.stamp.sec, bad.header.stamp.nanosec = divmod(stamp_ns - 50_000_000, 10**9)
            image_pub.publish(bad)
        img = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", is_bigendian=0)
        data, img.step = encode_rgb(colour_frame(WIDTH, HEIGHT, [(box, label) for _, box, label in tracks]), "rgb8")
        img.data = bytes(data)
        img.header.stamp.sec, img.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        img.header.frame_id = "cam"
        image_pub.publish(img)
        det_pub.publish(detections(img.header, tracks))
        pace(start, i, args.period)
    wait_for_messages(received, lock, args.frames, deadline)
    time.sleep(0.5)
    with lock:
        args.out.write_text(json.dumps({"sent": args.frames, "viewpoints": received}))
    shutdown(executor, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
