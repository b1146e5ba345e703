"""Per-track temporal smoothing of viewpoint predictions, and IoU association for untracked detections.

A single frame's viewpoint can flicker (a leg hides the head, motion blur); voting over the last
few frames of the same track gives a stable label. The window counts predictions (`window`) and may also
be bounded in time (`window_s`), so that a track classified a few times a second (scheduled mode) is voted
over the same span of the animal's motion as one classified every frame. Stamps are float seconds (the frame stamps, so
bag replay and sim time behave like live time). Memory is bounded whatever the number of tracks.

Trust gating: a prediction on a box cut by the frame edge (`truncated`, with skip_truncated) or whose top
probability is below min_confidence does not vote. Hysteresis: once a track is stable, its voted label
changes only after a new label has won switch_votes consecutive votes. The track heading is the circular
mean of the class headings weighted by the summed probabilities of the voted window (labels.heading_from_probs).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pose_classifier_ros.labels import heading_from_probs, label_name
from pose_classifier_ros.stream.clock import ClockResetDetector

VOTING_MODES = ("majority", "mean")


@dataclass
class VotingConfig:
    """Temporal voting per track.

    window: per-frame predictions kept per track; min_votes: votes needed for is_stable;
    mode: "majority" (vote on per-frame argmax) or "mean" (average the probability vectors);
    window_s: when > 0, votes older than this many seconds before the track's newest vote leave the window
    (the newest always stays; 0 = count only); track_timeout_s: a track not seen for longer is forgotten; max_tracks: memory bound (the
    least recently seen track is evicted beyond it); switch_votes: consecutive votes a new label must
    win before a stable track's label changes (1 = no hysteresis); min_confidence: per-frame predictions
    whose top probability is below this do not vote (0 = all vote); skip_truncated: predictions on boxes
    cut by the frame edge do not vote.
    """

    window: int = 7
    min_votes: int = 3
    mode: str = "majority"
    window_s: float = 0.0
    track_timeout_s: float = 2.0
    max_tracks: int = 512
    switch_votes: int = 1
    min_confidence: float = 0.0
    skip_truncated: bool = True

    def __post_init__(self):
        if int(self.window) != self.window or self.window < 1:
            raise ValueError(f"voting.window must be an integer >= 1, got {self.window!r}")
        if int(self.min_votes) != self.min_votes or not 1 <= self.min_votes <= self.window:
            raise ValueError(f"voting.min_votes must be in 1..window ({self.window}), got {self.min_votes!r}")
        if self.mode not in VOTING_MODES:
            raise ValueError(f"voting.mode must be one of {', '.join(VOTING_MODES)}, got {self.mode!r}")
        if not (self.window_s >= 0 and np.isfinite(self.window_s)):
            raise ValueError(f"voting.window_s must be >= 0 s (0 = off), got {self.window_s!r}")
        if not (self.track_timeout_s > 0 and np.isfinite(self.track_timeout_s)):
            raise ValueError(f"voting.track_timeout_s must be > 0 s, got {self.track_timeout_s!r}")
        if int(self.max_tracks) != self.max_tracks or self.max_tracks < 1:
            raise ValueError(f"voting.max_tracks must be an integer >= 1, got {self.max_tracks!r}")
        if int(self.switch_votes) != self.switch_votes or not 1 <= self.switch_votes <= self.window:
            raise ValueError(f"voting.switch_votes must be in 1..window ({self.window}), got {self.switch_votes!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"voting.min_confidence must be in [0, 1], got {self.min_confidence!r}")
        self.window, self.min_votes, self.max_tracks = int(self.window), int(self.min_votes), int(self.max_tracks)
        self.switch_votes, self.min_confidence = int(self.switch_votes), float(self.min_confidence)
        self.track_timeout_s, self.skip_truncated = float(self.track_timeout_s), bool(self.skip_truncated)
        self.window_s = float(self.window_s)


@dataclass(frozen=True)
class SmoothedLabel:
    """Voted label of a track: class index, confidence 0..1, votes behind it (<= window), stable flag.

    voted: whether the prediction just passed to update() joined the vote (False: truncated or below
    min_confidence). heading_deg / heading_spread_deg: the track heading over the voted window, degrees in
    [-180, 180) (labels.heading_from_probs convention), NaN before the first vote. A track without votes
    reports the frame's own argmax with num_votes 0 and confidence 0. The extra fields do not take part in
    ==, so comparisons written against (label, confidence, num_votes, is_stable) keep working.
    """

    label: int
    confidence: float
    num_votes: int
    is_stable: bool
    voted: bool = field(default=True, compare=False)
    heading_deg: float = field(default=float("nan"), compare=False)
    heading_spread_deg: float = field(default=float("nan"), compare=False)

    @property
    def name(self) -> str:
        return label_name(self.label)


class _Track:
    __slots__ = ("probs", "vote_stamps", "last_seen", "shown", "challenger", "challenger_wins")

    def __init__(self, window: int, stamp_s: float):
        self.probs: deque = deque(maxlen=window)
        self.vote_stamps: deque = deque(maxlen=window)  # s, one per entry of probs
        self.last_seen = stamp_s
        self.shown: int | None = None  # label published once stable (hysteresis state)
        self.challenger: int | None = None
        self.challenger_wins = 0


def smooth(probs: np.ndarray, mode: str, min_votes: int) -> SmoothedLabel:
    """Vote over a (T, C) array of per-frame probabilities (T >= 1)."""
    num = probs.shape[0]
    mean = probs.mean(axis=0)
    if mode == "mean":
        label = int(np.argmax(mean))
        return SmoothedLabel(label, float(mean[label]), num, num >= min_votes)
    counts = np.bincount(np.argmax(probs, axis=1), minlength=probs.shape[1])
    tied = np.flatnonzero(counts == counts.max())
    # Ties (e.g. 3 "left" and 3 "front-left" in a window of 6) go to the class the model
    # believed in more on average, not to the lower class index.
    label = int(tied[np.argmax(mean[tied])]) if tied.size > 1 else int(tied[0])
    return SmoothedLabel(label, float(counts[label]) / num, num, num >= min_votes)


def label_confidence(probs: np.ndarray, mode: str, label: int) -> float:
    """Support of `label` in a (T, C) window: its vote share (majority) or mean probability (mean)."""
    if mode == "mean":
        return float(probs[:, label].mean())
    return float(np.mean(np.argmax(probs, axis=1) == label))


def _hold(track: _Track, raw: SmoothedLabel, switch_votes: int) -> int:
    """The label to publish after a new vote `raw`: hysteresis once the track is stable."""
    if not raw.is_stable or track.shown is None:
        track.shown = raw.label if raw.is_stable else None
        track.challenger, track.challenger_wins = None, 0
        return raw.label
    if raw.label == track.shown:
        track.challenger, track.challenger_wins = None, 0
        return raw.label
    if raw.label != track.challenger:
        track.challenger, track.challenger_wins = raw.label, 0
    track.challenger_wins += 1
    if track.challenger_wins >= switch_votes:
        track.shown, track.challenger, track.challenger_wins = raw.label, None, 0
    return track.shown


def _drop_old_votes(track: _Track, window_s: float) -> None:
    """Drop votes older than window_s before the track's newest vote stamp (the newest always stays)."""
    newest = max(track.vote_stamps)
    while len(track.probs) > 1 and newest - track.vote_stamps[0] > window_s:
        track.probs.popleft()
        track.vote_stamps.popleft()


class TrackVoter:
    """Majority (or mean) vote over the last `window` per-frame predictions of each track (and, with
    window_s, only those of the last window_s seconds)."""

    def __init__(self, cfg: VotingConfig | None = None):
        self.cfg = cfg or VotingConfig()
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # least recently seen first
        # Stamps going back past the clock-reset threshold (bag loop, sim restart): start afresh instead of
        # keeping tracks "seen in the future". Whoever owns the voter (the track pipeline) reports resets.
        self._clock = ClockResetDetector()

    @property
    def resets(self) -> int:
        """Clock resets seen (each forgot every track)."""
        return self._clock.resets

    def __len__(self) -> int:
        return len(self._tracks)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._tracks

    @property
    def track_ids(self) -> list[str]:
        return list(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()
        self._clock.reset()

    def _check_clock(self, stamp_s: float) -> bool:
        """Track the newest stamp; forget every track (and return True) when the clock was reset."""
        if self._clock.update_s(stamp_s):
            self._tracks.clear()
            return True
        return False

    def should_vote(self, probs, truncated: bool = False) -> bool:
        """Whether a per-frame prediction (probs: (C,)) may vote: not truncated (with skip_truncated) and
        its top probability at least min_confidence."""
        if truncated and self.cfg.skip_truncated:
            return False
        return float(np.max(probs)) >= self.cfg.min_confidence

    def update(
        self, track_id: str, probs, stamp_s: float, *, truncated: bool = False, vote: bool | None = None
    ) -> SmoothedLabel:
        """Add one per-frame prediction (probs: (C,) probabilities) and return the track's vote.

        truncated: the box is cut by the frame edge. vote: force (True/False) whether the prediction
        votes; None decides with should_vote(probs, truncated). A prediction that does not vote still
        keeps the track alive. The returned label's `voted` says what happened.
        """
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if probs.size == 0 or not np.all(np.isfinite(probs)):
            raise ValueError(f"track {track_id!r}: probabilities must be finite, got {probs}")
        stamp_s = float(stamp_s)
        voted = self.should_vote(probs, truncated) if vote is None else bool(vote)
        self._check_clock(stamp_s)
        track = self._tracks.get(track_id)
        if track is not None and track.probs and track.probs[0].shape != probs.shape:
            track = None  # class count changed (new model): old votes are meaningless
        if track is None:
            track = _Track(self.cfg.window, stamp_s)
            self._tracks[track_id] = track
            while len(self._tracks) > self.cfg.max_tracks:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(track_id)
        track.last_seen = max(track.last_seen, stamp_s)
        if not voted:
            current = self._current(track)
            if current is None:  # no votes yet: this frame's label, flagged by num_votes 0
                return SmoothedLabel(int(np.argmax(probs)), 0.0, 0, False, voted=False)
            return replace(current, voted=False)
        track.probs.append(probs)
        track.vote_stamps.append(stamp_s)
        if self.cfg.window_s > 0:
            _drop_old_votes(track, self.cfg.window_s)
        window = np.stack(track.probs)
        raw = smooth(window, self.cfg.mode, self.cfg.min_votes)
        shown = _hold(track, raw, self.cfg.switch_votes)
        return self._result(window, raw, shown, voted=True)

    def _result(self, window: np.ndarray, raw: SmoothedLabel, shown: int, voted: bool) -> SmoothedLabel:
        heading, spread = heading_from_probs(window.sum(axis=0))
        confidence = raw.confidence if shown == raw.label else label_confidence(window, self.cfg.mode, shown)
        return SmoothedLabel(
            shown,
            confidence,
            raw.num_votes,
            raw.is_stable,
            voted=voted,
            heading_deg=float(heading),
            heading_spread_deg=float(spread),
        )

    def _current(self, track: _Track) -> SmoothedLabel | None:
        if not track.probs:
            return None
        window = np.stack(track.probs)
        raw = smooth(window, self.cfg.mode, self.cfg.min_votes)
        shown = track.shown if (raw.is_stable and track.shown is not None) else raw.label
        return self._result(window, raw, shown, voted=True)

    def get(self, track_id: str) -> SmoothedLabel | None:
        """Current vote of a track without adding a prediction, None if unknown or without votes."""
        track = self._tracks.get(track_id)
        return None if track is None else self._current(track)

    def discard(self, track_id: str) -> None:
        """Forget one track now (its owner, e.g. the scheduled pipeline, expires tracks itself)."""
        self._tracks.pop(track_id, None)

    def expire(self, now_s: float) -> list[str]:
        """Forget tracks not seen for more than track_timeout_s before now_s; returns their ids."""
        now_s = float(now_s)
        removed = list(self._tracks)
        if self._check_clock(now_s):  # the clock was reset: every track is gone
            return removed
        removed = [tid for tid, t in self._tracks.items() if now_s - t.last_seen > self.cfg.track_timeout_s]
        for tid in removed:
            del self._tracks[tid]
        return removed


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between (N, 4) and (M, 4) xyxy boxes -> (N, M) float32."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0).astype(np.float32)


class IouTracker:
    """Gives detections without a tracker id a stable id "iou-<n>" by overlap with the previous frame.

    Greedy: the highest-IoU (detection, live track) pairs are matched first, at most one detection per
    track, IoU >= iou_threshold. Unmatched detections start new tracks. Tracks unseen for more than
    timeout_s are dropped; at most max_tracks are kept (least recently seen evicted).
    """

    def __init__(self, iou_threshold: float = 0.3, timeout_s: float = 2.0, max_tracks: int = 1024):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if not timeout_s > 0:
            raise ValueError(f"IoU tracker timeout_s must be > 0, got {timeout_s!r}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks!r}")
        self.iou_threshold = float(iou_threshold)
        self.timeout_s = float(timeout_s)
        self.max_tracks = int(max_tracks)
        self._boxes: OrderedDict[str, np.ndarray] = OrderedDict()  # least recently seen first
        self._last_seen: dict[str, float] = {}
        self._next_id = 1
        self._clock = ClockResetDetector()

    def __len__(self) -> int:
        return len(self._boxes)

    def reset(self) -> None:
        # Ids keep counting so that a reset never hands an old id (and its votes) to a new animal.
        self._boxes.clear()
        self._last_seen.clear()
        self._clock.reset()

    def _new_id(self) -> str:
        tid = f"iou-{self._next_id}"
        self._next_id += 1
        return tid

    def assign(self, boxes, stamp_s: float) -> list[str]:
        """Track ids for (N, 4) xyxy boxes seen at stamp_s (float seconds), in input order."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        stamp_s = float(stamp_s)
        if self._clock.update_s(stamp_s):  # clock reset: old boxes mean nothing now
            self._boxes.clear()
            self._last_seen.clear()
        for tid in [t for t, seen in self._last_seen.items() if stamp_s - seen > self.timeout_s]:
            del self._boxes[tid], self._last_seen[tid]

        ids: list[str | None] = [None] * len(boxes)
        finite = np.all(np.isfinite(boxes), axis=1)
        if self._boxes and len(boxes):
            track_ids = list(self._boxes)
            iou = iou_matrix(boxes, np.stack([self._boxes[t] for t in track_ids]))
            iou[~finite] = 0.0
            det_idx, trk_idx = np.nonzero(iou >= self.iou_threshold)
            order = np.argsort(-iou[det_idx, trk_idx], kind="stable")
            used_tracks: set[int] = set()
            for k in order:
                d, t = int(det_idx[k]), int(trk_idx[k])
                if ids[d] is None and t not in used_tracks:
                    ids[d] = track_ids[t]
                    used_tracks.add(t)
        for d in range(len(boxes)):
            if ids[d] is None:
                ids[d] = self._new_id()
            if finite[d]:
                self._boxes[ids[d]] = boxes[d].copy()
                self._boxes.move_to_end(ids[d])
                self._last_seen[ids[d]] = stamp_s
        while len(self._boxes) > self.max_tracks:
            tid, _ = self._boxes.popitem(last=False)
            del self._last_seen[tid]
        return ids  # type: ignore[return-value]


__all__: Sequence[str] = (
    "VotingConfig",
    "SmoothedLabel",
    "TrackVoter",
    "IouTracker",
    "iou_matrix",
    "label_confidence",
    "smooth",
)
