"""Which crops an inference cycle classifies: a per-track priority under a crop budget (no ROS, no clock).

An animal's viewpoint changes over seconds, so the scheduled mode does not classify every crop of every
frame: each inference cycle classifies at most ``max_crops`` tracks, chosen in this order

    0 new          never classified (tracks whose crop the classifier rejected come after untried ones)
    1 overdue      label would get older than max_age_s before the next cycle's results are published
    2 unsettled    vote not stable yet, or the last per-frame label disagrees with the vote
    3 box_changed  box area or aspect ratio changed by more than box_change since the last classification
    4 stalest      everyone else, oldest label first

Within a class the older label (for new tracks: the older failed attempt) goes first, then the larger
box, then the track id, so every choice is deterministic for the same inputs. "overdue" is what makes the
max-age promise hold when unsettled tracks alone would fill the budget: a label computed on frame s is
published from the next cycle on, so a track must be picked once its age plus two cycle intervals
(the last observed interval between cycles, in frame-stamp time) would exceed max_age_s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose_classifier_ros.stream.clock import ClockResetDetector

SCHEDULE_MODES = ("every_frame", "scheduled")
REASONS = ("new", "overdue", "unsettled", "box_changed", "stalest")


@dataclass
class ScheduleConfig:
    """mode: "every_frame" (every crop of every processed frame, as before) or "scheduled";
    max_crops: crops per inference cycle; box_change: relative area/aspect change that asks for a new
    classification; max_age_s: age, s, no visible track's label should exceed (budget permitting);
    inference_nice: niceness added to the node's inference thread (0..19; 0 = same priority as publishing)."""

    mode: str = "scheduled"
    max_crops: int = 4
    box_change: float = 0.2
    max_age_s: float = 1.0
    inference_nice: int = 5

    def __post_init__(self):
        if self.mode not in SCHEDULE_MODES:
            raise ValueError(f"schedule.mode must be one of {', '.join(SCHEDULE_MODES)}, got {self.mode!r}")
        if int(self.max_crops) != self.max_crops or self.max_crops < 1:
            raise ValueError(f"schedule.max_crops must be an integer >= 1, got {self.max_crops!r}")
        if not (self.box_change > 0 and np.isfinite(self.box_change)):
            raise ValueError(f"schedule.box_change must be > 0, got {self.box_change!r}")
        if not (self.max_age_s > 0 and np.isfinite(self.max_age_s)):
            raise ValueError(f"schedule.max_age_s must be > 0 s, got {self.max_age_s!r}")
        if int(self.inference_nice) != self.inference_nice or not 0 <= self.inference_nice <= 19:
            raise ValueError(f"schedule.inference_nice must be an integer in 0..19, got {self.inference_nice!r}")
        self.max_crops, self.box_change, self.max_age_s = (
            int(self.max_crops),
            float(self.box_change),
            float(self.max_age_s),
        )
        self.inference_nice = int(self.inference_nice)


@dataclass(frozen=True)
class Candidate:
    """A visible track the cycle may classify. area: box area, px^2; label_stamp_ns: frame of its latest
    classification (None: never); attempted_ns: last rejected attempt of a never-classified track;
    unsettled: vote not stable or last label != vote; box_change: relative change since classification."""

    track_id: str
    area: float
    label_stamp_ns: int | None = None
    attempted_ns: int | None = None
    unsettled: bool = False
    box_change: float = 0.0


@dataclass(frozen=True)
class Choice:
    track_id: str
    reason: str


class CropScheduler:
    """Picks the crops of each inference cycle. select() is a pure function of its inputs and of the
    stamps of earlier select() calls (the cycle interval), so replays are deterministic."""

    def __init__(self, config: ScheduleConfig | None = None):
        self.config = config or ScheduleConfig()
        self._clock = ClockResetDetector()  # newest cycle stamp; a reset drops the interval estimate
        self.cycle_interval_ns = 0

    def reset(self) -> None:
        self._clock.reset()
        self.cycle_interval_ns = 0

    def priority(self, c: Candidate, now_ns: int) -> int:
        """Index into REASONS of a candidate at now_ns (frame stamp of the cycle)."""
        if c.label_stamp_ns is None:
            return 0
        age_ns = int(now_ns) - c.label_stamp_ns
        if age_ns + 2 * self.cycle_interval_ns >= self.config.max_age_s * 1e9:
            return 1
        if c.unsettled:
            return 2
        if c.box_change > self.config.box_change:
            return 3
        return 4

    def _key(self, c: Candidate, now_ns: int) -> tuple:
        tier = self.priority(c, now_ns)
        if tier == 0:
            older = (0, 0) if c.attempted_ns is None else (1, c.attempted_ns)
            return (tier, *older, -c.area, c.track_id)
        return (tier, 0, c.label_stamp_ns, -c.area, c.track_id)

    def select(self, candidates: list[Candidate], now_ns: int, max_crops: int | None = None) -> list[Choice]:
        """At most max_crops (default config.max_crops) choices, highest priority first.

        now_ns: stamp of the frame the cycle classifies; it also updates the cycle interval estimate.
        """
        now_ns = int(now_ns)
        previous = self._clock.newest_ns
        if self._clock.update(now_ns):
            self.cycle_interval_ns = 0  # the clock was reset (bag loop): no estimate yet
        elif previous is not None and now_ns > previous:
            self.cycle_interval_ns = now_ns - previous  # (an older, reordered frame keeps the estimate)
        budget = self.config.max_crops if max_crops is None else max(0, int(max_crops))
        ranked = sorted(candidates, key=lambda c: self._key(c, now_ns))[:budget]
        return [Choice(c.track_id, REASONS[self.priority(c, now_ns)]) for c in ranked]


class CropBudget:
    """Simulated compute budget for replay: crops_per_second over frame-stamp time, unused budget carried
    forward (capped at `cap` crops, so a long empty stretch does not buy a burst). The first frame finds the
    budget full (the node was idle before it). take(stamp_ns) -> whole crops this frame may use; spend(n)
    takes what was used from the pool."""

    def __init__(self, crops_per_second: float, cap: float):
        if not (crops_per_second > 0 and np.isfinite(crops_per_second)):
            raise ValueError(f"crops per second must be > 0, got {crops_per_second!r}")
        self.rate = float(crops_per_second)
        self.cap = max(float(cap), 1.0)
        self._credit = self.cap
        self._clock = ClockResetDetector()  # newest frame stamp

    def take(self, stamp_ns: int) -> int:
        """Add the budget of the interval since the newest frame; whole crops available now."""
        stamp_ns = int(stamp_ns)
        previous = self._clock.newest_ns
        if self._clock.update(stamp_ns) or previous is None or stamp_ns < previous:
            self._credit = min(self._credit, self.cap)  # first frame, clock reset or reordered frame: no interval
        else:
            self._credit = min(self._credit + self.rate * (stamp_ns - previous) * 1e-9, self.cap)
        return int(np.floor(self._credit + 1e-6))  # stamps are whole ns: 1/30 s is 33333333 ns

    def spend(self, crops: int) -> None:
        self._credit = max(0.0, self._credit - int(crops))


__all__ = ["SCHEDULE_MODES", "REASONS", "ScheduleConfig", "Candidate", "Choice", "CropScheduler", "CropBudget"]
