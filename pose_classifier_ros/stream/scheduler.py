"""Which crops an inference cycle classifies: a per-track priority under a crop budget (no ROS, no clock).

An animal's viewpoint changes over seconds, so the scheduled mode does not classify every crop of every
frame. Each inference cycle has a budget of ``max_crops`` crops and is filled in three parts:

1. **focus**: up to ``ceil(focus_share * max_crops)`` (at least one) visible *focused* tracks (the navigation
   policy's target, stream/focus.py), every cycle, so the target's label stays fresh whatever the herd
   size. No focused track visible (no policy, an unknown id, a stale focus): the part is empty and the
   budget goes to the others, exactly as without focus. ``focus_share`` 0 turns focus off. A cycle
   smaller than max_crops (replay's simulated budget) gets the same share of its crops over time.
2. **new**: every track never tried before, even past the budget (at most ``max_new_crops`` of them per
   cycle, the rest in the next cycle), so a track gets its first label in the first cycle that sees it.
3. **the rest of the budget** (``max_crops`` minus parts 1 and 2, if any is left), by priority:

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
REASONS = ("new", "overdue", "unsettled", "box_changed", "stalest")  # priority tiers, index = priority()
FOCUS = "focus"  # Choice.reason of a crop from the cycle's focus share


@dataclass
class ScheduleConfig:
    """mode: "every_frame" (every crop of every processed frame, as before) or "scheduled";
    max_crops: crops per inference cycle; box_change: relative area/aspect change that asks for a new
    classification; max_age_s: age, s, no visible track's label should exceed (budget permitting);
    inference_nice: niceness added to the node's inference thread (0..19; 0 = same priority as publishing);
    focus_share: fraction of a cycle's budget reserved for focused tracks (rounded up, at least one crop
    while a focused track is visible; 0 = focus off); focus_timeout_s: a focus whose frame stamp is further
    than this from the classified frame's stamp is stale and ignored, s; max_new_crops: never-tried tracks
    one cycle classifies at most, past max_crops if need be (0: new tracks only within max_crops)."""

    mode: str = "scheduled"
    max_crops: int = 4
    box_change: float = 0.2
    max_age_s: float = 1.0
    inference_nice: int = 5
    focus_share: float = 0.25
    focus_timeout_s: float = 1.0
    max_new_crops: int = 32

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
        if not (0.0 <= self.focus_share <= 1.0):
            raise ValueError(f"schedule.focus_share must be in [0, 1], got {self.focus_share!r}")
        if not (self.focus_timeout_s > 0 and np.isfinite(self.focus_timeout_s)):
            raise ValueError(f"schedule.focus_timeout_s must be > 0 s, got {self.focus_timeout_s!r}")
        if int(self.max_new_crops) != self.max_new_crops or self.max_new_crops < 0:
            raise ValueError(f"schedule.max_new_crops must be an integer >= 0, got {self.max_new_crops!r}")
        self.focus_share, self.focus_timeout_s = float(self.focus_share), float(self.focus_timeout_s)
        self.max_new_crops = int(self.max_new_crops)

    def focus_crops(self) -> int:
        """Crops of a max_crops cycle reserved for focused tracks: ceil(focus_share * max_crops), at least one
        (0 when focus_share is 0)."""
        if self.focus_share <= 0.0:
            return 0
        return min(self.max_crops, max(1, int(np.ceil(self.focus_share * self.max_crops - 1e-9))))


@dataclass(frozen=True)
class Candidate:
    """A visible track the cycle may classify. area: box area, px^2; label_stamp_ns: frame of its latest
    classification (None: never); attempted_ns: last rejected attempt of a never-classified track;
    unsettled: vote not stable or last label != vote; box_change: relative change since classification;
    focused: the track is in the consumer's focus (the navigation policy's target)."""

    track_id: str
    area: float
    label_stamp_ns: int | None = None
    attempted_ns: int | None = None
    unsettled: bool = False
    box_change: float = 0.0
    focused: bool = False

    @property
    def untried(self) -> bool:
        """Never classified and never tried (a track the cycle sees for the first time)."""
        return self.label_stamp_ns is None and self.attempted_ns is None


@dataclass(frozen=True)
class Choice:
    track_id: str
    reason: str


def crop_counts(choices) -> dict[str, int]:
    """What the node's diagnostics and replay's schedule report count of a cycle's choices: crops_focus
    (from the focus share) and crops_new (a track's first label)."""
    reasons = [c.reason for c in choices]
    return {"crops_focus": reasons.count(FOCUS), "crops_new": reasons.count(REASONS[0])}


class CropScheduler:
    """Picks the crops of each inference cycle. select() is a pure function of its inputs and of the
    stamps of earlier select() calls (the cycle interval), so replays are deterministic."""

    def __init__(self, config: ScheduleConfig | None = None):
        self.config = config or ScheduleConfig()
        self._clock = ClockResetDetector()  # newest cycle stamp; a reset drops the interval estimate
        self.cycle_interval_ns = 0
        self._focus_credit = float(self.config.focus_crops())  # focus crops owed to cycles smaller than max_crops

    def reset(self) -> None:
        self._clock.reset()
        self.cycle_interval_ns = 0
        self._focus_credit = float(self.config.focus_crops())

    def _focus_quota(self, budget: int, focused: bool) -> int:
        """Focus crops of a cycle of `budget` crops. A full cycle (budget >= max_crops, the node's) reserves
        focus_crops(); a smaller one (replay's simulated budget, often one crop per frame) the same share of
        its crops, carried from cycle to cycle (so one crop in every max_crops / focus_crops() at the default
        settings, not every crop), the first at once."""
        per_cycle = self.config.focus_crops()
        if not focused or per_cycle == 0:
            self._focus_credit = float(per_cycle)  # nothing banked while there is no focus
            return 0
        if budget >= self.config.max_crops:
            self._focus_credit = float(per_cycle)
            return per_cycle
        self._focus_credit = min(self._focus_credit + per_cycle * budget / self.config.max_crops, float(per_cycle))
        quota = min(budget, int(np.floor(self._focus_credit + 1e-9)))
        self._focus_credit -= quota
        return quota

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
        """This cycle's choices: the focus share, then the new tracks, then the rest of the budget by priority
        (see the module docstring). max_crops: the cycle's budget (default config.max_crops; 0: no cycle,
        nothing is chosen); the focus share and the new tracks may together exceed it.

        now_ns: stamp of the frame the cycle classifies; it also updates the cycle interval estimate.
        """
        now_ns = int(now_ns)
        previous = self._clock.newest_ns
        if self._clock.update(now_ns):
            self.cycle_interval_ns = 0  # the clock was reset (bag loop): no estimate yet
        elif previous is not None and now_ns > previous:
            self.cycle_interval_ns = now_ns - previous  # (an older, reordered frame keeps the estimate)
        budget = self.config.max_crops if max_crops is None else max(0, int(max_crops))
        if budget == 0:
            return []
        ranked = sorted(candidates, key=lambda c: self._key(c, now_ns))
        focused = [c for c in ranked if c.focused]
        focus = focused[: self._focus_quota(budget, bool(focused))]
        chosen = {c.track_id for c in focus}
        untried = [c for c in ranked if c.untried and c.track_id not in chosen]
        new = untried[: max(self.config.max_new_crops, budget - len(focus))]
        chosen.update(c.track_id for c in new)
        rest = [c for c in ranked if c.track_id not in chosen][: max(0, budget - len(focus) - len(new))]
        return [Choice(c.track_id, FOCUS) for c in focus] + [
            Choice(c.track_id, REASONS[self.priority(c, now_ns)]) for c in new + rest
        ]


class CropBudget:
    """Simulated compute budget for replay: crops_per_second over frame-stamp time, unused budget carried
    forward (capped at `cap` crops, so a long empty stretch does not buy a burst). The first frame finds the
    budget full (the node was idle before it). take(stamp_ns) -> whole crops this frame may use; spend(n)
    takes what was used from the pool: a cycle that used more (new tracks past max_crops) leaves a debt
    that the following frames pay off first, as the live node's longer cycle would."""

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
        return max(0, int(np.floor(self._credit + 1e-6)))  # stamps are whole ns: 1/30 s is 33333333 ns

    def spend(self, crops: int) -> None:
        self._credit -= int(crops)


__all__ = [
    "SCHEDULE_MODES",
    "REASONS",
    "FOCUS",
    "ScheduleConfig",
    "Candidate",
    "Choice",
    "CropScheduler",
    "CropBudget",
    "crop_counts",
]
