"""Decode a video file into stamped, numbered frames, ahead of the consumer, with PyAV (FFmpeg).

Frames are stamped from their presentation times (``pts * time_base``; variable frame rate works, no fps
is assumed) and numbered the way CVAT and MOTChallenge number them: the frame's position in the stream in
presentation order, 0-based from the start of the file (MOT's 1-based ``frame`` is this index + 1).

How the index is found. Each packet's presentation time is recorded as it is demuxed; a decoded frame's
index is the number of frames in the stream with an earlier presentation time. Decoding from the start of
the file this is a plain count. After ``start_s`` seeks to the keyframe before the start, the count starts
from that keyframe's sample number in the container's per-frame index (MP4/MOV list every frame, with its
byte position; every frame before a keyframe in decoding order is presented before it), so a run with
``--start`` numbers frames exactly as a run from the beginning, variable frame rate included. Containers
without a complete per-frame index (MKV, MPEG-TS) are decoded from the start instead (frames before
``start_s`` are decoded but not converted). Frames the decoder drops (edit-list discards) are not counted.

A decode-ahead thread demuxes, decodes and converts to RGB into a bounded queue, so a consumer slower than
decoding never waits for it. Only frames for which ``convert(index)`` is true are converted in that
thread; the others are yielded unconverted (``rgb()`` converts on demand) so frames without track boxes
cost no colour conversion.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from pose_classifier_ros.stream.clock import NS_PER_S
from pose_classifier_ros.stream.conversions import ns_to_stamp
from pose_classifier_ros.video.probe import VideoError, VideoTruncatedError, open_video, video_info

_logger = logging.getLogger(__name__)

FRAME_ID = "camera_optical_frame"  # the frame_id of the synthetic bag's camera, for like-for-like outputs


@dataclass(frozen=True)
class Stamp:
    """builtin_interfaces/Time-like: sec + nanosec."""

    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    """std_msgs/Header-like: stamp + frame_id (what FrameProcessor copies into the ViewpointArray)."""

    stamp: Stamp
    frame_id: str


@dataclass(eq=False)
class VideoFrame:
    """One decoded frame. index: position in the stream (0-based, presentation order); stamp_ns: int ns
    (``DecodeOptions.base_ns`` + presentation time); time_s: presentation time from the stream start, s;
    pts: presentation timestamp in the stream's time_base; width/height: px. ``rgb()`` is the
    (height, width, 3) uint8 RGB image (converted in the decode thread when ``convert(index)`` was true,
    else on first call)."""

    index: int
    stamp_ns: int
    time_s: float
    pts: int
    header: Header
    width: int
    height: int
    _rgb: np.ndarray | None = field(default=None, repr=False)
    _frame: object | None = field(default=None, repr=False)  # the av.VideoFrame until converted

    @property
    def converted(self) -> bool:
        return self._rgb is not None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = _to_rgb(self._frame)
            self._frame = None
        return self._rgb


@dataclass
class DecodeOptions:
    """start_s/end_s: presentation times, s, from the stream start (start inclusive, end exclusive; None =
    to the end); stride: keep frames whose index is a multiple of it (absolute indices, so a run with a
    start keeps the same frames as one without); queue_size: frames decoded ahead of the consumer;
    thread_type: FFmpeg decoder threading ("AUTO" = frame + slice threads, "SLICE", "FRAME", "NONE");
    threads: decoder threads (0 = FFmpeg's choice); frame_id: the header's frame_id; base_ns: stamp of
    presentation time 0, ns (e.g. the file's creation time)."""

    start_s: float = 0.0
    end_s: float | None = None
    stride: int = 1
    queue_size: int = 8
    thread_type: str = "AUTO"
    threads: int = 0
    frame_id: str = FRAME_ID
    base_ns: int = 0

    def __post_init__(self):
        if not (np.isfinite(self.start_s) and self.start_s >= 0):
            raise ValueError(f"start must be a time >= 0 s, got {self.start_s!r}")
        if self.end_s is not None and not (np.isfinite(self.end_s) and self.end_s > self.start_s):
            raise ValueError(f"end ({self.end_s!r} s) must lie after start ({self.start_s!r} s)")
        if int(self.stride) < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride!r}")
        if int(self.queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size!r}")
        if self.thread_type.upper() not in ("AUTO", "SLICE", "FRAME", "NONE"):
            raise ValueError(f"thread_type must be AUTO, SLICE, FRAME or NONE, got {self.thread_type!r}")
        self.stride, self.queue_size, self.threads = int(self.stride), int(self.queue_size), int(self.threads)
        self.thread_type = self.thread_type.upper()


@dataclass
class DecodeStats:
    """Counters and times of one pass. decoded: frames out of the decoder; yielded: frames handed to the
    consumer; converted: RGB conversions done in the decode thread; before_start / off_stride: decoded
    frames not yielded; seeked: the pass started at a keyframe near start_s; decode_s / convert_s: decode
    thread time in demux+decode and in RGB conversion; consumer_wait_s: time the consumer waited for a
    frame (decoding slower than the consumer); producer_wait_s: time the decode thread waited for room in
    the queue (the consumer slower)."""

    decoded: int = 0
    yielded: int = 0
    converted: int = 0
    before_start: int = 0
    off_stride: int = 0
    seeked: bool = False
    decode_s: float = 0.0
    convert_s: float = 0.0
    consumer_wait_s: float = 0.0
    producer_wait_s: float = 0.0


def _to_rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _exact(seconds: float) -> Fraction:
    """A time in seconds as the decimal the user wrote (0.1 -> 1/10, not the nearest binary float)."""
    return Fraction(repr(float(seconds)))


class _FrameNumbering:
    """Index of a decoded frame = first + number of frames (since `first`) presented before it.

    Packets' pts are added as they are demuxed (decoding order); ``index(pts)`` is asked in presentation
    order, so every packet presented earlier has been demuxed by then (a decoder outputs a frame only after
    every frame shown before it has been decoded)."""

    def __init__(self, first: int = 0):
        self.first = first
        self.counted = 0
        self.pending: list[int] = []  # sorted pts not yet passed

    def add(self, pts: int) -> None:
        bisect.insort(self.pending, pts)

    def index(self, pts: int) -> int:
        earlier = bisect.bisect_left(self.pending, pts)
        self.counted += earlier
        del self.pending[:earlier]
        return self.first + self.counted


_END = object()


@dataclass
class _Failure:
    error: BaseException


class VideoReader:
    """Iterate the frames of one video, decoded ahead in a thread: ``for frame in VideoReader(path, opts)``.

    convert: ``convert(index) -> bool``, whether the decode thread converts that frame to RGB (None: every
    frame). Raises VideoOpenError at construction for an unreadable file; iteration raises
    VideoTruncatedError after the last good frame of a truncated or corrupt file. Iterate once; close()
    (or leaving the ``with`` block, or abandoning the iteration) stops the thread.
    """

    def __init__(
        self,
        path: str | Path,
        options: DecodeOptions | None = None,
        convert: Callable[[int], bool] | None = None,
    ):
        self.path = Path(path)
        self.options = options or DecodeOptions()
        self.convert = convert
        self.stats = DecodeStats()
        self._container, self._stream = open_video(self.path)
        self.info = video_info(self.path, self._container, self._stream)
        self._queue: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, float] | None = None  # (index, time_s) of the last good frame decoded

    # ----------------------------------------------------------------------------- consumer side
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._thread is not None:
            raise RuntimeError("a VideoReader is iterated once; open a new one")
        self._thread = threading.Thread(target=self._produce, name=f"decode:{self.path.name}", daemon=True)
        self._thread.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = self._queue.get()
                self.stats.consumer_wait_s += time.perf_counter() - t0
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                self.stats.yielded += 1
                yield item
        finally:
            self.close()

    @property
    def last_decoded(self) -> tuple[int, float] | None:
        """(index, time_s) of the last good frame decoded so far (yielded or not), None before the first."""
        return self._last

    def close(self) -> None:
        """Stop the decode thread and release the file (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            while thread.is_alive():  # unblock a producer waiting for room
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                thread.join(timeout=0.05)
        if thread is None and self._container is not None:
            self._container.close()
            self._container = None

    # ----------------------------------------------------------------------------- decode thread
    def _put(self, item) -> bool:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                self.stats.producer_wait_s += time.perf_counter() - t0
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for frame in self._decode():
                if not self._put(frame):
                    return
            self._put(_END)
        except VideoError as exc:
            self._put(_Failure(exc))
        except Exception as exc:  # FFmpeg errors mid-stream: report after the good frames
            self._put(_Failure(self._truncated(f"decoding failed: {exc}")))
        finally:
            if self._container is not None:
                self._container.close()
                self._container = None

    def _truncated(self, why: str) -> VideoTruncatedError:
        if self._last is None:
            where = "before its first frame"
        else:
            where = f"after frame {self._last[0]} (t = {self._last[1]:.3f} s), the last good frame"
        return VideoTruncatedError(
            f"video {str(self.path)!r} is truncated or corrupt: {why}; it stopped {where}",
            str(self.path),
            None if self._last is None else self._last[0],
            None if self._last is None else self._last[1],
        )

    def _configure_decoder(self) -> None:
        ctx = self._stream.codec_context
        ctx.thread_type = self.options.thread_type
        ctx.thread_count = self.options.threads

    def _reopen(self) -> None:
        self._container.close()
        self._container, self._stream = open_video(self.path)
        self._configure_decoder()

    def _sample_number(self, packet) -> int | None:
        """Presentation index of keyframe `packet` from the container's index (None when not found)."""
        entries = self._stream.index_entries
        i = entries.search_timestamp(packet.dts, backward=True, any_frame=True)
        for j in (i, i - 1, i + 1):
            if 0 <= j < len(entries) and entries[j].pos == packet.pos:
                return sum(1 for e in entries[:j] if not e.is_discard)
        return None

    def _packets_from_start(self, start: Fraction):
        """(packet iterator, index of its first frame): seeks to the keyframe at or before `start` (s) when
        the container's index allows exact numbering, else reads from the beginning."""
        if start <= 0 or not self.info.indexed:
            if start > 0:
                _logger.info(
                    "%s: the container has no per-frame index; decoding from its beginning to number frames "
                    "exactly (frames before %.3f s are decoded, not converted)",
                    self.path,
                    float(start),
                )
            return self._container.demux(self._stream), 0
        tb = self.info.time_base
        start_pts = self.info.start_pts + start / tb
        target = int(start_pts)
        for _ in range(4):
            if target <= self.info.start_pts:
                break
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            packets = self._container.demux(self._stream)
            first = next((p for p in packets if p.size), None)
            if first is None or not first.is_keyframe or first.pts is None or first.dts is None:
                break
            if first.pts <= start_pts:
                number = self._sample_number(first)
                if number is None:
                    break
                self.stats.seeked = True
                return itertools.chain([first], packets), number
            # the keyframe found is presented after the start (seek by dts): look further back
            target -= int(2 * (first.pts - start_pts)) + int(1 / tb)
        _logger.info("%s: no exact seek to %.3f s; decoding from the beginning", self.path, float(start))
        self._reopen()
        return self._container.demux(self._stream), 0

    def _decode(self) -> Iterator[VideoFrame]:
        opts, info = self.options, self.info
        tb, origin = info.time_base, info.start_pts
        start, end = _exact(opts.start_s), None if opts.end_s is None else _exact(opts.end_s)
        self._configure_decoder()
        t0 = time.perf_counter()
        packets, first_index = self._packets_from_start(start)
        numbering = _FrameNumbering(first_index)
        last_pts = None
        ended_by_end = False
        for packet in packets:
            if packet.size and packet.pts is not None and not packet.is_discard:
                numbering.add(packet.pts)
            try:
                frames = packet.decode()
            except Exception as exc:  # av.error.*: corrupt data
                raise self._truncated(f"cannot decode a packet at byte {packet.pos}: {exc}") from None
            for frame in frames:
                self.stats.decode_s += time.perf_counter() - t0
                pts = frame.pts if frame.pts is not None else (last_pts + 1 if last_pts is not None else origin)
                last_pts = pts
                if not self.stats.decoded and getattr(frame, "rotation", 0):
                    _logger.warning(
                        "%s asks for a %s deg display rotation; frames are used as stored", self.path, frame.rotation
                    )
                self.stats.decoded += 1
                index = numbering.index(pts)
                rel = (pts - origin) * tb  # Fraction, s
                self._last = (index, float(rel))
                if end is not None and rel >= end:
                    ended_by_end = True
                    break
                if rel < start:
                    self.stats.before_start += 1
                elif index % opts.stride:
                    self.stats.off_stride += 1
                else:
                    yield self._frame(frame, index, pts, rel)
                t0 = time.perf_counter()
            if ended_by_end:
                break
        self.stats.decode_s += time.perf_counter() - t0
        expected = info.frame_count if info.indexed else None
        if not ended_by_end and expected and (self._last is None or self._last[0] + 1 < expected):
            got = 0 if self._last is None else self._last[0] + 1
            raise self._truncated(f"the container lists {expected} frames, {got} decoded")
        self._check_duration(ended_by_end)

    def _check_duration(self, ended_by_end: bool) -> None:
        """Without a frame index, warn when the last frame lies well before the duration the header states
        (a truncated MKV still states its full duration); MPEG-TS durations are estimates, not checked."""
        info = self.info
        if ended_by_end or info.indexed or not info.duration_s or "mpegts" in info.container or self._last is None:
            return
        period = float(1 / info.average_rate) if info.average_rate else 0.0
        if self._last[1] + max(0.5, 2 * period) < info.duration_s:
            _logger.warning(
                "%s: decoding ended at %.3f s (frame %d) but the container states %.3f s: the file may be truncated",
                self.path,
                self._last[1],
                self._last[0],
                info.duration_s,
            )

    def _frame(self, frame, index: int, pts: int, rel: Fraction) -> VideoFrame:
        stamp_ns = self.options.base_ns + int(round(rel * NS_PER_S))
        out = VideoFrame(
            index=index,
            stamp_ns=stamp_ns,
            time_s=float(rel),
            pts=int(pts),
            header=Header(ns_to_stamp(stamp_ns, Stamp), self.options.frame_id),
            width=int(frame.width),
            height=int(frame.height),
            _frame=frame,
        )
        if self.convert is None or self.convert(index):
            t0 = time.perf_counter()
            out.rgb()
            self.stats.convert_s += time.perf_counter() - t0
            self.stats.converted += 1
        return out


def read_frames(
    path: str | Path, options: DecodeOptions | None = None, convert: Callable[[int], bool] | None = None
) -> Iterator[VideoFrame]:
    """Generator over a video's frames (a VideoReader that is closed when the generator is)."""
    with VideoReader(path, options, convert) as reader:
        yield from reader


__all__ = [
    "FRAME_ID",
    "DecodeOptions",
    "DecodeStats",
    "Header",
    "Stamp",
    "VideoFrame",
    "VideoReader",
    "read_frames",
]
