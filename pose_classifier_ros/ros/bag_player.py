"""`pose-classifier play BAG` / executable `bag_player`: publish a recorded bag live, with /clock.

The stand-in for `ros2 bag play` (rosbag2_py is not installable here). rosbags reads the raw CDR
bytes; rclpy publishes them unchanged (``Publisher.publish(bytes)``), so no message is decoded.
Messages go out at their recorded receive times (scaled by ``--rate``); with ``--clock`` the bag time
is published on /clock (rosgraph_msgs/Clock) at ``--clock-hz`` and before every message, so nodes
started with ``use_sim_time:=true`` see the recorded time.

QoS: every publisher is reliable (REP-2003: drivers publish reliable) and volatile, keep-last; image
topics get a short history (they are large, and sensor-data subscribers are best-effort anyway),
other topics a longer one. Topics recorded as transient-local (e.g. LabelInfo) stay transient-local.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from pose_classifier_ros.bags.bagio import BagError, open_reader
from pose_classifier_ros.stream.conversions import ns_to_stamp

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CLOCK_TOPIC = "/clock"


def message_class(msgtype: str):
    """rclpy message class for ``pkg/msg/Name``; None when its Python package is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        return None


def publisher_qos(msgtype: str, offered=()) -> QoSProfile:
    """Reliable, volatile keep-last; depth 5 for images, 10 otherwise; transient-local if recorded so."""
    transient = any(getattr(getattr(q, "durability", None), "name", "") == "TRANSIENT_LOCAL" for q in offered)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5 if msgtype in IMAGE_TYPES else 10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE,
    )


class BagPlayer:
    """Publishes one bag through ``node``; `play()` returns the number of messages published."""

    def __init__(
        self,
        node,
        bag: Path,
        *,
        rate: float = 1.0,
        topics: list[str] | None = None,
        clock: bool = False,
        clock_hz: float = 40.0,
    ):
        self._node = node
        self._log = node.get_logger()
        self._bag = bag
        self._rate = rate
        self._clock_period = 1.0 / clock_hz if clock_hz > 0 else 0.05
        self.publishers: dict[str, object] = {}
        with open_reader(bag) as reader:
            available = reader.topics
            wanted = list(available) if not topics else topics
            missing = [t for t in wanted if t not in available]
            if missing:
                from pose_classifier_ros.bags.bagio import format_topics

                raise BagError(
                    f"topics {missing} are not in bag {str(bag)!r}; its topics are:\n"
                    + format_topics(available.values())
                )
            offered = {c.topic: getattr(c.ext, "offered_qos_profiles", ()) for c in reader.connections}
            for topic in wanted:
                msgtype = available[topic].msgtype
                cls = message_class(msgtype)
                if cls is None:
                    self._log.warning(f"skipping {topic}: message type {msgtype} is not installed for rclpy")
                    continue
                self.publishers[topic] = node.create_publisher(cls, topic, publisher_qos(msgtype, offered[topic]))
            self.message_count = sum(available[t].count for t in self.publishers)
        self._clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self._clock_cls = Clock
            self._clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=10))

    def wait_for_subscribers(self, timeout_s: float, settle_s: float = 0.5) -> bool:
        """Wait (at most ``timeout_s``) until some played topic has a subscriber, then ``settle_s`` more.

        Not every topic of a bag has a consumer (e.g. ground truth), so the first match is the signal
        that the consumer is up; the settle time lets its other subscriptions match too.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and rclpy.ok():
            if any(p.get_subscription_count() > 0 for p in self.publishers.values()):
                time.sleep(settle_s)
                return True
            time.sleep(0.05)
        self._log.warning(
            f"no subscriber on any of {', '.join(self.publishers)} after {timeout_s:.1f} s; playing anyway"
        )
        return False

    def _publish_clock(self, stamp_ns: int) -> None:
        msg = self._clock_cls()
        msg.clock = ns_to_stamp(stamp_ns, type(msg.clock))
        self._clock_pub.publish(msg)

    def play(self) -> int:
        """Publish the bag once, honouring recorded timing; returns messages published."""
        published = 0
        start_wall = None
        start_bag = 0
        next_clock = 0.0
        with open_reader(self._bag) as reader:
            for topic, stamp_ns, raw, _ in reader.messages(self.publishers):
                if start_wall is None:
                    start_wall, start_bag = time.monotonic(), stamp_ns
                target = start_wall + (stamp_ns - start_bag) * 1e-9 / self._rate
                while rclpy.ok():
                    now = time.monotonic()
                    if self._clock_pub is not None and now >= next_clock:
                        # never ahead of the next message's stamp, so /clock stays monotonic
                        self._publish_clock(min(stamp_ns, start_bag + int((now - start_wall) * self._rate * 1e9)))
                        next_clock = now + self._clock_period
                    if now >= target:
                        break
                    wake = min(target, next_clock) if self._clock_pub is not None else target
                    time.sleep(max(0.0, min(wake - now, 0.1)))
                if not rclpy.ok():
                    break
                if self._clock_pub is not None:
                    self._publish_clock(stamp_ns)
                self.publishers[topic].publish(raw)
                published += 1
        return published


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 to play (directory, or a .mcap / .db3 file)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2.0 = twice as fast)")
    parser.add_argument("--loop", action="store_true", help="play the bag again and again until interrupted")
    parser.add_argument("--clock", action="store_true", help=f"publish the bag time on {CLOCK_TOPIC} (use_sim_time)")
    parser.add_argument("--clock-hz", type=float, default=40.0, help="/clock publishing rate, Hz")
    parser.add_argument("--topics", nargs="+", default=None, help="play only these topics")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for a subscriber on any played topic before starting (0 = no wait)",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to sleep after creating publishers")
    parser.add_argument(
        "--linger",
        type=float,
        default=0.5,
        help="seconds to keep publishers alive after the last message (lets reliable delivery finish)",
    )


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        print("bag_player: --rate must be > 0", file=sys.stderr)
        return 2
    logging.getLogger(__name__).debug("playing %s", args.bag)
    try:
        with rclpy.init(args=None):
            node = rclpy.create_node("bag_player")
            try:
                player = BagPlayer(
                    node, args.bag, rate=args.rate, topics=args.topics, clock=args.clock, clock_hz=args.clock_hz
                )
            except BagError as exc:
                node.get_logger().error(str(exc))
                return 1
            log = node.get_logger()
            if not player.publishers:
                log.error("no topic of the bag can be published (message types not installed)")
                return 1
            log.info(
                f"playing {args.bag}: {player.message_count} messages on "
                f"{', '.join(sorted(player.publishers))} at rate {args.rate}"
                + (f", /clock at {args.clock_hz:g} Hz" if args.clock else "")
            )
            if args.wait_for_subscribers > 0:
                player.wait_for_subscribers(args.wait_for_subscribers)
            if args.delay > 0:
                time.sleep(args.delay)
            while True:
                started = time.monotonic()
                try:
                    count = player.play()
                except BagError as exc:
                    log.error(str(exc))
                    return 1
                log.info(f"published {count} messages in {time.monotonic() - started:.2f} s")
                if not args.loop or not rclpy.ok():
                    break
            time.sleep(max(0.0, args.linger))
            node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bag_player` executable (ROS arguments such as --ros-args are ignored)."""
    from rclpy.utilities import remove_ros_args

    argv = remove_ros_args(list(sys.argv if argv is None else ["bag_player", *argv]))[1:]
    parser = argparse.ArgumentParser(
        prog="bag_player", description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
