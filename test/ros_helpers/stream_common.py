"""The parts schedule_stream.py and focus_stream.py share: publishing tracks' Detection2DArrays at a pace,
recording the node's ViewpointArrays, waiting for the match and for every frame's message, shutting down.
Imported by those scripts, which run as child processes with test/ on sys.path."""

import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from vision_msgs.msg import Detection2D, Detection2DArray


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


def viewpoints_record(m, more=None) -> dict:
    """A ViewpointArray as JSON: its stamp and, per viewpoint, track id, label, label stamp and freshness, plus
    the fields `more(viewpoint)` returns."""
    return {
        "stamp": stamp_ns(m.header.stamp),
        "viewpoints": [
            {
                "track_id": v.track_id,
                "label": int(v.label),
                "label_name": v.label_name,
                "label_stamp": stamp_ns(v.label_stamp),
                "fresh": bool(v.fresh),
                **(more(v) if more else {}),
            }
            for v in m.viewpoints
        ],
    }


def spin_in_background(node) -> SingleThreadedExecutor:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    return executor


def wait_matched(publishers, subscriptions, deadline: float) -> bool:
    """Wait until every publisher has a subscriber and every subscription a publisher (the node under test);
    False, after saying so, once `deadline` (time.monotonic()) has passed."""
    while any(p.get_subscription_count() < 1 for p in publishers) or any(
        s.get_publisher_count() < 1 for s in subscriptions
    ):
        if time.monotonic() > deadline:
            print("node never matched", flush=True)
            return False
        time.sleep(0.05)
    return True


def detections(header, tracks) -> Detection2DArray:
    """A Detection2DArray with `header` and one detection per (track_id, (x1, y1, x2, y2), _) of `tracks`."""
    det = Detection2DArray(header=header)
    for track_id, (x1, y1, x2, y2), _ in tracks:
        d = Detection2D(id=track_id)
        d.bbox.center.position.x, d.bbox.center.position.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        d.bbox.size_x, d.bbox.size_y = float(x2 - x1), float(y2 - y1)
        det.detections.append(d)
    return det


def pace(start: float, i: int, period: float) -> None:
    """Sleep until frame i + 1 is due: `period` s per frame from `start` (time.monotonic())."""
    time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))


def wait_for_messages(received: list, lock: threading.Lock, count: int, deadline: float) -> None:
    """Wait until `count` messages are in `received` (appended under `lock`) or `deadline` has passed."""
    while time.monotonic() < deadline:
        with lock:
            if len(received) >= count:
                break
        time.sleep(0.1)


def shutdown(executor, node) -> None:
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()
