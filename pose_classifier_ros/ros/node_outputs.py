"""What the classifier node publishes for a frame, by path: the published frame and the classified frame.

``published`` (executor thread in scheduled mode, worker thread in every_frame): the ViewpointArray, the
annotation marker, the TrackSummaries of tracks that expired, and the frame's counters (latency, label
ages). ``classified`` (inference thread in scheduled mode, worker thread in every_frame): the debug images
and best-view candidates, both drawn from the decoded frame, and the inference counters. What is drawn or
encoded depends on who listens (the publishers' subscription counts), so nothing is built for nobody.
"""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from pose_classifier_ros.stream.scheduler import crop_counts
from pose_classifier_ros.visualization.annotations import annotation_types
from pose_classifier_ros.visualization.frame_visuals import FrameVisuals, VisualsConfig


class NodeOutputs:
    """The node's outputs of one activation. cfg: its NodeConfig; pubs: its lifecycle publishers by name;
    counters: its NodeCounters; logger: its logger; now_ns: () -> int, the node clock's now, ns (latency =
    now - image stamp)."""

    def __init__(self, cfg, pubs: dict, counters, logger, now_ns):
        self.pubs, self.counters, self.logger, self.now_ns = pubs, counters, logger, now_ns
        self.visuals = FrameVisuals(
            VisualsConfig(
                track_summaries=cfg.publish_track_summaries,
                best_views_dir=cfg.best_views.save_dir,
                jpeg_quality=cfg.debug_image.jpeg_quality,
                track_timeout_s=cfg.voting.track_timeout_s,
            ),
            annotation_types(),
        )
        counters.count("debug_images_encoded", 0)  # listed in diagnostics from the start

    def published(self, pair, result, message, stages_ms: dict) -> None:
        """Publish a frame's ViewpointArray and what goes with it; record its latency and label ages."""
        header = pair.image.header
        t0 = time.perf_counter()
        self.pubs["viewpoints"].publish(message)
        pub = self.pubs.get("annotations")
        if pub is not None and pub.get_subscription_count() > 0:  # about 5 ms for 8 animals: only when wanted
            pub.publish(self.visuals.annotation(result, header))
        self._publish_summaries(self.visuals.observe(result, header.frame_id))  # every published frame counts
        publish_ms = (time.perf_counter() - t0) * 1e3
        latency_ms = (self.now_ns() - pair.stamp_ns) / 1e6 if pair.stamp_ns else None
        ages = [(pair.stamp_ns - r.label_stamp_ns) * 1e-9 for r in result.results if r.label_stamp_ns is not None]
        counts = {
            "frames_processed": 1,
            "crops_skipped": result.skipped,
            "filtered": result.filtered,
            "viewpoints_unknown": sum(r.label_stamp_ns is None for r in result.results),
        }
        self.counters.record(counts, {**stages_ms, "publish": publish_ms}, latency_ms, ages)

    def classified(self, pair, frame: np.ndarray, result, cycle, decode_ms: float) -> None:
        """After a classification of `frame` ((H, W, 3) uint8 RGB): debug images, best views, counters."""
        self._publish_debug(frame, result, pair.image.header)
        self.visuals.consider(frame, result)  # best views from this classification's fresh labels
        stages = {"decode": decode_ms, **{f"inference.{k}": v for k, v in cycle.timings_ms.items()}}
        counts = {"inference_cycles": 1, "crops_classified": cycle.classified, **crop_counts(cycle.choices)}
        self.counters.record(counts, stages)

    def flush_track_summaries(self) -> None:
        """Deactivation: a TrackSummary for every track still alive (publishers are still enabled here)."""
        pub = self.pubs.get("track_summaries")
        for msg in self.visuals.flush():
            if pub is not None:
                try:
                    pub.publish(msg)
                except Exception as exc:  # shutting down: the context may be gone already
                    self.logger.debug(f"track summary not published at shutdown: {exc}")
                    break

    def _publish_summaries(self, summaries: list) -> None:
        pub = self.pubs.get("track_summaries")
        if pub is not None and summaries:
            for msg in summaries:
                pub.publish(msg)
            self.counters.count("track_summaries_published", len(summaries))

    def _publish_debug(self, frame: np.ndarray, result, header) -> None:
        """Draw the overlay once, and only when `debug_image` or `debug_image/compressed` has a subscriber."""
        raw, jpeg = self.pubs.get("debug_image"), self.pubs.get("debug_image_compressed")
        wants_raw = raw is not None and raw.get_subscription_count() > 0
        wants_jpeg = jpeg is not None and jpeg.get_subscription_count() > 0
        if not (wants_raw or wants_jpeg):
            return
        annotated = self.visuals.debug_rgb(frame, result)
        self.counters.count("debug_images_encoded")
        if wants_raw:
            height, width = annotated.shape[:2]
            msg = Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
            msg.data = annotated.tobytes()
            raw.publish(msg)
        if wants_jpeg:
            msg = CompressedImage(header=header, format="jpeg")
            msg.data = self.visuals.debug_jpeg(annotated)
            jpeg.publish(msg)


__all__ = ["NodeOutputs"]
