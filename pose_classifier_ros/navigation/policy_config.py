"""Configuration of the side-profile policy: ``PolicyConfig`` and the policy node's parameter schema.

``PolicyConfig`` is a tree of typed dataclasses whose attribute paths are the node's parameter names
(``cfg.approach.window`` is ``approach.window``, as in config/side_profile_policy.yaml); the field
defaults are the parameters' defaults. ``policy_schema()`` adds meanings and ranges (``ParameterSchema``
from ``pose_classifier_ros.parameters``): the node declares it, the offline tools (policy-eval, nav-sim)
read the YAML through it, and a ``PolicyConfig`` built in code is checked against it too.

Units: frames are viewpoint frames (one ``ViewpointArray`` each); rates rad/s (REP-103, + = counter-
clockwise); speeds m/s; times s of frame stamps; sizes image pixels. Rates and speeds are magnitudes
(>= 0): the policy chooses the signs.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..parameters import ParameterDoc, ParameterSchema, at_most

POLICY_NODE_NAME = "side_profile_policy"
MOTION_MODES = ("orbit", "yaw")
FLANK_CHOICES = ("nearest", "left", "right")
SCAN_DIRECTIONS = ("left", "right")
CAPTURE_REASONS = ("target_size", "size_ratio", "size_pixels", "step_budget")


@dataclass
class TargetConfig:
    """``target.*``: which box is the target, and when it is lost."""

    min_detection_score: float = 0.3  # boxes below this score are never selected as target
    lost_frames: int = 10  # target lost after this many consecutive frames without it
    lost_s: float = 0.0  # ... or after this many seconds without it (0 = off)
    require_stable: bool = True  # ignore smoothed labels whose track is not yet stable


@dataclass
class ViewpointAgeConfig:
    """``viewpoint.*``."""

    max_age_s: float = 2.0  # labels computed longer ago than this count as unknown (0 = off)


@dataclass
class SearchConfig:
    """``search.*``."""

    yaw_rate: float = 0.0  # rad/s while searching (0 = hover)


@dataclass
class OrientConfig:
    """``orient.*``: how a flank is brought into view."""

    mode: str = "orbit"  # "orbit": circle the target (linear.y + yaw); "yaw": yaw only
    flank: str = "nearest"  # flank to reach: nearest (short way round), left or right
    orbit_speed: float = 3.0  # m/s lateral speed of the orbit (orbit mode)
    orbit_slowdown_deg: float = 20.0  # orbit speed ramps down within this heading error of the flank, deg
    side_overshoot_deg: float = 10.0  # label-only heading: orbit on this far into the flank's sector, deg
    yaw_rate: float = 0.3  # rad/s on a diagonal view (yaw mode)
    scan_yaw_rate: float = 0.2  # rad/s when front/back gives no hint (yaw mode)
    scan_direction: str = "left"  # first turn on front/back: "left" (CCW, +) or "right" (CW, -)
    scan_flip_frames: int = 30  # reverse the scan after this many frames without improvement (yaw mode)


@dataclass
class CenteringConfig:
    """``centering.*``: the yaw that keeps the target box centred."""

    gain: float = 1.5  # rad/s per unit horizontal offset of the box (-1..1) from the centre
    max_yaw_rate: float = 0.8  # rad/s cap on the centering yaw


@dataclass
class ApproachConfig:
    """``approach.*``: when a side view is held, and the range control's speed."""

    window: int = 7  # W: smoothed labels of the target looked at
    min_side_votes: int = 5  # K: side views among the last W needed to approach
    speed: float = 2.0  # m/s cap of the range control (forward or back)
    speed_gain: float = 3.0  # m/s per unit relative size error (capture.target_pixels set); else constant speed


@dataclass
class CaptureConfig:
    """``capture.*``: when the target counts as captured."""

    target_pixels: float = 500.0  # box longer side the range control aims at, px (0 = off)
    size_band: float = 0.1  # capture when the longer side is within +-band * target_pixels
    size_ratio: float = 0.0  # box shorter side / frame shorter side that captures (0 = off)
    size_px: float = 0.0  # box shorter side in px that captures (0 = off)
    step_budget: int = 600  # frames after lock-on before a best-effort capture (0 = off)
    recapture: bool = False  # after a capture, search for a new target instead of staying


@dataclass
class DisturbanceConfig:
    """``disturbance.*``: when to back off, and how."""

    vigilance_threshold: float = 0.5  # vigilance input above this -> retreat (1.0 = never)
    box_speed_jump: float = 0.0  # change of the box's image velocity that counts as disturbed, sizes/s (0 = off)
    camera_hfov_deg: float = 60.0  # camera horizontal field of view, deg (own yaw removed from the box motion)
    retreat_speed: float = 1.0  # m/s backwards while retreating
    retreat_s: float = 2.0  # s of backing off after a disturbance
    hold_s: float = 5.0  # s of holding still after backing off


@dataclass
class PolicyConfig:
    """Thresholds, speeds and rates of the policy; attribute path = the node's parameter name.

    Checked on construction against the node's schema (ranges, choices, cross checks): ParameterError
    (a ValueError) names the parameter (``approach.min_side_votes: must be <= approach.window (3), got 5``).
    Build one from parameter names with ``config_from_parameters({"orient.mode": "yaw"})``, change one
    with ``replace_values(cfg, {...})`` (pose_classifier_ros.parameters).
    """

    target: TargetConfig = field(default_factory=TargetConfig)
    viewpoint: ViewpointAgeConfig = field(default_factory=ViewpointAgeConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    orient: OrientConfig = field(default_factory=OrientConfig)
    centering: CenteringConfig = field(default_factory=CenteringConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    disturbance: DisturbanceConfig = field(default_factory=DisturbanceConfig)

    def __post_init__(self):
        policy_schema().validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Nested ``{group: {name: value}}``, as in the YAML."""
        return dataclasses.asdict(self)


@dataclass
class PolicyNodeConfig(PolicyConfig):
    """The policy node's parameters: the policy's and the node's own."""

    input_timeout_s: float = 1.0  # zero cmd_vel when no viewpoint frame arrived for this long, s (0 = off)


def _docs() -> tuple[ParameterDoc, ...]:
    """Meaning and limits of each parameter, in YAML order (ranges inclusive; defaults: the dataclasses)."""
    D = ParameterDoc
    return (
        D("target.min_detection_score", "Detections below this score are never chosen as target.", 0.0, 1.0),
        D("target.lost_frames", "The target is lost after this many consecutive frames without it.", 1, 100000),
        D("target.lost_s", "... or after this many seconds (frame stamps) without it; 0 = off.", 0.0, 3600.0),
        D("target.require_stable", "Ignore smoothed labels of tracks that are not yet stable (Viewpoint.is_stable)."),
        D(
            "viewpoint.max_age_s",
            "A label computed more than this long before the frame (Viewpoint.label_stamp) counts as unknown, s; 0 = off.",
            0.0,
            3600.0,
        ),
        D("search.yaw_rate", "Yaw rate in SEARCH, rad/s (0 = hover).", 0.0, 3.0),
        D(
            "orient.mode",
            "How to reach a flank: 'orbit' circles the target (linear.y with a centering yaw); 'yaw' commands only a yaw rate, for platforms whose controller orbits by itself.",
            choices=MOTION_MODES,
        ),
        D(
            "orient.flank",
            "Flank to reach: 'nearest' (the short way round the 8-class ring), 'left' or 'right' (the animal's flank).",
            choices=FLANK_CHOICES,
        ),
        D("orient.orbit_speed", "Lateral speed while orbiting, m/s (orbit mode).", 0.0, 20.0),
        D(
            "orient.orbit_slowdown_deg",
            "The orbit speed ramps down linearly within this heading error of the flank, deg; 0 = full speed.",
            0.0,
            180.0,
        ),
        D(
            "orient.side_overshoot_deg",
            "Without a heading estimate: once the label shows the flank, orbit on (half speed) until the camera has circled this much further, deg (measured by the centering yaw); 0 = stop at once.",
            0.0,
            45.0,
        ),
        D(
            "orient.yaw_rate",
            "Yaw rate magnitude in ORIENT when a diagonal view says which way to turn, rad/s (yaw mode).",
            0.0,
            3.0,
        ),
        D(
            "orient.scan_yaw_rate",
            "Yaw rate magnitude in ORIENT while the target shows its front or back, rad/s (yaw mode).",
            0.0,
            3.0,
        ),
        D(
            "orient.scan_direction",
            "First turn on a front/back view: 'left' (counter-clockwise) or 'right'.",
            choices=SCAN_DIRECTIONS,
        ),
        D(
            "orient.scan_flip_frames",
            "Reverse the scan after this many frames of front/back views without improvement (yaw mode).",
            1,
            100000,
        ),
        D(
            "centering.gain",
            "Yaw rate per unit horizontal offset of the box from the image centre (-1..1), rad/s; 0 = off.",
            0.0,
            10.0,
        ),
        D("centering.max_yaw_rate", "Cap on the centering yaw rate, rad/s.", 0.0, 3.0),
        D("approach.window", "W: number of the target's most recent smoothed labels looked at.", 1, 1000),
        D("approach.min_side_votes", "K: side views (left/right) among the last W labels needed to approach.", 1, 1000),
        D("approach.speed", "Cap of the forward/backward speed of the range control, m/s.", 0.0, 20.0),
        D(
            "approach.speed_gain",
            "Range control: m/s per unit relative size error (1 - size / capture.target_pixels).",
            0.0,
            100.0,
        ),
        D(
            "capture.target_pixels",
            "Box longer side the range control aims at, px (re-ID: 500); 0 = off (approach at approach.speed).",
            0.0,
            100000.0,
        ),
        D(
            "capture.size_band",
            "Capture when the longer side is within +- this fraction of capture.target_pixels.",
            0.001,
            0.999,
        ),
        D(
            "capture.size_ratio",
            "Capture when the box's shorter side reaches this fraction of the frame's shorter side; 0 = off.",
            0.0,
            1.0,
        ),
        D("capture.size_px", "Capture when the box's shorter side reaches this many pixels; 0 = off.", 0.0, 100000.0),
        D("capture.step_budget", "Best-effort capture this many frames after lock-on; 0 = off.", 0, 10000000),
        D("capture.recapture", "After a capture, search for a new target instead of staying captured."),
        D(
            "disturbance.vigilance_threshold",
            "Retreat when the vigilance input exceeds this (0..1); 1.0 = never.",
            0.0,
            1.0,
        ),
        D(
            "disturbance.box_speed_jump",
            "Retreat when the target box's image velocity (centre and size) changes by more than this between two frames, box sizes/s (an animal that starts to run; the drone's own motion changes smoothly); 0 = off.",
            0.0,
            1000.0,
        ),
        D(
            "disturbance.camera_hfov_deg",
            "Camera horizontal field of view, deg: the image motion of the commanded yaw is removed from the box's.",
            1.0,
            179.0,
        ),
        D("disturbance.retreat_speed", "Backward speed while retreating, m/s.", 0.0, 20.0),
        D("disturbance.retreat_s", "Back off for this long after a disturbance, s.", 0.0, 600.0),
        D("disturbance.hold_s", "Then hold still for this long before resuming, s.", 0.0, 3600.0),
        D(
            "input_timeout_s",
            "Publish a zero cmd_vel when no viewpoint frame arrived for this long, s; 0 = off. Read at start only.",
            0.0,
            60.0,
            read_only=True,
        ),
    )


def _check_capture_possible(v: dict[str, Any]) -> list[str]:
    names = ("capture.target_pixels", "capture.size_ratio", "capture.size_px", "capture.step_budget")
    if any(v[name] > 0 for name in names):
        return []
    return [f"{', '.join(names[:-1])} and {names[-1]} are all 0: the policy could never capture"]


@functools.cache
def policy_schema() -> ParameterSchema:
    """The policy node's ParameterSchema (builds ``PolicyNodeConfig``)."""
    return ParameterSchema.from_config(
        POLICY_NODE_NAME,
        PolicyNodeConfig,
        _docs(),
        cross_checks=(at_most("approach.window", "approach.min_side_votes"), _check_capture_possible),
    )


def config_from_parameters(values: dict[str, Any], source: str = "") -> PolicyNodeConfig:
    """The config from parameter names (``{"approach.window": 7, ...}``); missing ones keep their defaults.

    ParameterError names unknown keys, wrong types, out-of-range values and failed cross checks (and `source`).
    """
    return policy_schema().build(values, source)


def load_params_file(path: str | Path) -> PolicyNodeConfig:
    """The config from the policy node's section of a ROS 2 parameter YAML file (``side_profile_policy:``,
    ``/**/side_profile_policy:`` or ``/**``).

    Raises ParameterError (a ValueError) naming the file when it cannot be read, has no section for the
    node, or holds an unknown, mistyped or out-of-range parameter.
    """
    return policy_schema().build_file(path)
