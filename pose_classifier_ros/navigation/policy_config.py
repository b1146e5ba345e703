"""Configuration of the side-profile policy: ``PolicyConfig`` and its ROS parameter table.

``POLICY_PARAMETERS`` maps each ROS parameter of ``side_profile_policy_node`` (dotted names, as in
config/side_profile_policy.yaml) to one ``PolicyConfig`` field; defaults come from ``PolicyConfig()``,
so there is one source of truth. ``policy_schema()`` turns the table into the shared rclpy-free
``ParameterSchema`` used by the node (declaration) and the offline tools (YAML loading).

Units: frames are viewpoint frames (one ``ViewpointArray`` each); rates rad/s (REP-103, + = counter-
clockwise); speeds m/s; times s of frame stamps; sizes image pixels.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..parameters import Parameter, ParameterError, ParameterSchema, read_params_file

MOTION_MODES = ("orbit", "yaw")
FLANK_CHOICES = ("nearest", "left", "right")
SCAN_DIRECTIONS = ("left", "right")
CAPTURE_REASONS = ("target_size", "size_ratio", "size_pixels", "step_budget")

# Non-negative magnitudes: the policy chooses the signs.
_MAGNITUDES = (
    "search_yaw_rate",
    "orient_yaw_rate",
    "scan_yaw_rate",
    "orbit_speed",
    "orbit_slowdown_deg",
    "side_overshoot_deg",
    "approach_speed",
    "approach_speed_gain",
    "centering_gain",
    "centering_max_yaw_rate",
    "capture_size_px",
    "capture_target_pixels",
    "viewpoint_max_age_s",
    "box_speed_jump",
    "retreat_speed",
    "retreat_s",
    "retreat_hold_s",
)


@dataclass
class PolicyConfig:
    """Thresholds, speeds and rates of the policy (the node's parameters, one to one)."""

    min_detection_score: float = 0.3  # boxes below this score are never selected as target
    target_lost_frames: int = 10  # target lost after this many consecutive frames without it
    target_lost_s: float = 0.0  # ... or after this many seconds without it (0 = off)
    require_stable: bool = True  # ignore smoothed labels whose track is not yet stable
    viewpoint_max_age_s: float = 2.0  # labels computed longer ago than this count as unknown (0 = off)
    search_yaw_rate: float = 0.0  # rad/s while searching (0 = hover)
    motion_mode: str = "orbit"  # "orbit": circle the target (linear.y + yaw); "yaw": yaw only
    flank: str = "nearest"  # flank to reach: nearest (short way round), left or right
    orbit_speed: float = 3.0  # m/s lateral speed of the orbit (orbit mode)
    orbit_slowdown_deg: float = 20.0  # orbit speed ramps down within this heading error of the flank, deg
    side_overshoot_deg: float = 10.0  # label-only heading: orbit on this far into the flank's sector, deg
    orient_yaw_rate: float = 0.3  # rad/s magnitude on a diagonal view (yaw mode)
    scan_yaw_rate: float = 0.2  # rad/s magnitude when front/back gives no hint (yaw mode)
    scan_direction: str = "left"  # first turn on front/back: "left" (CCW, +) or "right" (CW, -)
    scan_flip_frames: int = 30  # reverse the scan after this many frames without improvement (yaw mode)
    centering_gain: float = 1.5  # rad/s per unit horizontal offset of the box (-1..1) from the centre
    centering_max_yaw_rate: float = 0.8  # rad/s cap on the centering yaw
    approach_window: int = 7  # W: smoothed labels of the target looked at
    approach_min_side_votes: int = 5  # K: side views among the last W needed to approach
    approach_speed: float = 2.0  # m/s cap of the range control (forward or back)
    approach_speed_gain: float = 3.0  # m/s per unit relative size error (target_pixels set); else constant speed
    capture_target_pixels: float = 500.0  # box longer side the range control aims at, px (0 = off)
    capture_size_band: float = 0.1  # capture when the longer side is within +-band * target_pixels
    capture_size_ratio: float = 0.0  # box shorter side / frame shorter side that captures (0 = off)
    capture_size_px: float = 0.0  # box shorter side in px that captures (0 = off)
    step_budget: int = 600  # frames after lock-on before a best-effort capture (0 = off)
    recapture: bool = False  # after a capture, search for a new target instead of staying
    vigilance_threshold: float = 0.5  # vigilance input above this -> retreat (1.0 = never)
    box_speed_jump: float = 0.0  # change of the box's image velocity that counts as disturbed, sizes/s (0 = off)
    camera_hfov_deg: float = 60.0  # camera horizontal field of view, deg (own yaw removed from the box motion)
    retreat_speed: float = 1.0  # m/s backwards while retreating
    retreat_s: float = 2.0  # s of backing off after a disturbance
    retreat_hold_s: float = 5.0  # s of holding still after backing off

    def __post_init__(self):
        errors = []

        def check(ok: bool, msg: str):
            if not ok:
                errors.append(msg)

        check(
            0.0 <= self.min_detection_score <= 1.0, f"min_detection_score={self.min_detection_score} must be in [0, 1]"
        )
        check(self.target_lost_frames >= 1, f"target_lost_frames={self.target_lost_frames} must be >= 1")
        check(self.target_lost_s >= 0.0, f"target_lost_s={self.target_lost_s} must be >= 0 (0 = off)")
        for name in _MAGNITUDES:
            value = getattr(self, name)
            check(value >= 0.0, f"{name}={value} must be >= 0 (a magnitude; signs are chosen by the policy)")
        for name, choices in (
            ("motion_mode", MOTION_MODES),
            ("flank", FLANK_CHOICES),
            ("scan_direction", SCAN_DIRECTIONS),
        ):
            check(getattr(self, name) in choices, f"{name}={getattr(self, name)!r} must be one of {list(choices)}")
        check(self.scan_flip_frames >= 1, f"scan_flip_frames={self.scan_flip_frames} must be >= 1")
        check(self.approach_window >= 1, f"approach_window={self.approach_window} must be >= 1")
        check(
            1 <= self.approach_min_side_votes <= self.approach_window,
            f"approach_min_side_votes={self.approach_min_side_votes} must be in [1, approach_window="
            f"{self.approach_window}]",
        )
        check(0.0 <= self.capture_size_ratio <= 1.0, f"capture_size_ratio={self.capture_size_ratio} must be in [0, 1]")
        check(0.0 < self.capture_size_band < 1.0, f"capture_size_band={self.capture_size_band} must be in (0, 1)")
        check(
            0.0 <= self.vigilance_threshold <= 1.0, f"vigilance_threshold={self.vigilance_threshold} must be in [0, 1]"
        )
        check(0.0 < self.camera_hfov_deg < 180.0, f"camera_hfov_deg={self.camera_hfov_deg} must be in (0, 180)")
        check(self.step_budget >= 0, f"step_budget={self.step_budget} must be >= 0 (0 = off)")
        check(
            self.capture_target_pixels > 0
            or self.capture_size_ratio > 0
            or self.capture_size_px > 0
            or self.step_budget > 0,
            "capture_target_pixels, capture_size_ratio, capture_size_px and step_budget "
            "are all 0: the policy could never capture",
        )
        if errors:
            raise ValueError("invalid policy configuration: " + "; ".join(errors))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PolicyConfig:
        """Build from a flat dict; unknown keys are an error (a typo must not silently do nothing)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown policy parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> PolicyConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PolicyParameter:
    """One ROS parameter of the policy node and the PolicyConfig field it sets."""

    name: str  # ROS parameter name (dotted groups, as in config/side_profile_policy.yaml)
    field: str  # PolicyConfig field
    description: str
    low: float | None = None  # inclusive range for the descriptor (None: no range)
    high: float | None = None
    choices: tuple[str, ...] = ()


_P = PolicyParameter
# The node's parameters in YAML order. Ranges are inclusive, for ParameterDescriptors.
POLICY_PARAMETERS: tuple[PolicyParameter, ...] = (
    _P(
        "target.min_detection_score",
        "min_detection_score",
        "Detections below this score are never chosen as target.",
        0.0,
        1.0,
    ),
    _P(
        "target.lost_frames",
        "target_lost_frames",
        "The target is lost after this many consecutive frames without it.",
        1,
        100000,
    ),
    _P(
        "target.lost_s",
        "target_lost_s",
        "... or after this many seconds (frame stamps) without it; 0 = off.",
        0.0,
        3600.0,
    ),
    _P(
        "target.require_stable",
        "require_stable",
        "Ignore smoothed labels of tracks that are not yet stable (Viewpoint.is_stable).",
    ),
    _P(
        "viewpoint.max_age_s",
        "viewpoint_max_age_s",
        "A label computed more than this long before the frame (Viewpoint.label_stamp) counts as unknown, s; 0 = off.",
        0.0,
        3600.0,
    ),
    _P("search.yaw_rate", "search_yaw_rate", "Yaw rate in SEARCH, rad/s (0 = hover).", 0.0, 3.0),
    _P(
        "orient.mode",
        "motion_mode",
        "How to reach a flank: 'orbit' circles the target (linear.y with a "
        "centering yaw); 'yaw' commands only a yaw rate, for platforms whose controller orbits by itself.",
        choices=MOTION_MODES,
    ),
    _P(
        "orient.flank",
        "flank",
        "Flank to reach: 'nearest' (the short way round the 8-class ring), 'left' or 'right' (the animal's flank).",
        choices=FLANK_CHOICES,
    ),
    _P("orient.orbit_speed", "orbit_speed", "Lateral speed while orbiting, m/s (orbit mode).", 0.0, 20.0),
    _P(
        "orient.orbit_slowdown_deg",
        "orbit_slowdown_deg",
        "The orbit speed ramps down linearly within this heading error of the flank, deg; 0 = full speed.",
        0.0,
        180.0,
    ),
    _P(
        "orient.side_overshoot_deg",
        "side_overshoot_deg",
        "Without a heading estimate: once the label shows the flank, orbit on (half speed) until the camera has "
        "circled this much further, deg (measured by the centering yaw); 0 = stop at once.",
        0.0,
        45.0,
    ),
    _P(
        "orient.yaw_rate",
        "orient_yaw_rate",
        "Yaw rate magnitude in ORIENT when a diagonal view says which way to turn, rad/s (yaw mode).",
        0.0,
        3.0,
    ),
    _P(
        "orient.scan_yaw_rate",
        "scan_yaw_rate",
        "Yaw rate magnitude in ORIENT while the target shows its front or back, rad/s (yaw mode).",
        0.0,
        3.0,
    ),
    _P(
        "orient.scan_direction",
        "scan_direction",
        "First turn on a front/back view: 'left' (counter-clockwise) or 'right'.",
        choices=SCAN_DIRECTIONS,
    ),
    _P(
        "orient.scan_flip_frames",
        "scan_flip_frames",
        "Reverse the scan after this many frames of front/back views without improvement (yaw mode).",
        1,
        100000,
    ),
    _P(
        "centering.gain",
        "centering_gain",
        "Yaw rate per unit horizontal offset of the box from the image centre (-1..1), rad/s; 0 = off.",
        0.0,
        10.0,
    ),
    _P("centering.max_yaw_rate", "centering_max_yaw_rate", "Cap on the centering yaw rate, rad/s.", 0.0, 3.0),
    _P(
        "approach.window",
        "approach_window",
        "W: number of the target's most recent smoothed labels looked at.",
        1,
        1000,
    ),
    _P(
        "approach.min_side_votes",
        "approach_min_side_votes",
        "K: side views (left/right) among the last W labels needed to approach.",
        1,
        1000,
    ),
    _P("approach.speed", "approach_speed", "Cap of the forward/backward speed of the range control, m/s.", 0.0, 20.0),
    _P(
        "approach.speed_gain",
        "approach_speed_gain",
        "Range control: m/s per unit relative size error (1 - size / capture.target_pixels).",
        0.0,
        100.0,
    ),
    _P(
        "capture.target_pixels",
        "capture_target_pixels",
        "Box longer side the range control aims at, px (re-ID: 500); 0 = off (approach at approach.speed).",
        0.0,
        100000.0,
    ),
    _P(
        "capture.size_band",
        "capture_size_band",
        "Capture when the longer side is within +- this fraction of capture.target_pixels.",
        0.001,
        0.999,
    ),
    _P(
        "capture.size_ratio",
        "capture_size_ratio",
        "Capture when the box's shorter side reaches this fraction of the frame's shorter side; 0 = off.",
        0.0,
        1.0,
    ),
    _P(
        "capture.size_px",
        "capture_size_px",
        "Capture when the box's shorter side reaches this many pixels; 0 = off.",
        0.0,
        100000.0,
    ),
    _P(
        "capture.step_budget",
        "step_budget",
        "Best-effort capture this many frames after lock-on; 0 = off.",
        0,
        10_000_000,
    ),
    _P("capture.recapture", "recapture", "After a capture, search for a new target instead of staying captured."),
    _P(
        "disturbance.vigilance_threshold",
        "vigilance_threshold",
        "Retreat when the vigilance input exceeds this (0..1); 1.0 = never.",
        0.0,
        1.0,
    ),
    _P(
        "disturbance.box_speed_jump",
        "box_speed_jump",
        "Retreat when the target box's image velocity (centre and size) changes by more than this between two "
        "frames, box sizes/s (an animal that starts to run; the drone's own motion changes smoothly); 0 = off.",
        0.0,
        1000.0,
    ),
    _P(
        "disturbance.camera_hfov_deg",
        "camera_hfov_deg",
        "Camera horizontal field of view, deg: the image motion of the commanded yaw is removed from the box's.",
        1.0,
        179.0,
    ),
    _P("disturbance.retreat_speed", "retreat_speed", "Backward speed while retreating, m/s.", 0.0, 20.0),
    _P("disturbance.retreat_s", "retreat_s", "Back off for this long after a disturbance, s.", 0.0, 600.0),
    _P("disturbance.hold_s", "retreat_hold_s", "Then hold still for this long before resuming, s.", 0.0, 3600.0),
)
_FIELD_RE = re.compile(r"\b(" + "|".join(sorted((p.field for p in POLICY_PARAMETERS), key=len, reverse=True)) + r")\b")


def config_from_fields(values: dict[str, Any]) -> PolicyConfig:
    """PolicyConfig from field values; errors name the ROS parameters (approach.window), not the fields."""
    try:
        return PolicyConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        by_field = {p.field: p.name for p in POLICY_PARAMETERS}
        raise ValueError(_FIELD_RE.sub(lambda m: by_field[m.group(1)], str(exc))) from None


POLICY_NODE_NAME = "side_profile_policy"
# Node parameters that are not part of PolicyConfig.
NODE_ONLY_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "input_timeout_s",
        1.0,
        "Publish a zero cmd_vel when no viewpoint frame arrived for this long, s; 0 = off. Read at start only.",
        0.0,
        60.0,
        read_only=True,
    ),
)


def policy_schema() -> ParameterSchema:
    """The policy node's ParameterSchema: one entry per PolicyConfig field plus the node-only ones."""
    defaults = PolicyConfig().to_dict()
    entries = [Parameter(p.name, defaults[p.field], p.description, p.low, p.high, p.choices) for p in POLICY_PARAMETERS]
    return ParameterSchema(POLICY_NODE_NAME, [*entries, *NODE_ONLY_PARAMETERS])


def config_from_parameters(values: dict[str, Any], source: str = "") -> PolicyConfig:
    """PolicyConfig from ROS parameter names (``{"approach.window": 7, ...}``); missing ones keep defaults.

    ParameterError names unknown keys, wrong types and out-of-range values (and `source`).
    """
    checked = policy_schema().check(values, source)
    try:
        return config_from_fields({p.field: checked[p.name] for p in POLICY_PARAMETERS})
    except ValueError as exc:
        raise ParameterError((f"{source}: " if source else "") + str(exc)) from None


def load_params_file(path, node_name: str = POLICY_NODE_NAME) -> PolicyConfig:
    """PolicyConfig from a ROS 2 parameter YAML file (``node_name: ros__parameters: {...}``, or ``/**``).

    Raises ParameterError (a ValueError) naming the file when it cannot be read, has no section for the
    node, or holds an unknown, mistyped or out-of-range parameter.
    """
    return config_from_parameters(read_params_file(path, node_name), source=str(path))
