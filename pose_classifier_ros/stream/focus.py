"""The classifier's focus: which tracks a consumer (the navigation policy) wants fresh labels for.

The side-profile policy steers on one animal, its target (``PolicyState.target_track_id``). The node hands
each PolicyState to ``Focus.set`` on its executor thread; the inference thread asks ``Focus.tracks_at`` for
the focused ids of the frame it classifies, and the scheduler reserves part of the cycle for them
(stream/scheduler.py). Replay sets the focus from a recorded PolicyState topic or pins a track id.

Time is frame stamps, as everywhere in the pipeline: a focus carries the stamp of the frame the policy
computed it on, and it is *stale* (ignored) for a frame whose stamp is more than ``timeout_s`` away from
it, either way. So a policy that stops publishing (or a clock reset, which moves frame stamps far from the
focus stamp) falls back to today's schedule after ``timeout_s`` of frames, and a focus from a newer frame
than the one being classified (the policy runs ahead of the inference thread) still counts. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Focus:
    """The newest focus: track ids and the frame stamp they were chosen on (int ns), or pinned ids.

    set(ids, stamp_ns): the newest focus (empty ids: none, e.g. the policy is searching); pin(ids): a focus
    that never goes stale (replay --focus-track); tracks_at(now_ns) -> the focused ids for the
    frame stamped now_ns (empty when none or stale). updates: how many times set() was called."""

    def __init__(self, timeout_s: float = 1.0):
        if not timeout_s > 0:
            raise ValueError(f"focus timeout must be > 0 s, got {timeout_s!r}")
        self.timeout_ns = int(round(float(timeout_s) * 1e9))
        self._lock = threading.Lock()
        self._ids: frozenset[str] = frozenset()
        self._stamp_ns: int | None = None  # None with ids: pinned
        self.updates = 0

    def set(self, track_ids: Iterable[str], stamp_ns: int) -> None:
        """The newest focus: `track_ids` (empty strings dropped) chosen on the frame stamped `stamp_ns`."""
        ids = frozenset(str(t) for t in track_ids if str(t))
        with self._lock:
            self._ids, self._stamp_ns = ids, int(stamp_ns)
            self.updates += 1

    def pin(self, track_ids: Iterable[str]) -> None:
        """A fixed focus that never goes stale (empty: none)."""
        with self._lock:
            self._ids, self._stamp_ns = frozenset(str(t) for t in track_ids if str(t)), None

    def tracks_at(self, now_ns: int) -> frozenset[str]:
        """Focused track ids for the frame stamped now_ns: empty without a focus or when it is stale
        (|now_ns - focus stamp| > timeout)."""
        with self._lock:
            ids, stamp = self._ids, self._stamp_ns
        if not ids or (stamp is not None and abs(int(now_ns) - stamp) > self.timeout_ns):
            return frozenset()
        return ids

    def describe(self) -> str:
        """The current focus for diagnostics and logs: "elk-1 (stamp 12.300 s)", "elk-1 (pinned)", ""."""
        with self._lock:
            ids, stamp = self._ids, self._stamp_ns
        if not ids:
            return ""
        when = "pinned" if stamp is None else f"stamp {stamp * 1e-9:.3f} s"
        return f"{', '.join(sorted(ids))} ({when})"


__all__ = ["Focus"]
