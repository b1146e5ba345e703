"""One home for time on the stream: the clock-reset rule of everything that keeps state keyed by time.

Stamps that go back by more than CLOCK_RESET_S mean the clock was reset (a bag loop, a simulator
restart), not that two messages were reordered: whoever keeps state keyed by time starts afresh. Pairing,
voting, the IoU tracker, the scheduler and its replay budget, the track pipeline, best views and the
policy node all decide with a ClockResetDetector; a smaller step back is reordering (``is_older``), which
each of them handles as "not newer" without forgetting anything.

Whoever forgets state on a reset reports it once as a ``ClockReset`` (``on_clock_reset`` callbacks): the
node logs it through its ROS logger, the offline tools through Python logging (``log_clock_reset``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
# Largest backward step of frame stamps that is still reordering, s; larger steps are clock resets.
CLOCK_RESET_S = 0.5

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockReset:
    """A clock reset seen by `where` (e.g. "pairing", "track pipeline"): stamps went back by back_s, s, to
    stamp_ns (int ns); forgot: what was dropped because of it, for the log line."""

    where: str
    back_s: float
    stamp_ns: int
    forgot: str = ""

    @property
    def message(self) -> str:
        text = f"{self.where}: stamps went back {self.back_s:.3f} s (bag loop or clock reset)"
        return f"{text}: {self.forgot}" if self.forgot else text


def log_clock_reset(event: ClockReset) -> None:
    """Default on_clock_reset outside the node: one INFO line through Python logging."""
    _logger.info("%s", event.message)


class ClockResetDetector:
    """Tracks the newest stamp seen (int ns) and says when a new stamp means the clock was reset."""

    def __init__(self, threshold_s: float = CLOCK_RESET_S):
        self.threshold_ns = int(round(threshold_s * NS_PER_S))
        self.newest_ns: int | None = None
        self.resets = 0
        self.last_back_s = 0.0  # how far the latest reset went back, s

    def update(self, stamp_ns: int) -> bool:
        """Record `stamp_ns`; True when it went back by more than the threshold (the caller resets its state)."""
        stamp_ns = int(stamp_ns)
        if self.newest_ns is not None and stamp_ns < self.newest_ns - self.threshold_ns:
            self.last_back_s = (self.newest_ns - stamp_ns) / NS_PER_S
            self.newest_ns = stamp_ns
            self.resets += 1
            return True
        self.newest_ns = stamp_ns if self.newest_ns is None else max(self.newest_ns, stamp_ns)
        return False

    def update_s(self, stamp_s: float) -> bool:
        """update() for a float-seconds stamp (voting's unit)."""
        return self.update(round(float(stamp_s) * NS_PER_S))

    def is_older(self, stamp_ns: int) -> bool:
        """`stamp_ns` lies before the newest stamp (reordering, or a reset not recorded yet)."""
        return self.newest_ns is not None and int(stamp_ns) < self.newest_ns

    def reset(self) -> None:
        self.newest_ns = None


__all__ = ["CLOCK_RESET_S", "NS_PER_S", "ClockReset", "ClockResetDetector", "log_clock_reset"]
