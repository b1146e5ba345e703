"""Records the classifier node's visual outputs into a JSON file (a separate rclpy process).

    python test/ros_helpers/record_visuals.py OUT.json /ns --expect N [--debug] [--timeout 90] [--idle 4]

Subscribes to `<ns>/annotations` (visualization_msgs/ImageMarker), `<ns>/track_summaries` and
`<ns>/diagnostics`; with --debug also to `<ns>/debug_image/compressed` (without it nobody subscribes to any
debug image). Writes OUT.json.ready once matched to the annotations publisher, then records until N
annotation messages arrived, or none for --idle s after the first (a best-effort frame lost under load), plus
1.5 s and one more diagnostics message, or the timeout, and writes OUT.json.
"""

import argparse
import io
import json
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from visualization_msgs.msg import ImageMarker

from pose_classifier_ros.msg import TrackSummary


def _stamp(header) -> list:
    return [header.stamp.sec, header.stamp.nanosec]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("ns")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--idle", type=float, default=4.0)
    args = parser.parse_args()
    ns = args.ns.rstrip("/")
    rec = {"annotations": [], "summaries": [], "diagnostics": [], "debug_jpegs": []}

    last_marker = [None]

    def on_marker(m):
        last_marker[0] = time.monotonic()
        rec["annotations"].append(
            {
                "stamp": _stamp(m.header),
                "frame_id": m.header.frame_id,
                "type": m.type,
                "points": [[p.x, p.y] for p in m.points],
                "scale": m.scale,
                "colors": [[c.r, c.g, c.b, c.a] for c in m.outline_colors],
            }
        )

    def on_summary(m):
        rec["summaries"].append(
            {
                "stamp": _stamp(m.header),
                "track_id": m.track_id,
                "frames": m.frames,
                "classified_frames": m.classified_frames,
                "histogram": [int(v) for v in m.viewpoint_histogram],
                "first": [m.first_stamp.sec, m.first_stamp.nanosec],
                "last": [m.last_stamp.sec, m.last_stamp.nanosec],
                "best_left_score": m.best_left_score,
                "best_right_score": m.best_right_score,
                "best_score": m.best_score,
                "best_label": m.best_label,
            }
        )

    def on_debug(m):
        size = Image.open(io.BytesIO(bytes(m.data))).size
        rec["debug_jpegs"].append(
            {"stamp": _stamp(m.header), "format": m.format, "size": list(size), "bytes": len(m.data)}
        )

    def on_diagnostics(m):
        rec["diagnostics"].append([{kv.key: kv.value for kv in s.values} for s in m.status])

    rclpy.init()
    node = rclpy.create_node("visuals_recorder")
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    marker_sub = node.create_subscription(ImageMarker, f"{ns}/annotations", on_marker, reliable)
    node.create_subscription(TrackSummary, f"{ns}/track_summaries", on_summary, reliable)
    node.create_subscription(DiagnosticArray, f"{ns}/diagnostics", on_diagnostics, reliable)
    debug_sub = (
        node.create_subscription(CompressedImage, f"{ns}/debug_image/compressed", on_debug, reliable)
        if args.debug
        else None
    )
    ready, done_at, diagnostics_at_done = False, None, 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if (
            not ready
            and marker_sub.get_publisher_count() >= 1
            and (debug_sub is None or debug_sub.get_publisher_count() >= 1)
        ):
            ready = True
            (args.out.parent / (args.out.name + ".ready")).write_text("1")
        idle = last_marker[0] is not None and time.monotonic() - last_marker[0] > args.idle
        if done_at is None and (len(rec["annotations"]) >= args.expect or idle):
            done_at, diagnostics_at_done = time.monotonic(), len(rec["diagnostics"])
        if done_at is not None and time.monotonic() - done_at > 1.5 and len(rec["diagnostics"]) > diagnostics_at_done:
            break
    args.out.write_text(json.dumps(rec))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
