"""Per-track state of the track pipeline: where each track is now and what it was last classified as.

observe() updates boxes every frame (cheap); classify() stores each fresh
classification (probabilities, the stamp of the frame it was computed on, the box it saw). Messages
are built from this state, so a track seen but not classified yet has no label (UNKNOWN), never a
made-up one. Stamps are int nanoseconds (frame stamps). Not thread-safe: TrackPipeline locks it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_classifier_ros.labels import heading_from_probs


@dataclass
class TrackState:
    """One track. box: (4,) float32 xyxy px of its latest detection; last_seen_ns: that frame's stamp;
    first_seen_ns: the frame that started it. probs: (C,) float32 of its latest classification, None before
    the first; label_stamp_ns: the stamp of the frame that classification was computed on; classified_box:
    the box it saw; classifications: fresh classifications so far; attempted_ns: stamp of the last frame a
    classification was tried on (even one the classifier rejected); voted: whether the latest
    classification was counted as a vote; vote: the track's SmoothedLabel after it (cached so that
    publishing every frame does not re-vote); heading_deg / heading_spread_deg: of `probs`."""

    track_id: str
    box: np.ndarray
    last_seen_ns: int
    first_seen_ns: int
    probs: np.ndarray | None = None
    label_stamp_ns: int | None = None
    classified_box: np.ndarray | None = None
    classifications: int = 0
    attempted_ns: int | None = None
    voted: bool = False
    vote: Any = None
    heading_deg: float | None = None
    heading_spread_deg: float | None = None

    @property
    def classified(self) -> bool:
        return self.probs is not None

    @property
    def label(self) -> int | None:
        """Argmax of the latest classification, None before the first."""
        return None if self.probs is None else int(np.argmax(self.probs))

    def label_age_s(self, now_ns: int) -> float:
        """Seconds from the frame of the latest classification to now_ns; inf before the first."""
        return np.inf if self.label_stamp_ns is None else (int(now_ns) - self.label_stamp_ns) * 1e-9


def box_change(old: np.ndarray, new: np.ndarray) -> float:
    """Largest relative change of area or aspect ratio (w / h) between two xyxy boxes (0 = same shape)."""
    (ow, oh), (nw, nh) = np.maximum(old[2:] - old[:2], 1e-6), np.maximum(new[2:] - new[:2], 1e-6)
    area = abs(float(nw * nh) / float(ow * oh) - 1.0)
    aspect = abs(float(nw / nh) / float(ow / oh) - 1.0)
    return max(area, aspect)


class TrackTable:
    """Tracks by id, least recently seen first; forgets tracks unseen for timeout_s and beyond max_tracks."""

    def __init__(self, timeout_s: float = 2.0, max_tracks: int = 512):
        self.timeout_ns = int(round(float(timeout_s) * 1e9))
        self.max_tracks = int(max_tracks)
        self._tracks: OrderedDict[str, TrackState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tracks)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._tracks

    def get(self, track_id: str) -> TrackState | None:
        return self._tracks.get(track_id)

    def tracks(self) -> list[TrackState]:
        return list(self._tracks.values())

    def reset(self) -> None:
        self._tracks.clear()

    def see(self, track_id: str, box: np.ndarray, stamp_ns: int) -> tuple[TrackState, bool]:
        """Record a detection of track_id at stamp_ns; returns (state, whether the track is new)."""
        state = self._tracks.get(track_id)
        new = state is None
        if new:
            state = TrackState(track_id, np.asarray(box, np.float32).copy(), int(stamp_ns), int(stamp_ns))
            self._tracks[track_id] = state
        else:
            state.box = np.asarray(box, np.float32).copy()
            state.last_seen_ns = max(state.last_seen_ns, int(stamp_ns))
            self._tracks.move_to_end(track_id)
        return state, new

    def expire(self, now_ns: int) -> list[str]:
        """Forget tracks unseen for more than timeout_s before now_ns; returns their ids."""
        removed = [tid for tid, t in self._tracks.items() if int(now_ns) - t.last_seen_ns > self.timeout_ns]
        for tid in removed:
            del self._tracks[tid]
        return removed

    def evict(self) -> list[str]:
        """Forget the least recently seen tracks beyond max_tracks; returns their ids."""
        removed = []
        while len(self._tracks) > self.max_tracks:
            removed.append(self._tracks.popitem(last=False)[0])
        return removed

    def record(self, track_id: str, probs: np.ndarray | None, stamp_ns: int, box: np.ndarray) -> bool:
        """Store a classification of track_id computed on the frame at stamp_ns (probs None: the classifier
        rejected the crop). Ignored (False) for an unknown track or one already classified on a newer frame."""
        state = self._tracks.get(track_id)
        if state is None or (state.label_stamp_ns is not None and stamp_ns < state.label_stamp_ns):
            return False
        state.attempted_ns = int(stamp_ns)
        if probs is None:
            return False
        state.probs = np.asarray(probs, np.float32).copy()
        state.label_stamp_ns = int(stamp_ns)
        state.classified_box = np.asarray(box, np.float32).copy()
        state.classifications += 1
        heading, spread = heading_from_probs(state.probs)
        state.heading_deg, state.heading_spread_deg = float(heading), float(spread)
        return True


__all__ = ["TrackState", "TrackTable", "box_change"]
