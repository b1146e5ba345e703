"""Side-profile navigation policy: a ROS-free state machine over per-frame viewpoint results.

The policy locks on to one tracked animal and commands body velocities (REP-103: ``forward_speed``
linear.x, ``lateral_speed`` linear.y, + = left; ``yaw_rate`` angular.z, + = counter-clockwise) that
bring a flank of it into view (ORIENT), hold that view while ranging to the target size (APPROACH),
and stop there (CAPTURE). Viewpoint conventions: :mod:`.viewpoint_geometry`.

    SEARCH --lock on--> ORIENT --K of last W labels are side views--> APPROACH --size in band--> CAPTURE
                          ^  |                                           |  |
                          |  +--- disturbed ---> RETREAT (back off, hold)  <-+  (then back to ORIENT)
                          +------ fewer than K of last W side views -----+
    (target lost in ORIENT/APPROACH -> lock on to the largest other box, or SEARCH if none;
     step budget since lock-on exhausted in ORIENT/APPROACH -> CAPTURE, best effort)

ORIENT in ``orbit`` mode circles the target the short way round the 8-class ring: lateral velocity
at the current range, with a yaw rate that keeps the box centred, closing to the target size on the
way. In ``yaw`` mode it commands only a yaw rate (for platforms whose controller orbits the target by
itself: a positive yaw rate must then circle it counter-clockwise). Without a known, fresh label of the
visible target the policy commands no motion at all (hold).

This module re-exports the configuration (:mod:`.policy_config`), the data types
(:mod:`.policy_types`) and the message conversion (:mod:`.policy_msgs`), so
``from pose_classifier_ros.navigation.policy import PolicyConfig, frame_from_msg`` keeps working.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable

from ..labels import SIDE_VIEWS
from .policy_config import (
    CAPTURE_REASONS,
    POLICY_NODE_NAME,
    PolicyConfig,
    PolicyNodeConfig,
    config_from_parameters,
    load_params_file,
    policy_schema,
)
from .policy_msgs import frame_from_msg
from .policy_types import CaptureInfo, PolicyFrame, PolicyOutput, State, TrackObservation
from .viewpoint_geometry import LABEL_HEADING_DEG, heading_error_deg, nearest_flank

__all__ = [
    "CAPTURE_REASONS",
    "POLICY_NODE_NAME",
    "CaptureInfo",
    "PolicyConfig",
    "PolicyFrame",
    "PolicyNodeConfig",
    "PolicyOutput",
    "SideProfilePolicy",
    "State",
    "TrackObservation",
    "config_from_parameters",
    "frame_from_msg",
    "load_params_file",
    "policy_schema",
    "run_policy",
]

_logger = logging.getLogger(__name__)
_SCAN_VIEWS = frozenset({"front", "back"})  # exactly between the flanks: no hint which way is shorter
_SCAN_SIGN = {"left": 1, "right": -1}
# A chosen flank is kept until the other one is nearer by more than this (front/back never switch it).
FLANK_SWITCH_MARGIN_DEG = 60.0
# With a heading estimate: within this of the flank the orbit stops (no dithering on estimate noise).
HEADING_DEADBAND_DEG = 5.0


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
        self._labels: deque[str] = deque(maxlen=self.config.approach.window)
        self._missed = 0
        self._last_seen_ns = 0
        self._lock_frame = 0
        self._scan_sign = _SCAN_SIGN[self.config.orient.scan_direction]
        self._scan_frames = 0
        self._last_label = ""
        self._last_ratio = 0.0
        self._last_size_px = 0.0
        self._label_fresh = False
        self._flank = ""
        self._heading = math.nan
        self._prev_box: tuple[int, float, float, float] | None = None  # (stamp_ns, centre x, y, longer side)
        self._prev_velocity: tuple[float, float, float] | None = None  # of the box, px/s
        self._last_yaw = 0.0
        self._last_frame_ns: int | None = None
        self._orbit_dir = 0  # last non-zero orbit direction (+1: increase h)
        self._overshoot_left_deg = 0.0  # orbit still to go after the label turned to the flank
        self._retreat_until_ns = 0
        self._hold_until_ns = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def target_track_id(self) -> str | None:
        return self._target

    def update_config(self, config: PolicyConfig) -> None:
        """Apply new parameters without losing the target (the label history keeps its newest labels)."""
        self.config = config
        self._labels = deque(self._labels, maxlen=config.approach.window)

    # -- helpers ---------------------------------------------------------------------------------------
    def _side_votes(self) -> int:
        return sum(1 for label in self._labels if label in SIDE_VIEWS)

    def _side_view_held(self) -> bool:
        return (
            len(self._labels) >= self.config.approach.min_side_votes
            and self._side_votes() >= self.config.approach.min_side_votes
        )

    def _enter(self, state: State, reason: str) -> None:
        if state != self._state:
            _logger.debug("%s -> %s: %s", self._state.name, state.name, reason)
        self._state = state
        self._steps_in_state = 0
        self._reason = reason
        self._entered = True

    def _select(self, frame: PolicyFrame) -> TrackObservation | None:
        """Largest box above the score threshold, not yet captured; ties broken by score, then id."""
        candidates = [
            t
            for t in frame.tracks
            if t.detection_score >= self.config.target.min_detection_score
            and t.area > 0
            and t.track_id not in self._captured_ids
        ]
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

    def _usable_label(self, target: TrackObservation, frame: PolicyFrame) -> str:
        """The target's smoothed label, or "" when unknown, not yet stable (if required) or too old."""
        cfg = self.config
        if not target.smoothed_label or (cfg.target.require_stable and not target.is_stable):
            return ""
        if (
            cfg.viewpoint.max_age_s > 0
            and target.label_stamp_ns > 0
            and frame.stamp_ns - target.label_stamp_ns > cfg.viewpoint.max_age_s * 1e9
        ):
            return ""
        return target.smoothed_label

    def _observe(self, target: TrackObservation, frame: PolicyFrame) -> None:
        label = self._usable_label(target, frame)
        self._labels.append(label)
        self._label_fresh = bool(label)
        self._last_label = target.smoothed_label
        self._last_ratio = self._size_ratio(target, frame)
        self._last_size_px = target.longer_side
        self._heading_estimated = bool(label) and math.isfinite(target.heading_deg)
        if label:
            self._heading = target.heading_deg if self._heading_estimated else LABEL_HEADING_DEG[label]
            self._choose_flank(label)
        else:
            self._heading = math.nan

    def _choose_flank(self, label: str) -> None:
        cfg = self.config
        if cfg.orient.flank != "nearest":
            self._flank = cfg.orient.flank
        elif not self._flank and label in _SCAN_VIEWS and self._heading in (0.0, -180.0):
            # Exactly between the flanks: go the way orient.scan_direction turns the camera.
            sign = _SCAN_SIGN[cfg.orient.scan_direction]
            self._flank = "left" if heading_error_deg(self._heading, "left") * sign > 0 else "right"
        else:
            self._flank = nearest_flank(self._heading, self._flank, FLANK_SWITCH_MARGIN_DEG)

    def _disturbed(self, target: TrackObservation | None, frame: PolicyFrame) -> str:
        """Why the animal counts as disturbed on this frame, or ""."""
        cfg = self.config
        if frame.vigilance is not None and frame.vigilance > cfg.disturbance.vigilance_threshold:
            return f"vigilance {frame.vigilance:.2f} > {cfg.disturbance.vigilance_threshold}"
        if target is None or cfg.disturbance.box_speed_jump <= 0:
            return ""
        jump = self._box_velocity_change(target, frame)
        return f"box speed jump {jump:.1f} box sizes/s" if jump > cfg.disturbance.box_speed_jump else ""

    def _box_velocity_change(self, target: TrackObservation, frame: PolicyFrame) -> float:
        """Change of the target box's image velocity (centre x, centre y, longer side; px/s) since the previous
        frame, in box sizes (longer side) per second; 0 until two velocities are known.

        The image motion of the previous frame's yaw command (focal length from disturbance.camera_hfov_deg)
        is removed first; the drone's remaining motion changes the image velocity smoothly (it is
        acceleration-limited), an animal that bolts sideways changes it from one frame to the next.
        """
        box = (frame.stamp_ns, target.center_x, (target.box[1] + target.box[3]) / 2, target.longer_side)
        prev, self._prev_box = self._prev_box, box
        if prev is None or self._missed or box[3] <= 0 or box[0] <= prev[0]:
            self._prev_velocity = None
            return 0.0
        dt = (box[0] - prev[0]) * 1e-9
        focal = frame.width / 2 / math.tan(math.radians(self.config.disturbance.camera_hfov_deg) / 2)
        velocity = (
            (box[1] - prev[1]) / dt - focal * self._last_yaw,  # turning left (+) moves the scene right
            (box[2] - prev[2]) / dt,
            (box[3] - prev[3]) / dt,
        )
        before, self._prev_velocity = self._prev_velocity, velocity
        if before is None:
            return 0.0
        return math.dist(velocity, before) / box[3]

    # -- the state machine -----------------------------------------------------------------------------
    def step(self, frame: PolicyFrame) -> PolicyOutput:
        """Consume one frame (time order) and return the recommended motion and state."""
        cfg = self.config
        self._frames_total += 1
        self._entered = False
        if self._state == State.CAPTURE and cfg.capture.recapture and self._steps_in_state >= 1:
            self._clear_target()
            self._enter(State.SEARCH, "recapture: searching for a new target")

        target = self._find_target(frame)
        if target is not None:
            self._last_seen_ns = frame.stamp_ns
            self._observe(target, frame)
        if self._state in (State.ORIENT, State.APPROACH, State.RETREAT):
            self._check_disturbance(target, frame)

        motion, capture = (0.0, 0.0, 0.0), None
        if self._state == State.RETREAT:
            motion = self._retreat(frame)
        elif self._state in (State.ORIENT, State.APPROACH) and target is not None:
            motion, capture = self._follow(target, frame)
        elif self._state == State.SEARCH:
            motion = (cfg.search.yaw_rate, 0.0, 0.0)
        # ORIENT/APPROACH with the target out of sight for a few frames: hold still until it is back or lost.
        return self._output(frame, target, motion, capture)

    def _check_disturbance(self, target: TrackObservation | None, frame: PolicyFrame) -> None:
        """ORIENT/APPROACH -> RETREAT on a disturbance; a new one while retreating extends the hold."""
        cfg = self.config
        disturbed = self._disturbed(target, frame)
        if not disturbed:
            return
        if self._state == State.RETREAT:
            self._hold_until_ns = max(self._hold_until_ns, frame.stamp_ns + int(cfg.disturbance.hold_s * 1e9))
            return
        self._retreat_until_ns = frame.stamp_ns + int(cfg.disturbance.retreat_s * 1e9)
        self._hold_until_ns = self._retreat_until_ns + int(cfg.disturbance.hold_s * 1e9)
        self._enter(State.RETREAT, f"disturbed: {disturbed}")

    def _retreat(self, frame: PolicyFrame) -> tuple[float, float, float]:
        """Back off, then hold, then ORIENT again (frame stamps)."""
        if frame.stamp_ns < self._retreat_until_ns:
            return 0.0, -self.config.disturbance.retreat_speed, 0.0
        if frame.stamp_ns >= self._hold_until_ns:
            self._labels.clear()  # the animal may have turned meanwhile
            self._enter(State.ORIENT, "disturbance over: resuming")
        return 0.0, 0.0, 0.0

    def _follow(
        self, target: TrackObservation, frame: PolicyFrame
    ) -> tuple[tuple[float, float, float], CaptureInfo | None]:
        """ORIENT/APPROACH with the target in view: transitions, capture, or the motion."""
        frames_since_lock = self._frames_total - self._lock_frame
        if self._state == State.ORIENT and self._side_view_held():
            self._enter(State.APPROACH, f"{self._side_votes()} of the last {len(self._labels)} labels are side views")
        elif self._state == State.APPROACH and not self._side_view_held():
            self._enter(State.ORIENT, f"side view lost: {self._side_votes()} of the last {len(self._labels)} labels")
        reason = self._capture_reason(target, frame, frames_since_lock)
        if reason is not None:
            capture = CaptureInfo(
                stamp_ns=frame.stamp_ns,
                frame_id=frame.frame_id,
                track_id=target.track_id,
                viewpoint=target.smoothed_label,
                target_size_ratio=self._last_ratio,
                reason=reason,
                frames_to_capture=frames_since_lock,
                flank=self._labels[-1] if self._labels and self._labels[-1] in SIDE_VIEWS else "",
                target_size_px=self._last_size_px,
            )
            self._captured_ids.add(target.track_id)
            self._enter(State.CAPTURE, f"captured {target.track_id}: {reason}")
            return (0.0, 0.0, 0.0), capture
        if not self._label_fresh:  # never move without a known, fresh viewpoint of the target
            return (0.0, 0.0, 0.0), None
        return self._motion(target, frame), None

    def _output(
        self,
        frame: PolicyFrame,
        target: TrackObservation | None,
        motion: tuple[float, float, float],
        capture: CaptureInfo | None,
    ) -> PolicyOutput:
        yaw, forward, lateral = motion
        self._last_yaw = yaw
        self._last_frame_ns = frame.stamp_ns
        self._steps_in_state += 1
        has_target = bool(self._target)
        return PolicyOutput(
            stamp_ns=frame.stamp_ns,
            frame_id=frame.frame_id,
            state=self._state,
            target_track_id=self._target or "",
            target_viewpoint=self._last_label if has_target else "",
            side_votes=self._side_votes(),
            target_size_ratio=self._last_ratio if has_target else 0.0,
            yaw_rate=float(yaw),
            forward_speed=float(forward),
            lateral_speed=float(lateral),
            steps_in_state=self._steps_in_state,
            reason=self._reason,
            transitioned=self._entered,
            target_visible=target is not None,
            capture=capture,
            flank=self._flank if has_target else "",
            heading_deg=self._heading if target is not None else math.nan,
            target_size_px=self._last_size_px if has_target else 0.0,
            label_fresh=self._label_fresh and target is not None,
        )

    def _find_target(self, frame: PolicyFrame) -> TrackObservation | None:
        """The locked target in `frame` (locking on or losing it as needed), or None."""
        cfg = self.config
        target: TrackObservation | None = None
        if self._state in (State.ORIENT, State.APPROACH, State.RETREAT):
            target = next((t for t in frame.tracks if t.track_id == self._target), None)
            if target is not None:
                self._missed = 0
            else:
                self._missed += 1
                self._label_fresh = False
                lost_by_time = cfg.target.lost_s > 0 and frame.stamp_ns - self._last_seen_ns >= cfg.target.lost_s * 1e9
                lost = self._missed >= cfg.target.lost_frames or lost_by_time
                if lost and self._state != State.RETREAT:
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
        return target

    def _capture_reason(self, target: TrackObservation, frame: PolicyFrame, frames_since_lock: int) -> str | None:
        cfg = self.config
        if self._state == State.APPROACH:
            latest = self._labels[-1] if self._labels else ""
            if (
                cfg.capture.target_pixels > 0
                and latest in SIDE_VIEWS
                and abs(target.longer_side - cfg.capture.target_pixels)
                <= cfg.capture.size_band * cfg.capture.target_pixels
            ):
                return "target_size"
            if cfg.capture.size_ratio > 0 and self._last_ratio >= cfg.capture.size_ratio:
                return "size_ratio"
            if cfg.capture.size_px > 0 and target.shorter_side >= cfg.capture.size_px:
                return "size_pixels"
        if cfg.capture.step_budget > 0 and frames_since_lock >= cfg.capture.step_budget:
            return "step_budget"
        return None

    def _motion(self, target: TrackObservation, frame: PolicyFrame) -> tuple[float, float, float]:
        """(yaw rate, forward, lateral) in ORIENT/APPROACH, given a fresh label of the visible target."""
        cfg = self.config
        error = heading_error_deg(self._heading, self._flank) if self._flank else 0.0
        if self._heading_estimated and abs(error) < HEADING_DEADBAND_DEG:
            error = 0.0
        direction = (error > 0) - (error < 0)  # +1: increase h (circle counter-clockwise)
        if cfg.orient.mode == "yaw":
            if self._state == State.APPROACH:
                return self._centering_yaw(target, frame), self._range_speed(target), 0.0
            return self._orient_yaw(direction), 0.0, 0.0
        yaw = self._centering_yaw(target, frame)
        lateral = self._orbit_lateral(error, direction, yaw, frame)
        forward = self._range_speed(target) if cfg.capture.target_pixels > 0 or self._state == State.APPROACH else 0.0
        return yaw, forward, lateral

    def _orbit_lateral(self, error: float, direction: int, yaw: float, frame: PolicyFrame) -> float:
        """Lateral speed of the orbit: toward the flank, then `side_overshoot_deg` on into its sector.

        A label-only heading jumps to the flank at the sector's edge; the orbit goes on (at half speed)
        until the yaw that kept the target centred adds up to orient.side_overshoot_deg, i.e. the camera
        circled that far around the target, so the drone settles inside the side sector, not on its edge.
        """
        cfg = self.config
        if direction:
            self._orbit_dir = direction
            self._overshoot_left_deg = 0.0 if self._heading_estimated else cfg.orient.side_overshoot_deg
            ramp = 1.0 if cfg.orient.orbit_slowdown_deg <= 0 else min(1.0, abs(error) / cfg.orient.orbit_slowdown_deg)
            return -direction * cfg.orient.orbit_speed * ramp  # counter-clockwise orbit = fly to the right
        if self._overshoot_left_deg > 0 and self._orbit_dir and self._last_frame_ns is not None:
            # Count the yaw commanded now over one frame period (the last one's length).
            period = max(0.0, (frame.stamp_ns - self._last_frame_ns) * 1e-9)
            self._overshoot_left_deg -= math.degrees(abs(yaw)) * period
            return -self._orbit_dir * cfg.orient.orbit_speed * 0.5
        return 0.0

    def _range_speed(self, target: TrackObservation) -> float:
        """Forward (+) or backward (-) speed toward the target size; constant approach.speed without one."""
        cfg = self.config
        if cfg.capture.target_pixels <= 0:
            return cfg.approach.speed
        error = 1.0 - target.longer_side / cfg.capture.target_pixels  # > 0: too small, close in
        return max(-cfg.approach.speed, min(cfg.approach.speed, cfg.approach.speed_gain * error))

    def _orient_yaw(self, direction: int) -> float:
        """Yaw mode: the yaw rate that makes a self-orbiting platform circle toward the flank."""
        cfg = self.config
        label = self._labels[-1] if self._labels else ""
        if label in _SCAN_VIEWS and cfg.orient.flank == "nearest":
            # Front or back: either way round works; keep going one way, and turn back if it does not help.
            if self._scan_frames >= cfg.orient.scan_flip_frames:
                self._scan_sign = -self._scan_sign
                self._scan_frames = 0
            self._scan_frames += 1
            return self._scan_sign * cfg.orient.scan_yaw_rate
        self._scan_frames = 0
        return direction * cfg.orient.yaw_rate

    def _centering_yaw(self, target: TrackObservation, frame: PolicyFrame) -> float:
        cfg = self.config
        if cfg.centering.gain <= 0 or frame.width <= 0:
            return 0.0
        # Box right of centre -> turn right (negative yaw, REP-103).
        offset = (target.center_x - frame.width / 2) / (frame.width / 2)
        yaw = -cfg.centering.gain * offset
        return max(-cfg.centering.max_yaw_rate, min(cfg.centering.max_yaw_rate, yaw))


def run_policy(frames: Iterable[PolicyFrame], config: PolicyConfig | None = None) -> list[PolicyOutput]:
    """Run a fresh policy over `frames` and return one output per frame."""
    policy = SideProfilePolicy(config)
    return [policy.step(frame) for frame in frames]
