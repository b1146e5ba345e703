"""The node's visual outputs of a processed frame, ROS-free: annotation marker, debug images, track summaries.

The node calls it after publishing the ViewpointArray (observe) and after classifying a frame (consider); what is built depends on who listens (the
node asks its publishers' subscription counts), so nothing is drawn or encoded for nobody. Message classes
come in through ``stream.annotations.annotation_types`` (rclpy here, rosbags in tests).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from pose_classifier_ros.stream.image_codec import encode_compressed
from pose_classifier_ros.visualization.annotations import build_overlay, frame_result_to_image_marker, render_overlay
from pose_classifier_ros.visualization.best_views import (
    BestViewConfig,
    BestViewTracker,
    SightingWriter,
    sighting_to_msg,
)

_logger = logging.getLogger(__name__)


@dataclass
class VisualsConfig:
    """track_summaries: keep per-track best views and publish a TrackSummary on expiry; best_views_dir:
    also save each finished track's crops and a sightings.csv row there ("" = off); jpeg_quality: 1..100."""

    track_summaries: bool = True
    best_views_dir: str = ""
    jpeg_quality: int = 80
    track_timeout_s: float = 2.0


class FrameVisuals:
    """Per-frame annotation/debug-image builders and the best-view tracker of one activation."""

    def __init__(self, cfg: VisualsConfig, types):
        self.cfg = cfg
        self.types = types
        tracking = cfg.track_summaries or bool(cfg.best_views_dir)
        self.tracker = (
            BestViewTracker(BestViewConfig(keep_crops=bool(cfg.best_views_dir), timeout_s=cfg.track_timeout_s))
            if tracking
            else None
        )
        self.writer = SightingWriter(cfg.best_views_dir) if cfg.best_views_dir else None
        self.debug_images_encoded = 0
        self._lock = threading.Lock()  # scheduled mode: the executor thread observes, the inference thread considers

    def annotation(self, result, header):
        """The frame's ImageMarker (LINE_LIST of boxes and labels), `header` = the image's."""
        return frame_result_to_image_marker(result, header, self.types)

    def debug_rgb(self, frame: np.ndarray, result) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame with the annotation overlay burnt in."""
        self.debug_images_encoded += 1
        return render_overlay(frame, build_overlay(result))

    def debug_jpeg(self, rgb: np.ndarray) -> bytes:
        return encode_compressed(rgb, "jpeg", quality=int(self.cfg.jpeg_quality))

    def observe(self, result, frame_id: str = "") -> list:
        """Count a published frame (the node's publishing path); TrackSummary messages of the expired tracks."""
        if self.tracker is None:
            return []
        with self._lock:
            sightings = self.tracker.observe(result, frame_id)
        return self._summaries(sightings)

    def consider(self, frame: np.ndarray, result) -> None:
        """Best-view candidates from the result after a classification of `frame` (the node's classifying path;
        call observe() for the frame first)."""
        if self.tracker is not None:
            with self._lock:
                self.tracker.consider(frame, result)

    def flush(self) -> list:
        """TrackSummary messages of every live track (deactivation)."""
        if self.tracker is None:
            return []
        with self._lock:
            sightings = self.tracker.flush()
        return self._summaries(sightings)

    def _summaries(self, sightings) -> list:
        if self.writer is not None:
            for s in sightings:
                try:
                    self.writer.write(s)
                except OSError as exc:  # a full or read-only disk must not stop the classifier
                    _logger.warning("cannot save best views of track %s in %s: %s", s.track_id, self.writer.out, exc)
        if not self.cfg.track_summaries:
            return []
        return [sighting_to_msg(s, self.types) for s in sightings]


__all__ = ("FrameVisuals", "VisualsConfig")
