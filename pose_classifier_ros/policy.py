"""Side-profile navigation policy: a ROS-free state machine over per-frame viewpoint results.

The policy locks on to one tracked animal and recommends a yaw rate and a forward speed that bring a
side view of it into sight (ORIENT), close in while the side view holds (APPROACH), and stop once the
animal fills enough of the frame (CAPTURE). Velocities follow REP-103: ``yaw_rate`` rad/s, positive =
counter-clockwise (turn left); ``forward_speed`` m/s along the body x axis.

    SEARCH --lock on--> ORIENT --K of last W labels are side views--> APPROACH --big enough--> CAPTURE
                          ^                                              |
                          +------ fewer than K of last W side views -----+
    (target lost in ORIENT/APPROACH -> lock on to the largest other box, or SEARCH if none;
     step budget since lock-on exhausted in ORIENT/APPROACH -> CAPTURE, best effort)

Input frames are plain dataclasses; :func:`frame_from_msg` builds one from a ``ViewpointArray``
(rclpy or rosbags object, duck-typed), so the node and ``policy_eval`` share one conversion.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from .labels import NUM_CLASSES, SIDE_VIEWS, VIEWPOINTS

_logger = logging.getLogger(__name__)

# Orientation hints: which way to rotate (sign of the yaw rate) for each smoothed viewpoint.
# Diagonal views: front-left/back-left -> rotate right (negative yaw), the -right ones -> rotate left.
_ORIENT_SIGN: dict[str, int] = {
    "front-left": -1, "back-left": -1,
    "front-right": 1, "back-right": 1,
    "left": 0, "right": 0,
}
_SCAN_VIEWS = frozenset({"front", "back"})  # no hint which way is shorter: scan, and alternate
_SCAN_SIGN = {"left": 1, "right": -1}

CAPTURE_REASONS = ("size_ratio", "size_pixels", "step_budget")


class State(enum.IntEnum):
    """Policy states; values match the constants in ``msg/PolicyState.msg``."""

    SEARCH = 0
    ORIENT = 1
    APPROACH = 2
    CAPTURE = 3


@dataclass
class PolicyConfig:
    """Thresholds, speeds and rates of the policy (the node's parameters, one to one).

    Frames are viewpoint frames consumed (one per ``ViewpointArray``); sizes compare the box's shorter
    side with the frame's shorter side.
    """

    min_detection_score: float = 0.3   # boxes below this score are never selected as target
    target_lost_frames: int = 10       # target lost after this many consecutive frames without it
    target_lost_s: float = 0.0         # ... or after this many seconds without it (0 = off)
    require_stable: bool = True        # ignore smoothed labels whose track is not yet stable
    search_yaw_rate: float = 0.0       # rad/s while searching (0 = hover)
    orient_yaw_rate: float = 0.3       # rad/s magnitude when a diagonal view says which way to turn
    scan_yaw_rate: float = 0.2         # rad/s magnitude when front/back gives no hint
    scan_direction: str = "left"       # first scan direction: "left" (CCW, +) or "right" (CW, -)
    scan_flip_frames: int = 30         # reverse the scan after this many frames without improvement
    approach_window: int = 7           # W: smoothed labels of the target looked at
    approach_min_side_votes: int = 5   # K: side views among the last W needed to approach
    approach_speed: float = 0.5        # m/s forward while approaching
    approach_centering_gain: float = 0.0  # rad/s per unit horizontal offset of the box (0 = no correction)
    approach_max_yaw: float = 0.1      # rad/s cap on the centering correction
    capture_size_ratio: float = 0.1    # box shorter side / frame shorter side that captures (0 = off)
    capture_size_px: float = 0.0       # box shorter side in px that captures (0 = off)
    step_budget: int = 300             # frames after lock-on before a best-effort capture (0 = off)
    recapture: bool = False            # after a capture, search for a new target instead of staying

    def __post_init__(self):
        errors = []

        def check(ok: bool, msg: str):
            if not ok:
                errors.append(msg)

        check(0.0 <= self.min_detection_score <= 1.0,
              f"min_detection_score={self.min_detection_score} must be in [0, 1]")
        check(self.target_lost_frames >= 1, f"target_lost_frames={self.target_lost_frames} must be >= 1")
        check(self.target_lost_s >= 0.0, f"target_lost_s={self.target_lost_s} must be >= 0 (0 = off)")
        for name in ("search_yaw_rate", "orient_yaw_rate", "scan_yaw_rate", "approach_speed",
                     "approach_centering_gain", "approach_max_yaw", "capture_size_px"):
            value = getattr(self, name)
            check(value >= 0.0, f"{name}={value} must be >= 0 (a magnitude; signs are chosen by the policy)")
        check(self.scan_direction in _SCAN_SIGN,
              f"scan_direction={self.scan_direction!r} must be one of {sorted(_SCAN_SIGN)}")
        check(self.scan_flip_frames >= 1, f"scan_flip_frames={self.scan_flip_frames} must be >= 1")
        check(self.approach_window >= 1, f"approach_window={self.approach_window} must be >= 1")
        check(1 <= self.approach_min_side_votes <= self.approach_window,
              f"approach_min_side_votes={self.approach_min_side_votes} must be in [1, approach_window="
              f"{self.approach_window}]")
        check(0.0 <= self.capture_size_ratio <= 1.0, f"capture_size_ratio={self.capture_size_ratio} must be in [0, 1]")
        check(self.step_budget >= 0, f"step_budget={self.step_budget} must be >= 0 (0 = off)")
        check(self.capture_size_ratio > 0 or self.capture_size_px > 0 or self.step_budget > 0,
              "capture_size_ratio, capture_size_px and step_budget are all 0: the policy could never capture")
        if errors:
            raise ValueError("invalid policy configuration: " + "; ".join(errors))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PolicyConfig":
        """Build from a flat dict; unknown keys are an error (a typo must not silently do nothing)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown policy parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PolicyParameter:
    """One ROS parameter of the policy node and the PolicyConfig field it sets."""

    name: str          # ROS parameter name (dotted groups, as in config/side_profile_policy.yaml)
    field: str         # PolicyConfig field
    description: str
    low: float | None = None   # inclusive range for the descriptor (None: no range)
    high: float | None = None


# The node's parameters (config/side_profile_policy.yaml), one per PolicyConfig field; defaults come from
# PolicyConfig() so there is a single source of truth. Ranges are inclusive, for ParameterDescriptors.
POLICY_PARAMETERS: tuple[PolicyParameter, ...] = (
    PolicyParameter("target.min_detection_score", "min_detection_score",
        "Detections below this score are never chosen as target.", 0.0, 1.0),
    PolicyParameter("target.lost_frames", "target_lost_frames",
        "The target is lost after this many consecutive frames without it.", 1, 100000),
    PolicyParameter("target.lost_s", "target_lost_s",
        "... or after this many seconds (frame stamps) without it; 0 = off.", 0.0, 3600.0),
    PolicyParameter("target.require_stable", "require_stable",
        "Ignore smoothed labels of tracks that are not yet stable (Viewpoint.is_stable)."),
    PolicyParameter("search.yaw_rate", "search_yaw_rate", "Yaw rate in SEARCH, rad/s (0 = hover).", 0.0, 3.0),
    PolicyParameter("orient.yaw_rate", "orient_yaw_rate",
        "Yaw rate magnitude in ORIENT when a diagonal view says which way to turn, rad/s.", 0.0, 3.0),
    PolicyParameter("orient.scan_yaw_rate", "scan_yaw_rate",
        "Yaw rate magnitude in ORIENT while the target shows its front or back, rad/s.", 0.0, 3.0),
    PolicyParameter("orient.scan_direction", "scan_direction",
        "First scan direction on a front/back view: 'left' (counter-clockwise) or 'right'."),
    PolicyParameter("orient.scan_flip_frames", "scan_flip_frames",
        "Reverse the scan after this many frames of front/back views without improvement.", 1, 100000),
    PolicyParameter("approach.window", "approach_window",
        "W: number of the target's most recent smoothed labels looked at.", 1, 1000),
    PolicyParameter("approach.min_side_votes", "approach_min_side_votes",
        "K: side views (left/right) among the last W labels needed to approach.", 1, 1000),
    PolicyParameter("approach.speed", "approach_speed", "Forward speed in APPROACH, m/s.", 0.0, 20.0),
    PolicyParameter("approach.centering_gain", "approach_centering_gain",
        "Yaw correction in APPROACH per unit horizontal box offset from the image centre, rad/s; 0 = off.",
        0.0, 10.0),
    PolicyParameter("approach.max_yaw", "approach_max_yaw", "Cap on the APPROACH yaw correction, rad/s.", 0.0, 3.0),
    PolicyParameter("capture.size_ratio", "capture_size_ratio",
        "Capture when the box's shorter side reaches this fraction of the frame's shorter side; 0 = off.",
        0.0, 1.0),
    PolicyParameter("capture.size_px", "capture_size_px",
        "Capture when the box's shorter side reaches this many pixels; 0 = off.", 0.0, 100000.0),
    PolicyParameter("capture.step_budget", "step_budget",
        "Best-effort capture this many frames after lock-on; 0 = off.", 0, 10_000_000),
    PolicyParameter("capture.recapture", "recapture",
        "After a capture, search for a new target instead of staying captured."),
)
_FIELD_RE = re.compile(r"\b(" + "|".join(sorted((p.field for p in POLICY_PARAMETERS), key=len, reverse=True))
                       + r")\b")


def config_from_fields(values: dict[str, Any]) -> PolicyConfig:
    """PolicyConfig from field values; errors name the ROS parameters (approach.window), not the fields."""
    try:
        return PolicyConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        by_field = {p.field: p.name for p in POLICY_PARAMETERS}
        raise ValueError(_FIELD_RE.sub(lambda m: by_field[m.group(1)], str(exc))) from None


POLICY_NODE_NAME = "side_profile_policy"
# Node parameters that are not part of the policy (ignored when a params file configures the policy offline).
NODE_ONLY_PARAMETERS = frozenset({"input_timeout_s", "use_sim_time"})


def config_from_parameters(values: dict[str, Any]) -> PolicyConfig:
    """PolicyConfig from ROS parameter names (``{"approach.window": 7, ...}``); missing ones keep defaults."""
    by_name = {p.name: p.field for p in POLICY_PARAMETERS}
    unknown = sorted(set(values) - set(by_name) - NODE_ONLY_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown policy parameter(s) {unknown}; known: {sorted(by_name)}")
    fields = PolicyConfig().to_dict()
    fields.update({by_name[k]: v for k, v in values.items() if k in by_name})
    return config_from_fields(fields)


def load_params_file(path, node_name: str = POLICY_NODE_NAME) -> PolicyConfig:
    """PolicyConfig from a ROS 2 parameter YAML file (``node_name: ros__parameters: {...}``, or ``/**``).

    Raises ValueError naming the file when it cannot be read, has no section for the node, or is invalid.
    """
    import yaml  # only the offline tools read params files

    try:
        doc = yaml.safe_load(open(path, encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read params file {str(path)!r}: {exc}") from None
    section = None
    for key in (node_name, "/" + node_name, "/**"):
        if isinstance(doc, dict) and isinstance(doc.get(key), dict) and "ros__parameters" in doc[key]:
            section = doc[key]["ros__parameters"]
            break
    if not isinstance(section, dict):
        raise ValueError(f"params file {str(path)!r} has no '{node_name}: ros__parameters:' section")
    flat: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(section, "")
    try:
        return config_from_parameters(flat)
    except ValueError as exc:
        raise ValueError(f"params file {str(path)!r}: {exc}") from None



@dataclass
class TrackObservation:
    """One tracked animal in one frame. ``box``: (x1, y1, x2, y2) float pixels."""

    track_id: str
    box: tuple[float, float, float, float]
    detection_score: float
    smoothed_label: str            # viewpoint name, "" when unknown
    is_stable: bool = True

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def shorter_side(self) -> float:
        return max(0.0, min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass
class PolicyFrame:
    """All tracks of one camera frame. ``stamp_ns``: capture time, int ns; width/height in pixels."""

    stamp_ns: int
    width: int
    height: int
    tracks: list[TrackObservation] = field(default_factory=list)
    frame_id: str = ""


@dataclass
class CaptureInfo:
    """The one capture event of a target (fields as in ``msg/CaptureEvent.msg``)."""

    stamp_ns: int
    frame_id: str
    track_id: str
    viewpoint: str
    target_size_ratio: float
    reason: str                    # one of CAPTURE_REASONS
    frames_to_capture: int         # frames since lock-on


@dataclass
class PolicyOutput:
    """The policy's decision on one frame (fields as in ``msg/PolicyState.msg`` plus the capture)."""

    stamp_ns: int
    frame_id: str
    state: State
    target_track_id: str
    target_viewpoint: str
    side_votes: int
    target_size_ratio: float
    yaw_rate: float                # rad/s, REP-103 (+ = counter-clockwise)
    forward_speed: float           # m/s
    steps_in_state: int            # frames in the current state, this one included
    reason: str                    # why the last transition happened
    transitioned: bool = False     # a transition (or a new lock-on) happened on this frame
    target_visible: bool = False   # the target was in this frame
    capture: CaptureInfo | None = None


class SideProfilePolicy:
    """Feed frames in time order with :meth:`step`; the policy keeps the target and label history."""

    def __init__(self, config: PolicyConfig | None = None):
        self.config = config or PolicyConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to SEARCH with no target (captured ids are forgotten too)."""
        self._state = State.SEARCH
        self._steps_in_state = 0
        self._reason = "start"
        self._captured_ids: set[str] = set()
        self._frames_total = 0
        self._entered = False
        self._clear_target()

    def _clear_target(self) -> None:
        self._target: str | None = None
        self._labels: deque[str] = deque(maxlen=self.config.approach_window)
        self._missed = 0
        self._last_seen_ns = 0
        self._lock_frame = 0
        self._scan_sign = _SCAN_SIGN[self.config.scan_direction]
        self._scan_frames = 0
        self._last_label = ""
        self._last_ratio = 0.0

    @property
    def state(self) -> State:
        return self._state

    @property
    def target_track_id(self) -> str | None:
        return self._target

    def update_config(self, config: PolicyConfig) -> None:
        """Apply new parameters without losing the target (the label history keeps its newest labels)."""
        self.config = config
        self._labels = deque(self._labels, maxlen=config.approach_window)

    # -- helpers ---------------------------------------------------------------------------------------
    def _side_votes(self) -> int:
        return sum(1 for label in self._labels if label in SIDE_VIEWS)

    def _side_view_held(self) -> bool:
        return len(self._labels) >= self.config.approach_min_side_votes and \
            self._side_votes() >= self.config.approach_min_side_votes

    def _enter(self, state: State, reason: str) -> None:
        if state != self._state:
            _logger.debug("%s -> %s: %s", self._state.name, state.name, reason)
        self._state = state
        self._steps_in_state = 0
        self._reason = reason
        self._entered = True

    def _select(self, frame: PolicyFrame) -> TrackObservation | None:
        """Largest box above the score threshold, not yet captured; ties broken by score, then id."""
        candidates = [t for t in frame.tracks
                      if t.detection_score >= self.config.min_detection_score and t.area > 0
                      and t.track_id not in self._captured_ids]
        if not candidates:
            return None
        return max(candidates, key=lambda t: (t.area, t.detection_score, t.track_id))

    def _lock_on(self, track: TrackObservation, reason: str) -> None:
        self._clear_target()
        self._target = track.track_id
        self._lock_frame = self._frames_total
        self._enter(State.ORIENT, reason)

    @staticmethod
    def _size_ratio(track: TrackObservation, frame: PolicyFrame) -> float:
        shorter = min(frame.width, frame.height)
        return min(1.0, track.shorter_side / shorter) if shorter > 0 else 0.0

    # -- the state machine -----------------------------------------------------------------------------
    def step(self, frame: PolicyFrame) -> PolicyOutput:
        """Consume one frame (time order) and return the recommended motion and state."""
        cfg = self.config
        self._frames_total += 1
        capture: CaptureInfo | None = None
        self._entered = False

        if self._state == State.CAPTURE and cfg.recapture and self._steps_in_state >= 1:
            self._clear_target()
            self._enter(State.SEARCH, "recapture: searching for a new target")

        target: TrackObservation | None = None
        if self._state in (State.ORIENT, State.APPROACH):
            target = next((t for t in frame.tracks if t.track_id == self._target), None)
            if target is not None:
                self._missed = 0
                self._last_seen_ns = frame.stamp_ns
            else:
                self._missed += 1
                lost_by_time = cfg.target_lost_s > 0 and \
                    frame.stamp_ns - self._last_seen_ns >= cfg.target_lost_s * 1e9
                if self._missed >= cfg.target_lost_frames or lost_by_time:
                    old = self._target
                    new = self._select(frame)
                    if new is not None:
                        self._lock_on(new, f"target {old} lost; locked on {new.track_id} (largest box)")
                        target = new
                    else:
                        self._clear_target()
                        self._enter(State.SEARCH, f"target {old} lost")

        if self._state == State.SEARCH:
            new = self._select(frame)
            if new is not None:
                self._lock_on(new, f"locked on {new.track_id} (largest box)")
                target = new

        if target is not None:
            self._last_seen_ns = frame.stamp_ns
            label = target.smoothed_label if (target.is_stable or not cfg.require_stable) else ""
            self._labels.append(label)
            self._last_label = target.smoothed_label
            self._last_ratio = self._size_ratio(target, frame)

        yaw, forward = 0.0, 0.0
        if self._state in (State.ORIENT, State.APPROACH) and target is not None:
            frames_since_lock = self._frames_total - self._lock_frame
            if self._state == State.ORIENT and self._side_view_held():
                self._enter(State.APPROACH,
                            f"{self._side_votes()} of the last {len(self._labels)} labels are side views")
            elif self._state == State.APPROACH and not self._side_view_held():
                self._enter(State.ORIENT,
                            f"side view lost: {self._side_votes()} of the last {len(self._labels)} labels")

            reason = self._capture_reason(target, frame, frames_since_lock)
            if reason is not None:
                capture = CaptureInfo(
                    stamp_ns=frame.stamp_ns, frame_id=frame.frame_id, track_id=target.track_id,
                    viewpoint=target.smoothed_label, target_size_ratio=self._last_ratio, reason=reason,
                    frames_to_capture=frames_since_lock)
                self._captured_ids.add(target.track_id)
                self._enter(State.CAPTURE, f"captured {target.track_id}: {reason}")
            elif self._state == State.ORIENT:
                yaw = self._orient_yaw(self._labels[-1] if self._labels else "")
            else:
                forward = cfg.approach_speed
                yaw = self._centering_yaw(target, frame)
        elif self._state == State.SEARCH:
            yaw = cfg.search_yaw_rate
        # ORIENT/APPROACH with the target out of sight for a few frames: hold still until it is back or lost.

        self._steps_in_state += 1
        return PolicyOutput(
            stamp_ns=frame.stamp_ns, frame_id=frame.frame_id, state=self._state,
            target_track_id=self._target or "",
            target_viewpoint=self._last_label if self._target else "",
            side_votes=self._side_votes(), target_size_ratio=self._last_ratio if self._target else 0.0,
            yaw_rate=float(yaw), forward_speed=float(forward), steps_in_state=self._steps_in_state,
            reason=self._reason, transitioned=self._entered,
            target_visible=target is not None, capture=capture)

    def _capture_reason(self, target: TrackObservation, frame: PolicyFrame, frames_since_lock: int) -> str | None:
        cfg = self.config
        if self._state == State.APPROACH:
            if cfg.capture_size_ratio > 0 and self._last_ratio >= cfg.capture_size_ratio:
                return "size_ratio"
            if cfg.capture_size_px > 0 and target.shorter_side >= cfg.capture_size_px:
                return "size_pixels"
        if cfg.step_budget > 0 and frames_since_lock >= cfg.step_budget:
            return "step_budget"
        return None

    def _orient_yaw(self, label: str) -> float:
        cfg = self.config
        if label in _ORIENT_SIGN:
            self._scan_frames = 0
            return _ORIENT_SIGN[label] * cfg.orient_yaw_rate
        if label in _SCAN_VIEWS:
            # Front or back: either way round works; keep going one way, and turn back if it does not help.
            if self._scan_frames >= cfg.scan_flip_frames:
                self._scan_sign = -self._scan_sign
                self._scan_frames = 0
            self._scan_frames += 1
            return self._scan_sign * cfg.scan_yaw_rate
        return 0.0  # unknown / not yet stable: wait for a label

    def _centering_yaw(self, target: TrackObservation, frame: PolicyFrame) -> float:
        cfg = self.config
        if cfg.approach_centering_gain <= 0 or frame.width <= 0:
            return 0.0
        # Box right of centre -> turn right (negative yaw, REP-103).
        offset = ((target.box[0] + target.box[2]) / 2 - frame.width / 2) / (frame.width / 2)
        yaw = -cfg.approach_centering_gain * offset
        return max(-cfg.approach_max_yaw, min(cfg.approach_max_yaw, yaw))


# -- message conversion (duck-typed: rclpy and rosbags ViewpointArray objects both work) ---------------
def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _label_name(vp: Any) -> str:
    name = str(getattr(vp, "smoothed_label_name", "") or "").strip().lower()
    if name in VIEWPOINTS:
        return name
    index = int(getattr(vp, "smoothed_label", 255))
    return VIEWPOINTS[index] if 0 <= index < NUM_CLASSES else ""


def frame_from_msg(msg: Any) -> PolicyFrame:
    """A :class:`PolicyFrame` from a ``ViewpointArray``-like message (bbox center+size -> xyxy px)."""
    tracks = []
    for vp in msg.viewpoints:
        bbox = vp.bbox
        cx, cy = float(bbox.center.position.x), float(bbox.center.position.y)
        w, h = float(bbox.size_x), float(bbox.size_y)
        tracks.append(TrackObservation(
            track_id=str(vp.track_id), box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
            detection_score=float(vp.detection_score), smoothed_label=_label_name(vp),
            is_stable=bool(vp.is_stable)))
    return PolicyFrame(stamp_ns=_stamp_ns(msg.header.stamp), width=int(msg.image_width),
                       height=int(msg.image_height), tracks=tracks, frame_id=str(msg.header.frame_id))


def run_policy(frames: Iterable[PolicyFrame], config: PolicyConfig | None = None) -> list[PolicyOutput]:
    """Run a fresh policy over `frames` and return one output per frame."""
    policy = SideProfilePolicy(config)
    return [policy.step(frame) for frame in frames]
