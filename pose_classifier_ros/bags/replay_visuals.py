"""What a replay writes into its output bag beside the input topics (ViewpointsTopic: the ViewpointArray of
every published frame), and what it adds for looking at a flight: the annotation topic, track summaries
and best views.

``ReplayVisuals.on_frame`` is called once per published frame (a replay_runner sink, after the
ViewpointArray is written): it writes the frame's ImageMarker (visualization/annotations.py, the node's own overlay) with the image header,
feeds the BestViewTracker and writes a TrackSummary for every track that expired. ``finish`` flushes the
remaining tracks, so every track of the flight gets exactly one summary and one sightings.csv row.
"""

from __future__ import annotations

from dataclasses import dataclass

from pose_classifier_ros.bags.bag_source import VIEWPOINTS_TYPE
from pose_classifier_ros.bags.bagio import BagError
from pose_classifier_ros.visualization.annotations import annotation_types, frame_result_to_image_marker
from pose_classifier_ros.visualization.best_views import BestViewConfig, BestViewTracker, Sighting, sighting_to_msg

ANNOTATIONS_TYPE = "visualization_msgs/msg/ImageMarker"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TRACK_SUMMARY_TYPE = "pose_classifier_ros/msg/TrackSummary"


@dataclass
class ReplayVisualsConfig:
    """annotations_topic / summaries_topic: output bag topics ("" = not written); best_views: track best
    views (needed for --best-views, the contact sheet and the summaries); keep_crops: keep crop pixels."""

    annotations_topic: str = "/annotations"
    summaries_topic: str = "/track_summaries"
    best_views: bool = True
    keep_crops: bool = True
    timeout_s: float = 2.0


class ViewpointsTopic:
    """Sink: each published ViewpointArray into the output bag at its frame's bag time."""

    def __init__(self, writer, topic: str):
        self.writer, self.topic = writer, topic
        writer.add_topic(topic, VIEWPOINTS_TYPE)

    def on_frame(self, frame, step) -> None:
        """Sink of replay.runner.run_frames: frame (SourceFrame), step (stream.frame_processor.Step)."""
        self.writer.write(self.topic, frame.time_ns, step.message)


class ImagesTopic:
    """Sink: each published frame's image as a JPEG CompressedImage (header = the image's), for an output bag
    of a source without image messages (a video), so Foxglove shows the annotations on the frames."""

    def __init__(self, writer, topic: str, quality: int = 85):
        self.writer, self.topic, self.quality = writer, topic, int(quality)
        self.types = writer.typestore.types
        writer.add_topic(topic, COMPRESSED_IMAGE_TYPE)
        self.written = 0

    def on_frame(self, frame, step) -> None:
        """Sink of replay.runner.run_frames; frames whose image was not decoded are decoded here."""
        import numpy as np

        from pose_classifier_ros.stream.frame_processor import FrameDecodeError, decode_image
        from pose_classifier_ros.stream.image_codec import encode_compressed

        rgb = step.frame
        if rgb is None:
            try:
                rgb = decode_image(frame.pair)
            except FrameDecodeError:
                return
        data = np.frombuffer(encode_compressed(rgb, "jpeg", self.quality), np.uint8)
        msg = self.types[COMPRESSED_IMAGE_TYPE](header=frame.pair.image.header, format="jpeg", data=data)
        self.writer.write(self.topic, frame.time_ns, msg)
        self.written += 1


class ReplayVisuals:
    """Per-frame annotation + best-view bookkeeping of a replay; `writer` may be None (no output bag)."""

    def __init__(self, cfg: ReplayVisualsConfig, typestore, writer=None, input_topics=()):
        """input_topics: the input bag's topics; an output topic among them is a BagError (never mix types)."""
        clash = [t for t in (cfg.annotations_topic, cfg.summaries_topic) if t and t in set(input_topics)]
        if clash:
            raise BagError(
                f"the input bag already has topic(s) {', '.join(clash)}; choose other ones with "
                f'--annotations-topic / --summaries-topic ("" = not written)'
            )
        self.cfg = cfg
        self.types = annotation_types(typestore)
        self.writer = writer
        self.tracker = (
            BestViewTracker(BestViewConfig(keep_crops=cfg.keep_crops, timeout_s=cfg.timeout_s))
            if cfg.best_views
            else None
        )
        self.sightings: list[Sighting] = []
        self.annotations_written = 0
        self.summaries_written = 0
        if writer is not None:
            if cfg.annotations_topic:
                writer.add_topic(cfg.annotations_topic, ANNOTATIONS_TYPE)
            if cfg.summaries_topic and self.tracker is not None:
                writer.add_topic(cfg.summaries_topic, TRACK_SUMMARY_TYPE)

    def on_frame(self, frame, step) -> None:
        """Sink of replay_runner.run_frames: one published frame (SourceFrame) and its Step."""
        self.add_frame(frame.time_ns, step.frame, step.result, frame.pair.image.header)

    def add_frame(self, bag_ns: int, frame, result, header) -> None:
        """One published frame: (H, W, 3) uint8 RGB it was classified on (None if not decoded), its FrameResult
        and the image header; the annotation is written at bag_ns, best views come from the fresh labels."""
        if self.writer is not None and self.cfg.annotations_topic:
            self.writer.write(
                self.cfg.annotations_topic, bag_ns, frame_result_to_image_marker(result, header, self.types)
            )
            self.annotations_written += 1
        if self.tracker is not None:
            frame_id = str(getattr(header, "frame_id", ""))
            self._summaries(bag_ns, self.tracker.observe(result, frame_id))  # every published frame counts
            self.tracker.consider(frame, result)

    def finish(self, bag_ns: int) -> list[Sighting]:
        """Flush the live tracks (written at `bag_ns`); returns every Sighting of the replay."""
        if self.tracker is not None:
            self._summaries(bag_ns, self.tracker.flush())
        return self.sightings

    def _summaries(self, bag_ns: int, sightings: list[Sighting]) -> None:
        self.sightings += sightings
        if self.writer is not None and self.cfg.summaries_topic:
            for s in sightings:
                self.writer.write(self.cfg.summaries_topic, bag_ns, sighting_to_msg(s, self.types))
                self.summaries_written += 1


__all__ = (
    "ANNOTATIONS_TYPE",
    "COMPRESSED_IMAGE_TYPE",
    "TRACK_SUMMARY_TYPE",
    "ImagesTopic",
    "ReplayVisuals",
    "ReplayVisualsConfig",
    "ViewpointsTopic",
)
