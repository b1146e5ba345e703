"""One home for time on the stream: the clock-reset rule shared by pairing, voting, tracking and the policy.

Stamps that go back by more than CLOCK_RESET_S mean the clock was reset (a bag loop, a simulator
restart), not that two messages were reordered: whoever keeps state keyed by time starts afresh.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
# Largest backward step of frame stamps that is still reordering, s; larger steps are clock resets.
CLOCK_RESET_S = 0.5


class ClockResetDetector:
    """Tracks the newest stamp seen (int ns) and says when a new stamp means the clock was reset."""

    def __init__(self, threshold_s: float = CLOCK_RESET_S):
        self.threshold_ns = int(round(threshold_s * NS_PER_S))
        self.newest_ns: int | None = None
        self.resets = 0

    def update(self, stamp_ns: int) -> bool:
        """Record `stamp_ns`; True when it went back by more than the threshold (the caller resets its state)."""
        stamp_ns = int(stamp_ns)
        if self.newest_ns is not None and stamp_ns < self.newest_ns - self.threshold_ns:
            self.newest_ns = stamp_ns
            self.resets += 1
            return True
        self.newest_ns = stamp_ns if self.newest_ns is None else max(self.newest_ns, stamp_ns)
        return False

    def back_by_s(self, stamp_ns: int) -> float:
        """How far `stamp_ns` lies before the newest stamp, s (0 if not before it)."""
        return 0.0 if self.newest_ns is None else max(0.0, (self.newest_ns - int(stamp_ns)) / NS_PER_S)

    def reset(self) -> None:
        self.newest_ns = None


__all__ = ["CLOCK_RESET_S", "NS_PER_S", "ClockResetDetector"]
