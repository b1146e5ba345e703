"""`side_profile_policy_node`: runs the side-profile navigation policy on the classifier's viewpoints.

Subscribes ``viewpoints`` (ViewpointArray) and, optionally, ``vigilance`` (std_msgs/Float32, 0..1: how
alert/disturbed the animal is); publishes ``cmd_vel`` (Twist: linear.x, linear.y, angular.z),
``policy_state`` (PolicyState, header copied from the viewpoint frame) and ``capture`` (CaptureEvent,
transient local).
All decisions are made by :class:`pose_classifier_ros.navigation.policy.SideProfilePolicy`; this node only
converts messages, holds the parameters and stops the vehicle when viewpoints stop arriving.
"""

from __future__ import annotations

import sys

import rclpy
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from std_msgs.msg import Float32

from pose_classifier_ros.msg import CaptureEvent, PolicyState, ViewpointArray
from pose_classifier_ros.navigation.policy import SideProfilePolicy
from pose_classifier_ros.navigation.policy_config import POLICY_NODE_NAME, policy_schema
from pose_classifier_ros.navigation.policy_msgs import frame_from_msg
from pose_classifier_ros.navigation.policy_types import PolicyOutput
from pose_classifier_ros.ros.params import check_params_files, declare_parameters, parameter_values
from pose_classifier_ros.stream.clock import ClockResetDetector

NODE_NAME = POLICY_NODE_NAME
# A vigilance value older than this (receipt time) is ignored: the animal's state is then unknown.
VIGILANCE_MAX_AGE_S = 2.0


class SideProfilePolicyNode(Node):
    """Thin ROS wrapper of SideProfilePolicy. Raises ValueError on an invalid configuration."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._schema = schema = policy_schema()
        declare_parameters(self, schema)
        # A misspelt key in the YAML fails here as in the offline tools; a section ROS does not apply is named.
        for warning in check_params_files(schema, node_fqn=self.get_fully_qualified_name()):
            self.get_logger().warning(warning)
        # Read once; later changes go through _on_set_parameters, which validates them as a whole.
        self._values = parameter_values(self, schema)
        config = schema.build(self._values, source=f"parameters of {self.get_fully_qualified_name()}")
        self._input_timeout_s = config.input_timeout_s
        self._policy = SideProfilePolicy(config)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=10,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._cmd_pub = self.create_publisher(Twist, "cmd_vel", reliable)
        self._state_pub = self.create_publisher(PolicyState, "policy_state", reliable)
        # Transient local: a subscriber that joins after the capture (a logger, a mission planner) still gets it.
        self._capture_pub = self.create_publisher(CaptureEvent, "capture", latched)
        self._viewpoints_sub = self.create_subscription(
            ViewpointArray,
            "viewpoints",
            self._viewpoints_cb,
            reliable,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        # Optional: an animal-vigilance estimate (0..1); without a publisher the policy uses the box speed only.
        self._vigilance: tuple[float, object] | None = None
        self._vigilance_sub = self.create_subscription(Float32, "vigilance", self._vigilance_cb, reliable)

        self._stamps = ClockResetDetector()  # newest viewpoint stamp; stream/clock.py's one rule (not _clock: rclpy's)
        self._last_input = self.get_clock().now()
        self._stopped_for_timeout = True  # armed by the first frame: before it, no command was sent to stop
        if self._input_timeout_s > 0:
            self._watchdog = self.create_timer(min(0.1, self._input_timeout_s / 2), self._watchdog_cb)
        self.get_logger().info(
            f"side-profile policy ready: K={config.approach.min_side_votes} of W={config.approach.window} side "
            f"views, capture at size ratio {config.capture.size_ratio} / {config.capture.size_px} px / "
            f"{config.capture.step_budget} frames; listening on {self._viewpoints_sub.topic_name}"
        )
        self.get_logger().info(
            f"motion: {config.orient.mode}, flank {config.orient.flank}; capture at {config.capture.target_pixels:g} px "
            f"+-{config.capture.size_band:.0%} (longer side); viewpoints older than {config.viewpoint.max_age_s:g} s "
            f"count as unknown; vigilance on {self._vigilance_sub.topic_name} (optional)"
        )

    @property
    def policy(self) -> SideProfilePolicy:
        return self._policy

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = dict(self._values)
        for param in params:
            if param.name == "input_timeout_s":
                return SetParametersResult(successful=False, reason="input_timeout_s is read at start only")
            if param.name in values:
                values[param.name] = param.value
        try:
            config = self._schema.build(values)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        self._policy.update_config(config)
        return SetParametersResult(successful=True)

    def _vigilance_cb(self, msg: Float32) -> None:
        value = float(msg.data)
        if value != value:  # NaN: unknown
            self._vigilance = None
            return
        self._vigilance = (min(1.0, max(0.0, value)), self.get_clock().now())

    def _current_vigilance(self) -> float | None:
        if self._vigilance is None:
            return None
        value, received = self._vigilance
        age_s = (self.get_clock().now() - received).nanoseconds * 1e-9
        return value if age_s <= VIGILANCE_MAX_AGE_S else None

    def _viewpoints_cb(self, msg: ViewpointArray) -> None:
        self._last_input = self.get_clock().now()
        self._stopped_for_timeout = False
        try:
            frame = frame_from_msg(msg, vigilance=self._current_vigilance())
        except (AttributeError, TypeError, ValueError) as exc:
            self.get_logger().warning(f"skipping malformed ViewpointArray: {exc}", throttle_duration_sec=5.0)
            return
        if self._stamps.update(frame.stamp_ns):
            # The clock was reset (a bag restarted, sim reset): the old target and history mean nothing now.
            self.get_logger().warning(
                f"viewpoint stamps went back {self._stamps.last_back_s:.3f} s (bag loop or clock reset): "
                "resetting the policy"
            )
            self._policy.reset()
        elif self._stamps.is_older(frame.stamp_ns):  # reordered, within the threshold: the policy is past it
            self.get_logger().debug(f"skipping an out-of-order ViewpointArray ({frame.stamp_ns} ns)")
            return
        previous = self._policy.state
        out = self._policy.step(frame)
        if out.transitioned:
            self.get_logger().info(f"{previous.name} -> {out.state.name}: {out.reason}")
        self._publish(msg.header, out)

    def _publish(self, header, out: PolicyOutput) -> None:
        twist = Twist()
        twist.angular.z = float(out.yaw_rate)
        twist.linear.x = float(out.forward_speed)
        twist.linear.y = float(out.lateral_speed)
        self._cmd_pub.publish(twist)

        state = PolicyState()
        state.header = header
        state.state = int(out.state)
        state.state_name = out.state.name
        state.target_track_id = out.target_track_id
        state.target_viewpoint = out.target_viewpoint
        state.side_votes = int(out.side_votes)
        state.target_size_ratio = float(out.target_size_ratio)
        state.yaw_rate = float(out.yaw_rate)
        state.forward_speed = float(out.forward_speed)
        state.lateral_speed = float(out.lateral_speed)
        state.flank = out.flank
        state.target_heading_deg = float(out.heading_deg)
        state.target_size_px = float(out.target_size_px)
        state.label_fresh = bool(out.label_fresh)
        state.steps_in_state = int(out.steps_in_state)
        state.reason = out.reason
        self._state_pub.publish(state)

        if out.capture is not None:
            cap = out.capture
            event = CaptureEvent()
            event.header = header
            event.track_id = cap.track_id
            event.viewpoint = cap.viewpoint
            event.target_size_ratio = float(cap.target_size_ratio)
            event.reason = cap.reason
            event.frames_to_capture = int(cap.frames_to_capture)
            event.flank = cap.flank
            event.target_size_px = float(cap.target_size_px)
            self._capture_pub.publish(event)
            self.get_logger().info(
                f"captured track {cap.track_id} ({cap.viewpoint}, flank {cap.flank or 'none'}, "
                f"{cap.target_size_px:.0f} px, size ratio {cap.target_size_ratio:.3f}) "
                f"after {cap.frames_to_capture} frames: {cap.reason}"
            )

    def _watchdog_cb(self) -> None:
        if self._stopped_for_timeout:
            return
        idle_s = (self.get_clock().now() - self._last_input).nanoseconds * 1e-9
        if idle_s >= self._input_timeout_s:
            # The classifier stopped: do not let the last velocity command run on.
            self._cmd_pub.publish(Twist())
            self._stopped_for_timeout = True
            self.get_logger().warning(f"no viewpoints for {idle_s:.1f} s: published a zero cmd_vel")


def main(args=None) -> int:
    try:
        with rclpy.init(args=args):
            try:
                node = SideProfilePolicyNode()
            except (ValueError, ParameterException) as exc:
                rclpy.logging.get_logger(NODE_NAME).error(f"invalid parameters: {exc}")
                return 1
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
