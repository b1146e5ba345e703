"""Lost-frame monitor: notices when detections (or image publishers) are there but camera frames are not.

Large raw frames over best-effort DDS are lost without a word (a 1920x1080 rgb8 frame is 6.2 MB, more
than Fast DDS's default shared-memory segment): the node then pairs nothing and publishes nothing. This
monitor turns that silence into ONE warning that names the topic, the publishers, the last frame's size,
the likely cause and the fixes, and ONE message when frames flow again. The cause is worded from what was
seen: frames that never arrived (or only trickle through) point at the transport; frames that flowed and
then stopped point at the publisher (gone, restarted, or stalled), not at their size. No ROS imports: the
node feeds it arrivals and the publisher list; time comes from an injectable monotonic clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class FrameWatchdogConfig:
    """timeout_s: no image for this long while detections arrive (or the image topic has a publisher)
    means frames are lost; window_s / min_image_ratio: over the last window_s, fewer images than
    min_image_ratio x detections also means frames are lost (needs at least min_detections detections
    in the window). Once lost, frames count as flowing again only when, over the last timeout_s, at least
    two images arrived and no fewer than recover_ratio x detections (a single frame trickling through a
    lossy transport does not end the warning)."""

    timeout_s: float = 5.0
    window_s: float = 10.0
    min_image_ratio: float = 0.25
    min_detections: int = 5
    recover_ratio: float = 0.5

    def __post_init__(self):
        if not self.timeout_s > 0 or not self.window_s > 0:
            raise ValueError(
                f"frame watchdog timeout_s and window_s must be > 0, got {self.timeout_s}, {self.window_s}"
            )
        if not 0.0 <= self.min_image_ratio <= 1.0:
            raise ValueError(f"frame watchdog min_image_ratio must be in [0, 1], got {self.min_image_ratio}")


@dataclass(frozen=True)
class WatchdogEvent:
    """A change of state to report: kind "lost" (log a warning, diagnostics WARN) or "recovered"."""

    kind: str
    message: str


@dataclass(frozen=True)
class FrameInfo:
    """What is known of the last frame received: size in px and encoding (None when not known)."""

    width: int | None = None
    height: int | None = None
    encoding: str | None = None

    def describe(self) -> str:
        size = f"{self.width}x{self.height}" if self.width and self.height else "size unknown"
        return f"{size} {self.encoding}" if self.encoding else size


UNNAMED_MARK = "_UNKNOWN_"  # rmw's _NODE_NAME_UNKNOWN_ / _NODE_NAMESPACE_UNKNOWN_: node not discovered yet


def _named(publishers: Sequence[str]) -> list[str]:
    return [p for p in publishers if p.strip("/") and UNNAMED_MARK not in p]


def describe_publishers(publishers: Sequence[str]) -> str:
    """ "/camera, 1 unnamed (its node not discovered yet)" or "none seen"."""
    named = _named(publishers)
    unnamed = len(publishers) - len(named)
    parts = named + ([f"{unnamed} unnamed (its node not discovered yet)"] if unnamed else [])
    return ", ".join(parts) if parts else "none seen"


def transport_advice(topic: str, transport: str = "raw") -> str:
    """Why frames that never arrive (or only trickle in) are lost, and the fixes."""
    if transport == "compressed":
        return (
            f"Check that the camera publishes {topic} (image_transport compressed) and that the QoS "
            f"matches (`ros2 topic info -v {topic}`)."
        )
    return (
        "Likely cause: large raw frames over best-effort DDS (a 1920x1080 rgb8 frame is 6.2 MB, more than "
        "Fast DDS's default shared-memory segment, so best-effort UDP fragments are dropped). Fixes: launch "
        "with large_images:=true (sets FASTDDS_DEFAULT_PROFILES_FILE to the shipped "
        "config/fastdds_large_images.xml; the camera process needs the same variable), or "
        "`image_transport: compressed`, or a reliable override "
        f"(`qos_overrides.{topic}.subscription.reliability: reliable`). "
        f"Compare both sides with `ros2 topic info -v {topic}`."
    )


def stopped_advice(topic: str, publishers: Sequence[str], flowing_publishers: Sequence[str], size: str) -> str:
    """Why frames that had been flowing stopped, from the publishers seen then and now."""
    named = set(_named(publishers))
    gone = sorted(set(flowing_publishers) - named)
    new = sorted(named - set(flowing_publishers))
    unnamed = len(publishers) - len(named)
    seen = f"frames ({size}) had been arriving from {', '.join(flowing_publishers) or 'the camera'}"
    if not publishers:
        return f"Likely cause: the camera stopped: {seen} and the topic has no publisher any more."
    if gone or new or unnamed:
        changes = [f"gone: {', '.join(gone)}"] if gone else []
        changes += [f"new: {', '.join(new)}"] if new else []
        changes += [f"{unnamed} not identified yet"] if unnamed else []
        return (
            f"Likely cause: the camera process stopped or restarted: {seen}, and the topic's publishers changed "
            f"since ({'; '.join(changes)}; a dead publisher stays listed until its DDS lease expires). Frames "
            "of that size got through before, so their size is not the cause; the node picks a restarted "
            f"camera up by itself once its frames arrive (`ros2 topic hz {topic}`)."
        )
    return (
        f"Likely cause: the publisher stopped sending (paused or stalled): {seen} and it is still there. Frames "
        f"of that size got through before, so their size is not the cause; check the camera (`ros2 topic hz "
        f"{topic}`, `ros2 topic info -v {topic}`)."
    )


def lost_frames_message(
    topic: str,
    publishers: Sequence[str],
    last_frame: FrameInfo | None,
    reason: str,
    transport: str = "raw",
    flowing_publishers: Sequence[str] | None = None,
) -> str:
    """The warning text: topic, publishers, last frame, likely cause, fixes. flowing_publishers: the named
    publishers while frames last flowed (None: frames never flowed, or only trickled through)."""
    last = f"last frame received: {last_frame.describe()}" if last_frame else "no frame received yet"
    text = f"frames lost on {topic}: {reason}; image publisher(s): {describe_publishers(publishers)}; {last}. "
    if flowing_publishers is None or last_frame is None:
        return text + transport_advice(topic, transport)
    return text + stopped_advice(topic, publishers, flowing_publishers, last_frame.describe())


class FrameWatchdog:
    """Feed it image_received() / detections_received(); call check(publishers) periodically.

    Frames count as lost when, for longer than timeout_s, no image arrived while detections kept arriving
    (or, before any frame arrived at all, while the image topic had a publisher), or when over window_s
    images were fewer than min_image_ratio x detections.

    check() returns a WatchdogEvent exactly when the state changes (frames start being lost, or flow
    again), None otherwise; `lost` and `reason` hold the current state for diagnostics.
    """

    def __init__(
        self,
        topic: str,
        cfg: FrameWatchdogConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: str = "raw",
    ):
        self.topic = topic
        self.cfg = cfg or FrameWatchdogConfig()
        self._clock = clock
        self.transport = transport
        self._start = clock()
        self._images: deque[float] = deque()
        self._detections: deque[float] = deque()
        self._last_image: float | None = None
        self.last_frame: FrameInfo | None = None
        self.lost = False
        self.reason = ""
        self.images_total = 0
        self._flowing_publishers: list[str] | None = None  # named publishers while frames last flowed

    def image_received(self, width: int | None = None, height: int | None = None, encoding: str | None = None) -> None:
        now = self._clock()
        self._images.append(now)
        self._last_image = now
        self.images_total += 1
        self.last_frame = FrameInfo(width or None, height or None, encoding or None)

    def detections_received(self) -> None:
        self._detections.append(self._clock())

    def _trim(self, now: float) -> None:
        for q in (self._images, self._detections):
            while q and now - q[0] > self.cfg.window_s:
                q.popleft()

    def _problem(self, now: float, publishers: Sequence[str]) -> str:
        cfg = self.cfg
        recent_detections = any(now - t <= cfg.timeout_s for t in self._detections)
        since_image = now - (self._last_image if self._last_image is not None else self._start)
        # A publisher alone counts only while no frame ever arrived: a camera that stops after sending
        # frames (paused, end of a bag) is not a transport problem; detections without frames are.
        if since_image > cfg.timeout_s and (recent_detections or (publishers and self._last_image is None)):
            what = "detections keep arriving" if recent_detections else "the topic has a publisher"
            if self._last_image is None:
                return f"{what} but no image was received in {since_image:.0f} s"
            return f"{what} but no image was received for {since_image:.0f} s"
        if (
            len(self._detections) >= cfg.min_detections
            and len(self._images) < cfg.min_image_ratio * len(self._detections)
            and now - self._start >= cfg.window_s
        ):
            return (
                f"{len(self._images)} image(s) but {len(self._detections)} detection message(s) in the last "
                f"{cfg.window_s:.0f} s"
            )
        return ""

    def _flowing(self, now: float) -> bool:
        """Frames flow again: over the last timeout_s, >= 2 images and >= recover_ratio x detections."""
        recent = self.cfg.timeout_s
        images = sum(1 for t in self._images if now - t <= recent)
        detections = sum(1 for t in self._detections if now - t <= recent)
        return images >= 2 and images >= self.cfg.recover_ratio * detections

    def check(self, publishers: Sequence[str] = ()) -> WatchdogEvent | None:
        """Evaluate now. publishers: the image topic's publishers ("/ns/node" names, may be empty)."""
        now = self._clock()
        self._trim(now)
        problem = self._problem(now, publishers)
        if not problem and not self.lost and self._flowing(now):
            self._flowing_publishers = _named(publishers)
        if problem and not self.lost:
            self.lost, self.reason = True, problem
            # Frames that flowed and then stopped altogether: the publisher's side; otherwise the transport's.
            stopped = self._last_image is not None and now - self._last_image > self.cfg.timeout_s
            flowing = self._flowing_publishers if stopped else None
            return WatchdogEvent(
                "lost",
                lost_frames_message(self.topic, publishers, self.last_frame, problem, self.transport, flowing),
            )
        if self.lost and not problem and self._flowing(now):
            self.lost, self.reason = False, ""
            self._flowing_publishers = _named(publishers)
            return WatchdogEvent(
                "recovered",
                f"frames flow again on {self.topic} ({len(self._images)} in the last {self.cfg.window_s:.0f} s)",
            )
        if problem:
            self.reason = problem
        return None


__all__ = [
    "FrameInfo",
    "FrameWatchdog",
    "FrameWatchdogConfig",
    "WatchdogEvent",
    "describe_publishers",
    "lost_frames_message",
]
