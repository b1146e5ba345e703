"""QoS profiles of the classifier node and warnings that explain incompatible-QoS events.

REP-2003: drivers publish images reliable, consumers subscribe best effort, so the image
subscription is sensor-data QoS with depth 1 (only the newest frame matters). Detections are
small and every one is needed for pairing, so they are reliable. Outputs are reliable;
`label_info` is transient local so late joiners still get the class map; the focus (`policy_state`) is
best effort, newest only. Every profile can be
overridden with the standard `qos_overrides.<topic>.<subscription|publisher>.<policy>` parameters.

A QoS mismatch is silent in ROS 2 (the most common "no output" support question), so every
subscription and publisher gets an event callback that logs which topic, which policy, what each
side has and how to fix it.
"""

from __future__ import annotations

import time

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions


def image_qos(depth: int = 1) -> QoSProfile:
    """Sensor-data QoS (best effort, volatile) keeping only the newest `depth` frames."""
    profile = QoSProfile(
        **{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability", "durability")}, depth=depth
    )
    return profile


def detections_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile: every detection array is needed to pair with its frame."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile: viewpoints, diagnostics and the debug image."""
    return detections_qos(depth)


def latched_qos() -> QoSProfile:
    """Reliable, transient local, depth 1: a subscriber that joins later still gets the last message."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def focus_qos() -> QoSProfile:
    """Best effort, volatile, depth 1: only the newest focus (PolicyState) matters, and a best-effort reader
    matches reliable (side_profile_policy_node) and best-effort publishers alike."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def overridable() -> QoSOverridingOptions:
    """History, depth and reliability overridable via `qos_overrides./topic.<entity>.<policy>` parameters."""
    return QoSOverridingOptions.with_default_policies()


_POLICY_ATTR = {
    QoSPolicyKind.RELIABILITY: "reliability",
    QoSPolicyKind.DURABILITY: "durability",
    QoSPolicyKind.DEADLINE: "deadline",
    QoSPolicyKind.LIVELINESS: "liveliness",
    QoSPolicyKind.LIVELINESS_LEASE_DURATION: "liveliness_lease_duration",
    QoSPolicyKind.HISTORY: "history",
    QoSPolicyKind.DEPTH: "depth",
}


def _policy_kind(value) -> QoSPolicyKind | None:
    try:
        return QoSPolicyKind(int(value))
    except (ValueError, TypeError):
        return None


def _policy_value(profile, attr: str) -> str:
    value = getattr(profile, attr, None)
    if value is None:
        return "?"
    return getattr(value, "name", str(value))


def _who(endpoint) -> str:
    """ " (/ns/node)" of a graph endpoint, or "" while discovery has not yet named it."""
    name, ns = endpoint.node_name, endpoint.node_namespace
    if not name or "UNKNOWN" in name:
        return ""
    return f" ({ns.rstrip('/')}/{name})"


class IncompatibleQosReporter:
    """Builds event callbacks that log a warning for each incompatible-QoS event on a node's endpoints.

    The event itself only says which policy disagrees; the remote side's value is looked up in the
    graph (`get_publishers_info_by_topic` / `get_subscriptions_info_by_topic`). Repeats for the
    same topic and policy are logged at most once per `repeat_s` seconds (monotonic wall time, as
    this is about log volume, not data time).
    """

    def __init__(self, node, repeat_s: float = 30.0):
        self._node = node
        self._repeat_s = repeat_s
        self._last: dict[tuple[str, str, str], float] = {}
        self.count = 0  # events seen, for diagnostics

    def subscription_callbacks(self, topic: str, profile: QoSProfile) -> SubscriptionEventCallbacks:
        return SubscriptionEventCallbacks(
            incompatible_qos=lambda event: self._report("subscription", topic, profile, event)
        )

    def publisher_callbacks(self, topic: str, profile: QoSProfile) -> PublisherEventCallbacks:
        return PublisherEventCallbacks(incompatible_qos=lambda event: self._report("publisher", topic, profile, event))

    def message(self, entity: str, topic: str, profile: QoSProfile, policy) -> str:
        """The warning text for `entity` ("subscription" | "publisher") on fully qualified `topic`."""
        kind = _policy_kind(policy)
        name = kind.name if kind is not None else str(policy)
        attr = _POLICY_ATTR.get(kind, name.lower())
        ours = _policy_value(profile, attr)
        if entity == "subscription":
            peers, peer_role, our_verb, peer_verb = (
                self._node.get_publishers_info_by_topic(topic),
                "publisher",
                "requests",
                "offer",
            )
        else:
            peers, peer_role, our_verb, peer_verb = (
                self._node.get_subscriptions_info_by_topic(topic),
                "subscriber",
                "offers",
                "request",
            )
        theirs = sorted(
            {_policy_value(p.qos_profile, attr) + _who(p) for p in peers if _policy_value(p.qos_profile, attr) != ours}
        ) or ["?"]
        text = (
            f"incompatible QoS on {entity} {topic}: {name} policy - this node {our_verb} {ours}, "
            f"{peer_role}(s) {peer_verb} {', '.join(theirs)}; no messages flow between them. "
        )
        if entity == "subscription" and kind == QoSPolicyKind.RELIABILITY:
            text += (
                f"Fix: publish {ours} or set `qos_overrides.{topic}.subscription.reliability: best_effort` "
                "in this node's parameters. "
            )
        elif entity == "publisher" and kind == QoSPolicyKind.DURABILITY:
            text += f"Fix: subscribe with durability {ours}. "
        elif entity == "publisher" and kind == QoSPolicyKind.RELIABILITY:
            text += "Fix: subscribe best_effort or reliable to match what is offered. "
        else:
            text += f"Fix: make the {peer_role}'s {attr} compatible with {ours}. "
        return text + f"Compare both sides with `ros2 topic info -v {topic}`."

    def _report(self, entity: str, topic: str, profile: QoSProfile, event) -> None:
        self.count += 1
        key = (entity, topic, str(event.last_policy_kind))
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._repeat_s:
            return
        self._last[key] = now
        try:
            text = self.message(entity, topic, profile, event.last_policy_kind)
        except Exception as exc:  # the graph query must never take the node down
            text = f"incompatible QoS on {entity} {topic}: policy {event.last_policy_kind} ({exc})"
        self._node.get_logger().warning(text)
