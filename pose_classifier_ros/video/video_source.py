"""A video and its tracks as an offline source: ``SourceFrame``s for replay/runner.run_frames, as a bag gives.

Each frame the run needs is paired with the track boxes of its index (``Tracks``, fitted to the video
first): ``Pair(stamp_ns, image=VideoFrame, detections, offset_ns=0)``. The detections are copies of the
track file's (the pipeline's filter and tracker see them as a detector's), with the file's track ids as
``Detection.track_id``, so voting, scheduling, best views and summaries follow the annotated tracks as
they follow ``Detection2D.id`` in a bag. Stamps are the frames' presentation times (``DecodeOptions.base_ns``
+ pts; 0 at the first frame by default), frame_index the video's frame number, time_ns the stamp.

Only frames with boxes are handed on (nothing else could be classified; no detection comes of them),
unless ``all_frames`` (an annotated video or an output bag with images needs every frame). The decoder
still decodes every frame (inter-frame coding), but converts to RGB in its decode-ahead thread only the
frames handed on. A truncated file ends the iteration after its last good frame: ``error`` holds the
``VideoTruncatedError`` (naming that frame), so everything before it is still processed and written.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path

from pose_classifier_ros.stream.pairing import Pair
from pose_classifier_ros.stream.source_frame import SourceFrame
from pose_classifier_ros.video.decode import DecodeOptions, VideoReader
from pose_classifier_ros.video.probe import VideoTruncatedError
from pose_classifier_ros.video.tracks import FitCounts, Tracks, fit_to_video

_logger = logging.getLogger(__name__)


class TrackSizeError(ValueError):
    """The track file states a frame size other than the video's (its boxes are in other coordinates)."""


class VideoSource:
    """Iterate once for the SourceFrames of `path` with the boxes of `tracks`.

    Opening checks the file (video.probe.VideoOpenError) and fits the tracks to the frame (in place:
    boxes clamped or dropped, counted in ``fit``); TrackSizeError when the track file states another frame
    size. After iteration: ``stats`` (counters, see STATS), ``decode`` (the reader's DecodeStats), ``error``
    (VideoTruncatedError or None), ``last_time_ns`` (stamp of the last frame decoded).
    """

    STATS = (
        "frames_decoded",  # frames yielded by the reader in [start, end) on the stride
        "frames_with_boxes",  # of those, frames with at least one track box
        "boxes",  # track boxes handed to the pipeline
        "boxes_out_of_range",  # track boxes on frames before start, after end or off the stride
        "boxes_beyond_video",  # track boxes on frames the video does not have
        "boxes_not_reached",  # track boxes after the last good frame of a truncated video
    )

    def __init__(
        self,
        path: str | Path,
        tracks: Tracks,
        options: DecodeOptions | None = None,
        *,
        all_frames: bool = False,
        progress: bool = False,
    ):
        self.path = Path(path)
        self.tracks = tracks
        self.all_frames = all_frames
        self.progress = progress
        self.reader = VideoReader(self.path, options, convert=self._wanted)
        self.info = self.reader.info
        self.options = self.reader.options
        try:
            self._check_size()
            self.fit: FitCounts = fit_to_video(tracks, self.info.width, self.info.height, self.info.frame_count)
        except Exception:
            self.reader.close()
            raise
        self.stats = dict.fromkeys(self.STATS, 0)
        self.stats["boxes_beyond_video"] = self.fit.beyond_boxes
        self.error: VideoTruncatedError | None = None
        self.last_time_ns = 0
        self._handed: set[int] = set()

    @property
    def decode(self):
        return self.reader.stats

    def _check_size(self) -> None:
        w, h = self.tracks.width, self.tracks.height
        if w and h and (int(w), int(h)) != (self.info.width, self.info.height):
            raise TrackSizeError(
                f"tracks {self.tracks.source!r} are drawn on {w}x{h} frames but video {str(self.path)!r} is "
                f"{self.info.width}x{self.info.height}: its boxes are in other pixel coordinates (a task made from "
                "a resized copy of the video?); export the tracks from a task on this video"
            )

    def _wanted(self, index: int) -> bool:
        """convert(index) of the reader: RGB in the decode thread only for frames handed on."""
        return self.all_frames or bool(self.tracks.detections(index))

    def _expected_frames(self) -> int | None:
        info, opts = self.info, self.options
        if not info.frame_count:
            return None
        first = 0
        last = info.frame_count
        if info.average_rate:
            first = min(last, int(opts.start_s * float(info.average_rate)))
            if opts.end_s is not None:
                last = min(last, int(opts.end_s * float(info.average_rate)))
        return max(0, len(range(first + (-first) % opts.stride, last, opts.stride)))

    def __iter__(self) -> Iterator[SourceFrame]:
        from tqdm import tqdm

        bar = tqdm(
            total=self._expected_frames(),
            desc=f"replay {self.path.name}",
            unit="frame",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            for frame in self.reader:
                self.stats["frames_decoded"] += 1
                self.last_time_ns = frame.stamp_ns
                bar.update()
                boxes = self.tracks.detections(frame.index)
                if boxes:
                    self._handed.add(frame.index)
                    self.stats["frames_with_boxes"] += 1
                    self.stats["boxes"] += len(boxes)
                elif not self.all_frames:
                    continue
                detections = [copy.copy(d) for d in boxes]  # the pipeline's filter and tracker get their own
                yield SourceFrame(Pair(frame.stamp_ns, frame, detections, 0), frame.index, frame.stamp_ns)
        except VideoTruncatedError as exc:
            self.error = exc
            _logger.error("%s; the frames before it were processed", exc)
        finally:
            bar.close()
            self.reader.close()
        self._count_unused_boxes()

    def _count_unused_boxes(self) -> None:
        """Sort the track boxes the run did not hand on: past a truncation (not reached), past the last frame
        of a video without a frame count (beyond the video), else outside [start, end) or off the stride."""
        frame_count = self.info.frame_count
        last = self.reader.last_decoded
        for index, boxes in self.tracks.frames.items():
            if not boxes or index in self._handed or (frame_count is not None and index >= frame_count):
                continue  # handed on, or counted by fit_to_video as beyond the video
            after_last = last is None or index > last[0]
            if self.error is not None and after_last:
                self.stats["boxes_not_reached"] += len(boxes)
            elif frame_count is None and after_last and self.options.end_s is None:
                self.stats["boxes_beyond_video"] += len(boxes)
            else:
                self.stats["boxes_out_of_range"] += len(boxes)


__all__ = ["TrackSizeError", "VideoSource"]
