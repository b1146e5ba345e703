"""Camera + detector + (optional) navigation policy state + consumer for the focus test, in one process.

    python test/ros_helpers/focus_stream.py OUT.json /ns --frames 90 --tracks 6 --focus t3 --focus-frames 30:60

Publishes colour frames (ros_helpers.colour_model: the label is the colour of the box) with --tracks tracks
"t0".."t<n-1>" at --period s, and, for the frames in [A, B) of --focus-frames, a PolicyState on
<ns>/policy_state whose target is --focus, stamped with that frame's stamp (as side_profile_policy_node
stamps its state with the viewpoint frame's header). Records every ViewpointArray (track id, label, label
stamp, fresh) and the node's last diagnostics. Writes OUT.json when all frames' messages arrived (or after
--timeout).
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
from diagnostic_msgs.msg import DiagnosticArray
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

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.msg import PolicyState, ViewpointArray
from pose_classifier_ros.stream.image_codec import encode_rgb

WIDTH, HEIGHT, BASE_NS = 480, 240, 3000 * 10**9


def track_boxes(n: int) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """n tracks of 50x50 px in a grid, each a different colour (label)."""
    return [
        (f"t{k}", (10 + 70 * (k % 6), 20 + 110 * (k // 6), 60 + 70 * (k % 6), 70 + 110 * (k // 6)), VIEWPOINTS[k % 8])
        for k in range(n)
    ]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("ns")
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--period", type=float, default=0.1)
    p.add_argument("--tracks", type=int, default=6)
    p.add_argument("--focus", default="", help="target track id of the PolicyState messages ('' = none sent)")
    p.add_argument("--focus-frames", default="0:0", help="A:B, frames [A, B) get a PolicyState")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    ns = args.ns.rstrip("/")
    focus_from, focus_to = (int(x) for x in args.focus_frames.split(":"))
    rclpy.init()
    node = rclpy.create_node("focus_stream")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f"{ns}/image", reliable)
    det_pub = node.create_publisher(Detection2DArray, f"{ns}/detections", reliable)
    state_pub = node.create_publisher(PolicyState, f"{ns}/policy_state", QoSProfile(depth=10))
    received, diagnostics = [], {}
    lock = threading.Lock()

    def on_viewpoints(m):
        with lock:
            received.append(viewpoints_record(m))

    def on_diagnostics(m):
        with lock:
            for status in m.status:
                diagnostics.update({kv.key: kv.value for kv in status.values})

    sub = node.create_subscription(ViewpointArray, f"{ns}/viewpoints", on_viewpoints, reliable)
    node.create_subscription(DiagnosticArray, f"{ns}/diagnostics", on_diagnostics, reliable)
    executor = spin_in_background(node)
    deadline = time.monotonic() + args.timeout
    need_state = bool(args.focus) and focus_to > focus_from
    if not wait_matched([image_pub, det_pub, *([state_pub] if need_state else [])], [sub], deadline):
        return 1
    time.sleep(0.5)
    tracks = track_boxes(args.tracks)
    frame = colour_frame(WIDTH, HEIGHT, [(box, label) for _, box, label in tracks])
    data, step = encode_rgb(frame, "rgb8")
    start = time.monotonic()
    for i in range(args.frames):
        stamp_ns = BASE_NS + int(round(i * args.period * 1e9))
        img = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", is_bigendian=0, step=step, data=bytes(data))
        img.header.stamp.sec, img.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        img.header.frame_id = "cam"
        image_pub.publish(img)
        det_pub.publish(detections(img.header, tracks))
        if args.focus and focus_from <= i < focus_to:
            state = PolicyState(header=img.header, state=PolicyState.ORIENT, state_name="ORIENT")
            state.target_track_id = args.focus
            state_pub.publish(state)
        pace(start, i, args.period)
    wait_for_messages(received, lock, args.frames, deadline)
    time.sleep(1.5)  # the next diagnostics
    with lock:
        args.out.write_text(json.dumps({"sent": args.frames, "viewpoints": received, "diagnostics": diagnostics}))
    shutdown(executor, node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
