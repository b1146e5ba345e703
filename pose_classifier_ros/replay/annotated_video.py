"""`--annotated-video OUT.mp4`: every published frame with the node's overlay, encoded with PyAV.

A replay sink (replay/runner.FrameSink). The overlay is the node's debug image: boxes coloured by viewpoint
and ``<track> <voted viewpoint>`` labels (visualization.annotations: build_overlay + render_overlay), so
the video shows what the node would have drawn live. Frames keep their stamps as presentation times
(from the first frame written), so a variable-frame-rate input stays so and a ``--stride`` run plays at
the right speed with fewer frames.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pose_classifier_ros.stream.frame_processor import FrameDecodeError, decode_image
from pose_classifier_ros.video.encode import TIME_BASE, VideoEncoder
from pose_classifier_ros.visualization.annotations import build_overlay, render_overlay

_logger = logging.getLogger(__name__)


def _even(image: np.ndarray) -> np.ndarray:
    """Pad odd widths/heights by one edge pixel (yuv420p needs even sizes)."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return image


class AnnotatedVideo:
    """Sink writing `path` (the container from its extension, .mp4 usually). rate_hz: the nominal rate the
    stream declares (frames carry their own times; None or 0: 30); codec / crf: as video.encode.VideoEncoder."""

    def __init__(self, path: str | Path, rate_hz: float | None = 30.0, codec: str = "libx264", crf: int = 20):
        self.path = Path(path)
        self.rate_hz = float(rate_hz) if rate_hz and rate_hz > 0 else 30.0
        self.codec, self.crf = codec, crf
        self.frames_written = 0
        self.frames_skipped = 0  # undecodable frames (a bag's broken image)
        self._encoder: VideoEncoder | None = None
        self._first_ns: int | None = None
        self._last_pts = -1

    def on_frame(self, frame, step) -> None:
        """One published frame (SourceFrame, stream.frame_processor.Step): draw its results on its image."""
        image = step.frame
        if image is None:  # scheduled mode with no crop this frame: the frame was not decoded for the model
            try:
                image = decode_image(frame.pair)
            except FrameDecodeError as exc:
                self.frames_skipped += 1
                _logger.warning("annotated video: frame %d left out: %s", frame.frame_index, exc)
                return
        rgb = _even(render_overlay(image, build_overlay(step.result)))
        if self._encoder is None:
            self._first_ns = int(frame.pair.stamp_ns)
            self._encoder = VideoEncoder(
                self.path, rgb.shape[1], rgb.shape[0], self.rate_hz, codec=self.codec, crf=self.crf, gop=30
            )
        elif (rgb.shape[1], rgb.shape[0]) != (self._encoder.width, self._encoder.height):
            self.frames_skipped += 1
            _logger.warning("annotated video: frame %d has another size; left out", frame.frame_index)
            return
        pts = int(round((int(frame.pair.stamp_ns) - self._first_ns) * 1e-9 / TIME_BASE))
        pts = max(pts, self._last_pts + 1)  # presentation times must increase (a reordered or repeated stamp)
        self._encoder.write(rgb, pts)
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> Path | None:
        """Finish the file; its path, None when no frame was written."""
        if self._encoder is None:
            return None
        self._encoder.close()
        return self.path


__all__ = ["AnnotatedVideo"]
