"""Per-track temporal smoothing of viewpoint predictions, and IoU association for untracked detections.

A single frame's viewpoint can flicker (a leg hides the head, motion blur); voting over the last
few frames of the same track gives a stable label. Stamps are float seconds (the frame stamps, so
bag replay and sim time behave like live time). Memory is bounded whatever the number of tracks.
"""
from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS

_logger = logging.getLogger(__name__)

VOTING_MODES = ("majority", "mean")

# Stamps that go back by more than this mean the clock was reset (bag loop, sim restart), not
# that two frames were reordered: start afresh instead of keeping tracks "seen in the future".
BACKWARD_JUMP_S = 0.5


@dataclass
class VotingConfig:
    """Temporal voting per track.

    window: per-frame predictions kept per track; min_votes: votes needed for is_stable;
    mode: "majority" (vote on per-frame argmax) or "mean" (average the probability vectors);
    track_timeout_s: a track not seen for longer is forgotten; max_tracks: memory bound (the
    least recently seen track is evicted beyond it).
    """

    window: int = 7
    min_votes: int = 3
    mode: str = "majority"
    track_timeout_s: float = 2.0
    max_tracks: int = 512

    def __post_init__(self):
        if int(self.window) != self.window or self.window < 1:
            raise ValueError(f"voting.window must be an integer >= 1, got {self.window!r}")
        if int(self.min_votes) != self.min_votes or not 1 <= self.min_votes <= self.window:
            raise ValueError(f"voting.min_votes must be in 1..window ({self.window}), got {self.min_votes!r}")
        if self.mode not in VOTING_MODES:
            raise ValueError(f"voting.mode must be one of {', '.join(VOTING_MODES)}, got {self.mode!r}")
        if not (self.track_timeout_s > 0 and np.isfinite(self.track_timeout_s)):
            raise ValueError(f"voting.track_timeout_s must be > 0 s, got {self.track_timeout_s!r}")
        if int(self.max_tracks) != self.max_tracks or self.max_tracks < 1:
            raise ValueError(f"voting.max_tracks must be an integer >= 1, got {self.max_tracks!r}")
        self.window, self.min_votes, self.max_tracks = int(self.window), int(self.min_votes), int(self.max_tracks)
        self.track_timeout_s = float(self.track_timeout_s)


@dataclass(frozen=True)
class SmoothedLabel:
    """Voted label of a track: class index, confidence 0..1, votes behind it (<= window), stable flag."""

    label: int
    confidence: float
    num_votes: int
    is_stable: bool

    @property
    def name(self) -> str:
        return VIEWPOINTS[self.label] if 0 <= self.label < len(VIEWPOINTS) else str(self.label)


class _Track:
    __slots__ = ("probs", "last_seen")

    def __init__(self, window: int, stamp_s: float):
        self.probs: deque = deque(maxlen=window)
        self.last_seen = stamp_s


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


class TrackVoter:
    """Majority (or mean) vote over the last `window` per-frame predictions of each track."""

    def __init__(self, cfg: VotingConfig | None = None):
        self.cfg = cfg or VotingConfig()
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # least recently seen first
        self._latest_s: float | None = None
        self.resets = 0

    def __len__(self) -> int:
        return len(self._tracks)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._tracks

    @property
    def track_ids(self) -> list[str]:
        return list(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()
        self._latest_s = None

    def _check_clock(self, stamp_s: float) -> bool:
        """Track the newest stamp; reset (and return True) when time jumped back."""
        if self._latest_s is not None and stamp_s < self._latest_s - BACKWARD_JUMP_S:
            _logger.info("time went back %.3f s (bag loop or clock reset): forgetting %d track(s)",
                         self._latest_s - stamp_s, len(self._tracks))
            self._tracks.clear()
            self._latest_s = stamp_s
            self.resets += 1
            return True
        self._latest_s = stamp_s if self._latest_s is None else max(self._latest_s, stamp_s)
        return False

    def update(self, track_id: str, probs, stamp_s: float) -> SmoothedLabel:
        """Add one per-frame prediction (probs: (C,) probabilities) and return the track's vote."""
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if probs.size == 0 or not np.all(np.isfinite(probs)):
            raise ValueError(f"track {track_id!r}: probabilities must be finite, got {probs}")
        stamp_s = float(stamp_s)
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
        track.probs.append(probs)
        track.last_seen = max(track.last_seen, stamp_s)
        return smooth(np.stack(track.probs), self.cfg.mode, self.cfg.min_votes)

    def get(self, track_id: str) -> SmoothedLabel | None:
        """Current vote of a track without adding a prediction, None if unknown."""
        track = self._tracks.get(track_id)
        if track is None or not track.probs:
            return None
        return smooth(np.stack(track.probs), self.cfg.mode, self.cfg.min_votes)

    def expire(self, now_s: float) -> list[str]:
        """Forget tracks not seen for more than track_timeout_s before now_s; returns their ids."""
        now_s = float(now_s)
        if self._latest_s is not None and now_s < self._latest_s - BACKWARD_JUMP_S:
            removed = list(self._tracks)
            self._check_clock(now_s)
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
        self._latest_s: float | None = None

    def __len__(self) -> int:
        return len(self._boxes)

    def reset(self) -> None:
        # Ids keep counting so that a reset never hands an old id (and its votes) to a new animal.
        self._boxes.clear()
        self._last_seen.clear()
        self._latest_s = None

    def _new_id(self) -> str:
        tid = f"iou-{self._next_id}"
        self._next_id += 1
        return tid

    def assign(self, boxes, stamp_s: float) -> list[str]:
        """Track ids for (N, 4) xyxy boxes seen at stamp_s (float seconds), in input order."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        stamp_s = float(stamp_s)
        if self._latest_s is not None and stamp_s < self._latest_s - BACKWARD_JUMP_S:
            self.reset()
        self._latest_s = stamp_s if self._latest_s is None else max(self._latest_s, stamp_s)
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


__all__: Sequence[str] = ("VotingConfig", "SmoothedLabel", "TrackVoter", "IouTracker", "iou_matrix", "smooth")
