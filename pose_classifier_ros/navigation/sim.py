"""Closed-loop side-profile simulator: one animal, one drone with a camera, the policy in the loop. No ROS.

World frame ENU seen from above (x east, y north, angles counter-clockwise, metres, seconds). The
animal (a box of length x width x height metres) stands, turns at a constant rate, walks along its
heading, or flees. The drone flies at a fixed altitude; its camera looks along the drone's yaw with
a horizontal field of view ``hfov_deg`` (a gimbal keeps the animal vertically centred). Each frame
(``dt_s``) the simulator produces what the classifier node would publish for the animal:

- the detection box from the true geometry (pinhole projection, clipped to the image, pixel noise);
  no box when the animal's centre is outside the field of view;
- a per-frame viewpoint label from the true relative heading ``label_latency_s`` earlier (the class
  whose sector holds it, :func:`.viewpoint_geometry.class_of_heading`), passed through a confusion
  model (``p_adjacent``: one sector off, ``p_random``: any class), classified every frame or every
  ``label_period_s`` (then ``label_stamp`` ages), and voted per track by the node's ``TrackVoter``.

Twist commands (REP-103 body frame: forward, lateral + = left, yaw rate + = counter-clockwise) are
integrated with speed, acceleration and yaw-rate limits. ``platform="self-orbit"`` models a platform
whose controller orbits the locked target by itself: the commanded yaw rate becomes the orbit rate
around the animal (positive = counter-clockwise) and the platform keeps the animal centred.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from ..labels import NUM_CLASSES, VIEWPOINTS
from ..stream.voting import TrackVoter, VotingConfig
from .policy_types import PolicyFrame, TrackObservation
from .viewpoint_geometry import bearing_deg, class_of_heading, relative_heading_deg, wrap_deg

PLATFORMS = ("velocity", "self-orbit")
TRACK_ID = "animal-1"
_NS = 1_000_000_000
# Ring order of the classes (45-degree steps of h from 0 upwards): front, front-left, left, ...
_RING = [class_of_heading(45.0 * k) for k in range(NUM_CLASSES)]
_RING_POS = {c: k for k, c in enumerate(_RING)}


@dataclass
class SimConfig:
    """Camera, animal, platform limits and the viewpoint model of one simulation."""

    dt_s: float = 0.1  # frame period (one policy step per frame)
    substeps: int = 4  # integration steps per frame
    duration_s: float = 60.0
    image_width: int = 1920
    image_height: int = 1080
    hfov_deg: float = 30.0
    altitude_m: float = 5.0  # camera height above the animal's centre
    animal_length_m: float = 1.6
    animal_width_m: float = 0.5
    animal_height_m: float = 1.1
    max_speed_m_s: float = 4.0  # horizontal speed limit of the drone
    max_accel_m_s2: float = 2.0
    max_yaw_rate: float = 1.5  # rad/s
    max_yaw_accel: float = 3.0  # rad/s^2
    platform: str = "velocity"  # or "self-orbit"
    p_adjacent: float = 0.05  # per-frame label one sector off (either side)
    p_random: float = 0.01  # per-frame label drawn uniformly from all classes
    label_latency_s: float = 0.2  # the label describes the view this long ago (its label_stamp)
    label_period_s: float = 0.0  # classify every frame (0) or every this many seconds (labels age)
    heading_noise_deg: float = math.nan  # per-frame heading noise; the track's estimate is the circular mean
    # over the voting window (NaN: no estimate published, as today)
    box_noise_px: float = 2.0
    detection_score: float = 0.9
    voting_window: int = 7
    voting_min_votes: int = 3
    min_distance_m: float = 5.0  # closer (horizontally) than this counts as disturbing the animal
    vigilance_input: bool = False  # publish a vigilance value (1 while fleeing) to the policy

    def __post_init__(self):
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform={self.platform!r} must be one of {list(PLATFORMS)}")
        if not (self.dt_s > 0 and self.substeps >= 1 and 0 < self.hfov_deg < 180):
            raise ValueError("dt_s > 0, substeps >= 1 and 0 < hfov_deg < 180 are required")
        if not (0 <= self.p_adjacent and 0 <= self.p_random and self.p_adjacent + self.p_random <= 1):
            raise ValueError("p_adjacent and p_random must be >= 0 with a sum <= 1")

    @property
    def focal_px(self) -> float:
        return self.image_width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Animal:
    """Position (m), heading (deg, CCW from +x), turn rate (deg/s), walking speed (m/s along the heading)."""

    x: float = 0.0
    y: float = 0.0
    heading_deg: float = 90.0
    turn_rate_deg_s: float = 0.0
    speed_m_s: float = 0.0
    flee_at_s: float = math.inf  # from then on it runs away from the drone at flee_speed_m_s,
    flee_speed_m_s: float = 6.0  # in the direction "away" turned by flee_turn_deg (fixed at the start)
    flee_turn_deg: float = 0.0


@dataclass
class Drone:
    """Position (m), yaw (rad, CCW from +x), world velocity (m/s) and yaw rate (rad/s)."""

    x: float
    y: float
    yaw: float
    vx: float = 0.0
    vy: float = 0.0
    yaw_rate: float = 0.0


@dataclass
class Observation:
    """What the simulator knows about one frame besides the PolicyFrame (for scoring)."""

    t_s: float
    visible: bool
    true_heading_deg: float
    true_class: int
    distance_m: float  # horizontal drone-animal distance
    true_longer_side_px: float
    fleeing: bool


def drone_facing(animal: Animal, relative_heading: float, range_m: float, yaw_offset_deg: float = 0.0) -> Drone:
    """A drone `range_m` from the animal, seeing it at relative heading `relative_heading` (deg), facing it."""
    bearing = math.radians(animal.heading_deg + relative_heading)  # h = bearing(animal -> camera) - heading
    x, y = animal.x + range_m * math.cos(bearing), animal.y + range_m * math.sin(bearing)
    yaw = math.radians(bearing_deg((x, y), (animal.x, animal.y)) + yaw_offset_deg)
    return Drone(x, y, yaw)


class Simulator:
    """Step with :meth:`observe` (the frame the policy sees) then :meth:`apply` (its command for dt_s)."""

    def __init__(self, config: SimConfig, animal: Animal, drone: Drone, seed: int = 0):
        self.cfg = config
        self.animal = animal
        self.drone = drone
        self.t = 0.0
        self._rng = random.Random(seed)
        self._voter = TrackVoter(VotingConfig(window=config.voting_window, min_votes=config.voting_min_votes))
        self._views: deque[tuple[float, float]] = deque()  # (t, true h) of frames with the animal in view
        self._last_classified_t = -math.inf
        self._label: tuple[int, float, float] | None = None  # (per-frame class, its stamp, track heading estimate)
        self._headings: deque[float] = deque(maxlen=config.voting_window)  # noisy per-frame headings, deg
        self._smoothed = None
        self._flee_heading: float | None = None

    # -- geometry --------------------------------------------------------------------------------------
    def relative_heading(self) -> float:
        a, d = self.animal, self.drone
        return relative_heading_deg((a.x, a.y), a.heading_deg, (d.x, d.y))

    def distance(self) -> float:
        return math.hypot(self.animal.x - self.drone.x, self.animal.y - self.drone.y)

    def project(self) -> tuple[tuple[float, float, float, float] | None, float]:
        """(box xyxy px clipped to the image, or None when the animal is out of view; unclipped longer side)."""
        cfg, a, d = self.cfg, self.animal, self.drone
        alpha = math.radians(wrap_deg(bearing_deg((d.x, d.y), (a.x, a.y)) - math.degrees(d.yaw)))
        slant = math.hypot(self.distance(), cfg.altitude_m)
        h = math.radians(self.relative_heading())
        extent = cfg.animal_length_m * abs(math.sin(h)) + cfg.animal_width_m * abs(math.cos(h))
        w, hgt = cfg.focal_px * extent / slant, cfg.focal_px * cfg.animal_height_m / slant
        longer = max(w, hgt)
        if math.cos(alpha) <= 0:
            return None, longer
        cx = cfg.image_width / 2 - cfg.focal_px * math.tan(alpha)
        if not 0 <= cx < cfg.image_width:
            return None, longer
        cy = cfg.image_height / 2
        noise = [self._rng.gauss(0.0, cfg.box_noise_px) for _ in range(4)] if cfg.box_noise_px > 0 else [0.0] * 4
        x1, x2 = max(0.0, cx - w / 2 + noise[0]), min(cfg.image_width, cx + w / 2 + noise[2])
        y1, y2 = max(0.0, cy - hgt / 2 + noise[1]), min(cfg.image_height, cy + hgt / 2 + noise[3])
        if x2 - x1 < 1 or y2 - y1 < 1:
            return None, longer
        return (x1, y1, x2, y2), longer

    # -- viewpoint model -------------------------------------------------------------------------------
    def confuse(self, true_class: int) -> int:
        """Per-frame label of a crop whose true class is `true_class` (confusion model)."""
        u = self._rng.random()
        if u < self.cfg.p_random:
            return self._rng.randrange(NUM_CLASSES)
        if u < self.cfg.p_random + self.cfg.p_adjacent:
            step = 1 if self._rng.random() < 0.5 else -1
            return _RING[(_RING_POS[true_class] + step) % NUM_CLASSES]
        return true_class

    def _classify(self, t: float, true_h: float) -> None:
        cfg = self.cfg
        self._views.append((t, true_h))
        if t - self._last_classified_t < cfg.label_period_s - 1e-9:
            return
        target_t = t - cfg.label_latency_s
        while len(self._views) > 1 and self._views[1][0] <= target_t + 1e-9:
            self._views.popleft()
        seen_t, seen_h = self._views[0]
        if seen_t > target_t + 1e-9:
            return  # nothing old enough has been seen yet: the classifier's answer is still in flight
        self._last_classified_t = t
        label = self.confuse(class_of_heading(seen_h))
        estimate = math.nan
        if math.isfinite(cfg.heading_noise_deg):  # like track_heading_deg: circular mean over the voting window
            self._headings.append(math.radians(seen_h + self._rng.gauss(0.0, cfg.heading_noise_deg)))
            estimate = wrap_deg(
                math.degrees(
                    math.atan2(sum(math.sin(a) for a in self._headings), sum(math.cos(a) for a in self._headings))
                )
            )
        self._label = (label, seen_t, estimate)
        probs = np.zeros(NUM_CLASSES, np.float32)
        probs[label] = 1.0
        self._smoothed = self._voter.update(TRACK_ID, probs, seen_t)

    def observe(self) -> tuple[PolicyFrame, Observation]:
        """The frame at the current time, and the ground truth behind it."""
        cfg = self.cfg
        true_h = self.relative_heading()
        box, longer = self.project()
        fleeing = self.t >= self.animal.flee_at_s
        tracks = []
        if box is not None:
            self._classify(self.t, true_h)
            smoothed = self._smoothed
            name = VIEWPOINTS[smoothed.label] if smoothed is not None else ""
            label_stamp = int(round(self._label[1] * _NS)) + _NS if self._label else 0
            tracks.append(
                TrackObservation(
                    TRACK_ID,
                    box,
                    cfg.detection_score,
                    name,
                    bool(smoothed and smoothed.is_stable),
                    label_stamp_ns=label_stamp,
                    heading_deg=self._label[2] if self._label else math.nan,
                )
            )
        frame = PolicyFrame(
            stamp_ns=int(round(self.t * _NS)) + _NS,
            width=cfg.image_width,
            height=cfg.image_height,
            tracks=tracks,
            frame_id="sim_camera",
            vigilance=(1.0 if fleeing else 0.0) if cfg.vigilance_input else None,
        )
        return frame, Observation(
            self.t, box is not None, true_h, class_of_heading(true_h), self.distance(), longer, fleeing
        )

    # -- dynamics --------------------------------------------------------------------------------------
    def apply(self, yaw_rate: float, forward: float, lateral: float) -> None:
        """Integrate one frame period of the command (body frame, REP-103) with the platform limits."""
        cfg = self.cfg
        dt = cfg.dt_s / cfg.substeps
        for _ in range(cfg.substeps):
            self._move_animal(dt)
            d, a = self.drone, self.animal
            want_yaw = yaw_rate
            fwd, lat = forward, lateral
            if cfg.platform == "self-orbit":  # the yaw command is the orbit rate; the platform centres the animal
                lat = -yaw_rate * self.distance()
                alpha = math.radians(wrap_deg(bearing_deg((d.x, d.y), (a.x, a.y)) - math.degrees(d.yaw)))
                want_yaw = yaw_rate + 2.0 * alpha
            cos_y, sin_y = math.cos(d.yaw), math.sin(d.yaw)
            want_vx, want_vy = fwd * cos_y - lat * sin_y, fwd * sin_y + lat * cos_y
            speed = math.hypot(want_vx, want_vy)
            if speed > cfg.max_speed_m_s:
                want_vx, want_vy = want_vx * cfg.max_speed_m_s / speed, want_vy * cfg.max_speed_m_s / speed
            dvx, dvy = want_vx - d.vx, want_vy - d.vy
            dv = math.hypot(dvx, dvy)
            if dv > cfg.max_accel_m_s2 * dt:
                dvx, dvy = dvx * cfg.max_accel_m_s2 * dt / dv, dvy * cfg.max_accel_m_s2 * dt / dv
            d.vx, d.vy = d.vx + dvx, d.vy + dvy
            want_yaw = max(-cfg.max_yaw_rate, min(cfg.max_yaw_rate, want_yaw))
            dw = max(-cfg.max_yaw_accel * dt, min(cfg.max_yaw_accel * dt, want_yaw - d.yaw_rate))
            d.yaw_rate += dw
            d.x, d.y = d.x + d.vx * dt, d.y + d.vy * dt
            d.yaw = math.atan2(math.sin(d.yaw + d.yaw_rate * dt), math.cos(d.yaw + d.yaw_rate * dt))
            self.t += dt

    def _move_animal(self, dt: float) -> None:
        a = self.animal
        if self.t >= a.flee_at_s:  # bolt away from the drone (direction chosen once)
            if self._flee_heading is None:
                away = bearing_deg((self.drone.x, self.drone.y), (a.x, a.y))
                self._flee_heading = wrap_deg(away + a.flee_turn_deg)
            a.heading_deg, speed = self._flee_heading, a.flee_speed_m_s
        else:
            a.heading_deg = wrap_deg(a.heading_deg + a.turn_rate_deg_s * dt)
            speed = a.speed_m_s
        a.x += speed * math.cos(math.radians(a.heading_deg)) * dt
        a.y += speed * math.sin(math.radians(a.heading_deg)) * dt
