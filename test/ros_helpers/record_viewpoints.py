"""Stand-in for the navigation policy: records a classifier's outputs into a JSON file.

    python test/ros_helpers/record_viewpoints.py OUT.json /ns --expect N [--timeout 90] [--durable-viewpoints]

Writes OUT.json.ready once subscribed and matched to `<ns>/viewpoints`, then records viewpoints,
label_info (transient local), diagnostics and debug_image until N viewpoint messages arrived (plus
1.5 s for any extra ones, and one more diagnostics message) or the timeout, and writes OUT.json. --durable-viewpoints also opens a
transient-local subscription on viewpoints (incompatible with the volatile publisher: the node
must warn about it).
"""

import argparse
import json
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import LabelInfo

from pose_classifier_ros.msg import ViewpointArray


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("ns")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--durable-viewpoints", action="store_true")
    args = parser.parse_args()
    ns = args.ns.rstrip("/")
    rec = {"viewpoints": [], "label_info": [], "diagnostics": [], "debug_images": []}

    def on_viewpoints(m):
        rec["viewpoints"].append(
            {
                "stamp": [m.header.stamp.sec, m.header.stamp.nanosec],
                "frame_id": m.header.frame_id,
                "width": m.image_width,
                "height": m.image_height,
                "viewpoints": [
                    {
                        "track_id": v.track_id,
                        "label": v.label_name,
                        "smoothed": v.smoothed_label_name,
                        "stable": v.is_stable,
                        "votes": v.num_votes,
                        "score": v.detection_score,
                        "bbox": [v.bbox.center.position.x, v.bbox.center.position.y, v.bbox.size_x, v.bbox.size_y],
                        "prob_sum": float(sum(v.scores)),
                    }
                    for v in m.viewpoints
                ],
            }
        )

    def on_diagnostics(m):
        rec["diagnostics"].append(
            [
                {
                    "name": s.name,
                    "level": int.from_bytes(s.level, "little") if isinstance(s.level, bytes) else int(s.level),
                    "message": s.message,
                    "values": {kv.key: kv.value for kv in s.values},
                }
                for s in m.status
            ]
        )

    rclpy.init()
    node = rclpy.create_node("viewpoint_recorder")
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    vp_sub = node.create_subscription(ViewpointArray, f"{ns}/viewpoints", on_viewpoints, reliable)
    node.create_subscription(
        LabelInfo,
        f"{ns}/label_info",
        lambda m: rec["label_info"].append([(c.class_id, c.class_name) for c in m.class_map]),
        latched,
    )
    node.create_subscription(DiagnosticArray, f"{ns}/diagnostics", on_diagnostics, reliable)
    node.create_subscription(
        Image,
        f"{ns}/debug_image",
        lambda m: rec["debug_images"].append(
            [m.width, m.height, m.encoding, [m.header.stamp.sec, m.header.stamp.nanosec]]
        ),
        reliable,
    )
    if args.durable_viewpoints:
        node.create_subscription(ViewpointArray, f"{ns}/viewpoints", lambda m: None, latched)
    ready, done_at, diagnostics_at_done = False, None, 0
    deadline = time.monotonic() + args.timeout
    partial = args.out.parent / (args.out.name + ".partial")
    last_dump = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - last_dump > 1.0:  # what arrived so far, for the test's failure message
            partial.write_text(json.dumps(rec))
            last_dump = time.monotonic()
        rclpy.spin_once(node, timeout_sec=0.05)
        if not ready and vp_sub.get_publisher_count() >= 1:
            ready = True
            (args.out.parent / (args.out.name + ".ready")).write_text("1")
        if done_at is None and len(rec["viewpoints"]) >= args.expect:
            done_at, diagnostics_at_done = time.monotonic(), len(rec["diagnostics"])
        # Extra outputs would show up within 1.5 s; the last diagnostics must come after the last frame.
        if done_at is not None and time.monotonic() - done_at > 1.5 and len(rec["diagnostics"]) > diagnostics_at_done:
            break
    args.out.write_text(json.dumps(rec))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
