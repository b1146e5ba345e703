"""Pairs camera frames with detection messages, by header stamp (default) or by arrival.

Stamps are int nanoseconds. "stamp" mode expects the detector to copy the image header into its
Detection2DArray (as most detectors do); "arrival" mode pairs each detection message with the most
recent frame, for detectors that stamp with now() or leave the stamp empty. Both buffers are bounded
and every dropped item is counted by reason in `stats`, so a node can say *why* nothing is published.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_classifier_ros.stream.clock import ClockReset, ClockResetDetector, log_clock_reset

PAIRING_MODES = ("stamp", "arrival")
_MIN_UNMATCHED_FOR_DIAGNOSIS = 3


@dataclass
class PairingConfig:
    """mode: "stamp" | "arrival"; tolerance_s: max |detection stamp - image stamp| to pair (stamp mode);
    queue_size: items buffered per side while waiting for their partner."""

    mode: str = "stamp"
    tolerance_s: float = 0.005
    queue_size: int = 30

    def __post_init__(self):
        if self.mode not in PAIRING_MODES:
            raise ValueError(f"sync.mode must be one of {', '.join(PAIRING_MODES)}, got {self.mode!r}")
        if not (self.tolerance_s >= 0 and np.isfinite(self.tolerance_s)):
            raise ValueError(f"sync.tolerance_s must be >= 0 s, got {self.tolerance_s!r}")
        if int(self.queue_size) != self.queue_size or self.queue_size < 1:
            raise ValueError(f"sync.queue_size must be an integer >= 1, got {self.queue_size!r}")
        self.tolerance_s = float(self.tolerance_s)
        self.queue_size = int(self.queue_size)

    @property
    def tolerance_ns(self) -> int:
        return int(round(self.tolerance_s * 1e9))


@dataclass
class Pair:
    """A frame and its detections. stamp_ns: the image stamp; offset_ns: detection stamp - image stamp."""

    stamp_ns: int
    image: Any
    detections: Any
    offset_ns: int


class _Item:
    __slots__ = ("stamp_ns", "payload", "seq")

    def __init__(self, stamp_ns: int, payload: Any, seq: int):
        self.stamp_ns, self.payload, self.seq = stamp_ns, payload, seq


def _format_ms(values_ms) -> str:
    arr = np.asarray(values_ms, dtype=np.float64)
    med = float(np.median(arr))
    text = f"~ {med:+.1f} ms"
    if arr.size > 1 and float(arr.max() - arr.min()) > 1.0:
        text += f" (range {arr.min():+.1f} .. {arr.max():+.1f} ms)"
    return text


class StampPairer:
    """Bounded two-sided buffer that emits a Pair when an image and a detection message belong together.

    stamp mode: an arriving item pairs with the buffered item of the other side whose stamp is closest
    within tolerance (the most recent one among equals); each item pairs at most once. An item is dropped
    as unmatched once an item of the other side arrives with a stamp later than it by more than the
    tolerance, and on overflow (oldest first).
    arrival mode: each detection message pairs with the most recent not yet paired image.
    """

    STAT_KEYS = (
        "paired",
        "dropped_image_unmatched",
        "dropped_detections_unmatched",
        "dropped_overflow",
        "zero_stamps",
        "clock_resets",
    )

    def __init__(self, cfg: PairingConfig | None = None, on_clock_reset: Callable[[ClockReset], None] | None = None):
        """on_clock_reset: called once per clock reset (default: log_clock_reset, Python logging)."""
        self.cfg = cfg or PairingConfig()
        self.on_clock_reset = on_clock_reset or log_clock_reset
        self.stats: dict[str, int] = {key: 0 for key in self.STAT_KEYS}
        self._images: deque[_Item] = deque()
        self._detections: deque[_Item] = deque()
        self._seq = 0
        # Per side: in arrival mode the two clocks may differ. On a clock reset, buffered items from
        # "the future" could never pair again, so both buffers are flushed.
        self._clocks = {"image": ClockResetDetector(), "detections": ClockResetDetector()}
        self._detections_overflowed = 0
        # Stamps of recent images (paired or not), sorted, to report how far unmatched detections were off.
        self._recent_image_stamps: deque[int] = deque(maxlen=4 * self.cfg.queue_size)
        # Offsets (detection - nearest image stamp) of recently dropped detections, ms, for diagnose().
        self.unmatched_offsets_ms: deque[float] = deque(maxlen=50)

    # -- public API -------------------------------------------------------------------------------
    def add_image(self, stamp_ns: int, image: Any) -> list[Pair]:
        """Offer a frame; returns the pairs it completes (0 or 1)."""
        stamp_ns = self._accept_stamp(stamp_ns, "image")
        self._recent_image_stamps.append(stamp_ns)
        if self.cfg.mode == "arrival":
            if self._images:
                self.stats["dropped_image_unmatched"] += 1
                self._images.clear()
            self._images.append(self._item(stamp_ns, image))
            return []
        match = self._take_closest(self._detections, stamp_ns)
        # Detections the frames have moved past can no longer pair with a later frame.
        self._drop_passed(self._detections, stamp_ns, "dropped_detections_unmatched")
        if match is not None:
            return [self._pair(stamp_ns, image, match.stamp_ns, match.payload)]
        self._push(self._images, self._item(stamp_ns, image), is_image=True)
        return []

    def add_detections(self, stamp_ns: int, detections: Any) -> list[Pair]:
        """Offer a detection message (any payload); returns the pairs it completes (0 or 1)."""
        stamp_ns = self._accept_stamp(stamp_ns, "detections")
        if self.cfg.mode == "arrival":
            if not self._images:
                self._count_unmatched_detection(stamp_ns)
                return []
            image = self._images.pop()
            return [self._pair(image.stamp_ns, image.payload, stamp_ns, detections)]
        match = self._take_closest(self._images, stamp_ns)
        self._drop_passed(self._images, stamp_ns, "dropped_image_unmatched")
        if match is not None:
            return [self._pair(match.stamp_ns, match.payload, stamp_ns, detections)]
        self._push(self._detections, self._item(stamp_ns, detections), is_image=False)
        return []

    def pending(self) -> tuple[int, int]:
        """(buffered images, buffered detection messages)."""
        return len(self._images), len(self._detections)

    def reset(self) -> None:
        """Forget buffered items (counters are kept)."""
        self._images.clear()
        self._detections.clear()
        self._recent_image_stamps.clear()
        for clock in self._clocks.values():
            clock.reset()

    def diagnose(self) -> str | None:
        """One line explaining why detections do not pair, or None when pairing looks healthy."""
        paired = self.stats["paired"]
        unmatched = self.stats["dropped_detections_unmatched"] + self._detections_overflowed
        problems = []
        if self.stats["zero_stamps"]:
            problems.append(
                f"{self.stats['zero_stamps']} message(s) had a zero header stamp (publisher "
                "does not set header.stamp); use sync.mode arrival or fix the publisher"
            )
        if unmatched >= _MIN_UNMATCHED_FOR_DIAGNOSIS and unmatched > paired:
            head = (
                "detections never match any frame"
                if paired == 0
                else f"most detections match no frame ({unmatched} unmatched, {paired} paired)"
            )
            if self.unmatched_offsets_ms:
                problems.append(
                    f"{head}: offsets {_format_ms(self.unmatched_offsets_ms)}; "
                    "raise sync.tolerance_s or use sync.mode arrival"
                )
            else:
                problems.append(f"{head}: no camera frame received; check the image topic and its QoS")
        return "; ".join(problems) if problems else None

    # -- internals --------------------------------------------------------------------------------
    def _accept_stamp(self, stamp_ns, side: str) -> int:
        stamp_ns = int(stamp_ns)
        if stamp_ns == 0:
            self.stats["zero_stamps"] += 1
        clock = self._clocks[side]
        if clock.update(stamp_ns):
            forgot = f"flushed {len(self._images)} image(s) and {len(self._detections)} detection message(s)"
            self.stats["clock_resets"] += 1
            self.reset()
            clock.update(stamp_ns)
            self.on_clock_reset(ClockReset(f"pairing ({side} stamps)", clock.last_back_s, stamp_ns, forgot))
        return stamp_ns

    def _item(self, stamp_ns: int, payload: Any) -> _Item:
        self._seq += 1
        return _Item(stamp_ns, payload, self._seq)

    def _take_closest(self, buffer: deque, stamp_ns: int) -> _Item | None:
        best, best_key = None, None
        tol = self.cfg.tolerance_ns
        for item in buffer:
            diff = abs(item.stamp_ns - stamp_ns)
            if diff <= tol:
                key = (diff, -item.seq)  # closest, then most recently received
                if best_key is None or key < best_key:
                    best, best_key = item, key
        if best is not None:
            buffer.remove(best)
        return best

    def _drop_passed(self, buffer: deque, stamp_ns: int, reason: str) -> None:
        limit = stamp_ns - self.cfg.tolerance_ns
        keep = [item for item in buffer if item.stamp_ns >= limit]
        if len(keep) == len(buffer):
            return
        for item in buffer:
            if item.stamp_ns < limit:
                if reason == "dropped_detections_unmatched":
                    self._count_unmatched_detection(item.stamp_ns)
                else:
                    self.stats[reason] += 1
        buffer.clear()
        buffer.extend(keep)

    def _push(self, buffer: deque, item: _Item, is_image: bool) -> None:
        buffer.append(item)
        while len(buffer) > self.cfg.queue_size:
            old = buffer.popleft()
            self.stats["dropped_overflow"] += 1
            if not is_image:
                self._detections_overflowed += 1
                self._record_offset(old.stamp_ns)

    def _count_unmatched_detection(self, stamp_ns: int) -> None:
        self.stats["dropped_detections_unmatched"] += 1
        self._record_offset(stamp_ns)

    def _record_offset(self, det_stamp_ns: int) -> None:
        if not self._recent_image_stamps:
            return
        stamps = sorted(self._recent_image_stamps)
        i = bisect.bisect_left(stamps, det_stamp_ns)
        nearest = min(stamps[max(i - 1, 0) : i + 1], key=lambda s: abs(s - det_stamp_ns))
        self.unmatched_offsets_ms.append((det_stamp_ns - nearest) / 1e6)

    def _pair(self, image_stamp_ns: int, image: Any, det_stamp_ns: int, detections: Any) -> Pair:
        self.stats["paired"] += 1
        return Pair(image_stamp_ns, image, detections, det_stamp_ns - image_stamp_ns)


__all__ = ("PairingConfig", "StampPairer", "Pair", "PAIRING_MODES")
