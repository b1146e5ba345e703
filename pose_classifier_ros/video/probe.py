"""Open a video file with PyAV (FFmpeg) and say what it holds, without decoding: the video errors,
``VideoInfo`` and ``probe_video``. video/decode.py decodes; both open files through ``open_video``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from pose_classifier_ros.stream.clock import NS_PER_S


class VideoError(ValueError):
    """A video cannot be read; the message names the file."""


class VideoOpenError(VideoError):
    """The file cannot be opened as a video (missing, not a video, no video stream, unsupported codec)."""


class VideoTruncatedError(VideoError):
    """Decoding stopped early (truncated or corrupt file). Every frame up to ``last_index`` was yielded.

    last_index: index of the last good frame (None when none decoded); last_time_s: its time, s."""

    def __init__(self, message: str, path: str, last_index: int | None, last_time_s: float | None):
        super().__init__(message)
        self.path = path
        self.last_index = last_index
        self.last_time_s = last_time_s


@dataclass
class VideoInfo:
    """What the container says about its first video stream. frame_count: frames declared by the container
    (None when it does not say); duration_s: None when unknown; average_rate: frames per second on
    average (not used for stamps); indexed: the container lists every frame (exact seeking);
    creation_time_ns: the file's creation_time tag as epoch ns (None when absent)."""

    path: str
    width: int
    height: int
    codec: str
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int | None
    duration_s: float | None
    start_pts: int
    indexed: bool
    creation_time_ns: int | None
    container: str = ""  # FFmpeg's format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"


def _creation_time_ns(tags: dict) -> int | None:
    value = tags.get("creation_time")
    if not value:
        return None
    try:
        return int(round(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * NS_PER_S))
    except ValueError:
        return None


def open_video(path: Path):
    """(container, video stream) or VideoOpenError naming the file."""
    import av

    if not path.is_file():
        raise VideoOpenError(f"cannot open video {str(path)!r}: no such file")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoOpenError(f"cannot open video {str(path)!r}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoOpenError(f"cannot open video {str(path)!r}: it has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoOpenError(f"cannot open video {str(path)!r}: no decoder for its video codec")
    return container, stream


def _usable_entries(stream) -> int:
    """Frames the container's index lists (discarded edit-list entries excluded), 0 without a full index."""
    entries = stream.index_entries
    if not stream.frames or len(entries) != stream.frames:
        return 0
    return sum(1 for e in entries if not e.is_discard)


def video_info(path: Path, container, stream) -> VideoInfo:
    tb = stream.time_base or Fraction(1, 1)
    duration = None
    if stream.duration is not None:
        duration = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / 1e6
    indexed = _usable_entries(stream)
    tags = {**dict(container.metadata), **dict(stream.metadata)}
    return VideoInfo(
        path=str(path),
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        codec=stream.codec_context.name,
        time_base=tb,
        average_rate=stream.average_rate,
        frame_count=indexed or (int(stream.frames) if stream.frames else None),
        duration_s=duration,
        start_pts=int(stream.start_time or 0),
        indexed=bool(indexed),
        creation_time_ns=_creation_time_ns(tags),
        container=container.format.name,
    )


def probe_video(path: str | Path) -> VideoInfo:
    """VideoInfo of a file without decoding it; VideoOpenError when it cannot be read as a video."""
    path = Path(path)
    container, stream = open_video(path)
    try:
        return video_info(path, container, stream)
    finally:
        container.close()


__all__ = [
    "NS_PER_S",
    "VideoError",
    "VideoInfo",
    "VideoOpenError",
    "VideoTruncatedError",
    "open_video",
    "probe_video",
    "video_info",
]
