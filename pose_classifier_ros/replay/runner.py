"""The offline runner: paired frames from any source through the node's processing path, into sinks.

A source (bags/bag_source.BagSource, video/video_source.VideoSource) yields ``SourceFrame``s
(stream/source_frame.py) in order: a ``stream.pairing.Pair`` (image message or decoded image + list[Detection]) with its frame index and its
time in the source. ``run_frames`` calls ``FrameProcessor.step`` once per frame, as the node's every_frame
worker does (scheduled mode: under a simulated crop budget, CropBudget, in frame-stamp time, so replays
are deterministic), collects one ``DetectionRecord`` per published detection and hands every published
frame to the sinks (the output bag's viewpoints topic, the annotation / best-view outputs). Nothing here
knows where frames come from or where they go.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS, normalize_label
from pose_classifier_ros.stream.frame_processor import FrameProcessor, Step
from pose_classifier_ros.stream.scheduler import CropBudget, crop_counts
from pose_classifier_ros.stream.source_frame import SourceFrame

_logger = logging.getLogger(__name__)


@dataclass
class DetectionRecord:
    """One published detection of the replay (what the node would have published; the ViewpointArray's
    fields, as replay/detections_table.py writes them). == compares everything but the arrays."""

    stamp_ns: int
    frame_index: int
    track_id: str
    label: int | None  # per-frame class index (scheduled: possibly cached); None = UNKNOWN
    smoothed: int | None  # voted class index; None while the track has no vote
    true: int | None  # ground-truth class index, if known
    label_age_s: float | None = 0.0  # frame stamp - stamp of the frame `label` was computed on
    fresh: bool = True  # `label` was computed on this frame
    focused: bool = False  # the track was in the pipeline's focus on this frame (scheduled mode)
    box: np.ndarray | None = field(default=None, compare=False)  # (4,) float32 xyxy px, as the pipeline used it
    score: float = 1.0  # detection score
    probs: np.ndarray | None = field(default=None, compare=False)  # (8,) float32 scores of `label` (None: UNKNOWN)
    heading_deg: float | None = None  # of `probs` (labels.heading_from_probs), when the pipeline computed it
    smoothed_confidence: float | None = None  # of the vote (None without one)
    num_votes: int = 0
    track_heading_deg: float | None = None  # over the voted window (None without a vote)
    truncated: bool = False  # the padded crop is cut by the frame edge
    voted: bool = False  # this frame's label joined the vote


class FrameSink(Protocol):
    """Receives every published frame of a run (the Step holds its message, results and decoded frame)."""

    def on_frame(self, frame: SourceFrame, step: Step) -> None: ...


@dataclass
class RunResult:
    """What run_frames produced. stats: frames_processed, frames_skipped (every_frame: undecodable, nothing
    published), detections_classified / _skipped / _filtered; schedule: scheduled mode's settings and crop
    counts (None in every_frame mode); baseline_records: of the every_frame baseline, if one ran;
    track_classes: the class_id of each track's detections (first seen), e.g. a CVAT track's label."""

    records: list[DetectionRecord]
    stats: dict[str, int]
    schedule: dict[str, Any] | None = None
    baseline_records: list[DetectionRecord] = field(default_factory=list)
    last_time_ns: int = 0
    track_classes: dict[str, str] = field(default_factory=dict)  # track id -> detector class (species)


@dataclass
class ReplayResult:
    """A whole replay: records (one per published detection), stats (the report's "replay" counters), the
    output bag (None when not written), scheduled mode's section, the every_frame baseline, best views."""

    records: list[DetectionRecord]
    stats: dict[str, Any]
    out_bag: str | None
    schedule: dict[str, Any] | None = None  # scheduled mode: settings and crop counts
    baseline: ReplayResult | None = None  # every_frame run over the same frames, for comparison
    sightings: list = field(default_factory=list)  # best_views.Sighting per finished track (visuals on)
    track_classes: dict[str, str] = field(default_factory=dict)  # track id -> class (species), when known
    time_origin_ns: int = 0  # stamp that the per-detection table's time_s counts from


def records_of(result, frame_index: int, focused: frozenset[str] = frozenset()) -> list[DetectionRecord]:
    """DetectionRecords of one FrameResult; focused: the track ids in focus on this frame."""
    out = []
    for r in result.results:
        known = 0 <= int(r.label) < len(VIEWPOINTS)
        smoothed = r.smoothed if r.smoothed is not None and int(r.smoothed.num_votes) > 0 else None
        stamp = r.label_stamp_ns if r.label_stamp_ns is not None else (result.stamp_ns if known else None)
        track_heading = float(getattr(smoothed, "heading_deg", math.nan)) if smoothed is not None else math.nan
        out.append(
            DetectionRecord(
                result.stamp_ns,
                frame_index,
                str(r.track_id),
                normalize_label(int(r.label)) if known else None,
                normalize_label(int(smoothed.label)) if smoothed is not None else None,
                None,
                label_age_s=(result.stamp_ns - stamp) * 1e-9 if stamp is not None else None,
                fresh=bool(getattr(r, "fresh", True)) and known,
                focused=str(r.track_id) in focused,
                box=np.array(r.box, np.float32).reshape(4),
                score=float(r.detection_score),
                probs=np.array(r.probs, np.float32).reshape(-1) if known else None,
                heading_deg=getattr(r, "heading_deg", None) if known else None,
                smoothed_confidence=float(smoothed.confidence) if smoothed is not None else None,
                num_votes=int(smoothed.num_votes) if smoothed is not None else 0,
                track_heading_deg=track_heading if math.isfinite(track_heading) else None,
                truncated=bool(getattr(r, "truncated", False)),
                voted=bool(getattr(r, "voted", False)) and known,
            )
        )
    return out


def schedule_settings(pipeline, crops_per_second: float | None) -> dict[str, Any] | None:
    """The report's schedule settings and counters of a scheduled pipeline (None in every_frame mode)."""
    if pipeline.classifies_every_track:
        return None
    return dict(
        mode="scheduled",
        crops_per_second=crops_per_second,
        max_crops=pipeline.schedule.max_crops,
        box_change=pipeline.schedule.box_change,
        max_age_s=pipeline.schedule.max_age_s,
        focus_share=pipeline.schedule.focus_share,
        max_new_crops=pipeline.schedule.max_new_crops,
        crops_classified=0,
        crops_focus=0,
        crops_new=0,
        inference_cycles=0,
        undecodable_frames=0,
    )


def run_frames(
    frames: Iterable[SourceFrame],
    processor: FrameProcessor,
    *,
    crops_per_second: float | None = None,
    baseline=None,
    sinks: Sequence[FrameSink] = (),
) -> RunResult:
    """Step every frame through `processor` in order; records, counters, sinks.

    crops_per_second: scheduled mode's simulated budget (crops per second of frame-stamp time, unused budget
    carried forward up to schedule.max_crops; crops past it, new tracks, are a debt the next frames pay);
    None: schedule.max_crops crops every frame. The pipeline's focus (pipeline.focus: set by the source or
    pinned) is read per frame: records say whether their track was focused. baseline: an every_frame
    TrackPipeline stepped on the same frames, for comparison (its records: RunResult.baseline_records). Frames whose image
    cannot be decoded are logged: every_frame publishes nothing for them (frames_skipped), scheduled still
    publishes from track state (schedule["undecodable_frames"]).
    """
    pipeline = processor.pipeline
    baseline = FrameProcessor(baseline, processor.types) if baseline is not None else None
    schedule = schedule_settings(pipeline, crops_per_second)
    budget = (
        CropBudget(crops_per_second, cap=pipeline.schedule.max_crops)
        if schedule is not None and crops_per_second is not None
        else None
    )
    out = RunResult([], dict.fromkeys(("frames_processed", "frames_skipped", "detections_classified"), 0), schedule)
    out.stats.update(detections_skipped=0, detections_filtered=0)
    for source in frames:
        out.last_time_ns = source.time_ns
        for d in source.pair.detections:
            if d.track_id is not None and d.class_id and d.track_id not in out.track_classes:
                out.track_classes[str(d.track_id)] = str(d.class_id)
        if baseline is not None:
            base = baseline.step(source.pair)
            if base.result is not None:  # an undecodable frame is counted by the main run
                out.baseline_records += records_of(base.result, source.frame_index)
        max_crops = budget.take(source.pair.stamp_ns) if budget is not None else None
        step = processor.step(source.pair, max_crops)
        if step.message is None:
            out.stats["frames_skipped"] += 1
            _logger.warning("skipping frame: %s", step.error)
            continue
        if step.error is not None:
            schedule["undecodable_frames"] += 1
            _logger.warning("frame not classified: %s", step.error)
        focused = frozenset()
        if schedule is not None and pipeline.schedule.focus_share > 0:
            focused = pipeline.focus.tracks_at(source.pair.stamp_ns)
        if step.cycle is not None and schedule is not None:
            if budget is not None:
                budget.spend(len(step.cycle.choices))
            choices = step.cycle.choices
            schedule["crops_classified"] += len(choices)
            for name, n in crop_counts(choices).items():
                schedule[name] += n
            schedule["inference_cycles"] += bool(choices)
        result = step.result
        out.stats["frames_processed"] += 1
        out.stats["detections_classified"] += len(result.results)
        out.stats["detections_skipped"] += int(result.skipped)
        out.stats["detections_filtered"] += int(result.filtered)
        out.records += records_of(result, source.frame_index, focused)
        for sink in sinks:
            sink.on_frame(source, step)
    return out


@dataclass
class RunOutputs:
    """run_frames' result and the outputs it went into: visuals (bags.replay_visuals.ReplayVisuals or None),
    video (annotated_video.AnnotatedVideo or None), sightings (the best views; [] without visuals)."""

    run: RunResult
    visuals: Any = None
    video: Any = None
    sightings: list = field(default_factory=list)


def run_into_outputs(
    source,
    processor: FrameProcessor,
    *,
    writer=None,
    typestore=None,
    viewpoints_topic: str = "/viewpoints",
    copy_topics: Iterable = (),
    images_topic: str | None = None,
    visuals=None,
    input_topics: Iterable[str] = (),
    annotated_video=None,
    video_rate_hz: float | None = None,
    crops_per_second: float | None = None,
    baseline=None,
) -> RunOutputs:
    """run_frames of any source into a replay's outputs, closing the writer and the video whatever happens.

    writer: the output bag (bags.bagio writer) or None; it gets copy_topics (the input bag's connections, to
    copy its messages through), the viewpoints topic and, with images_topic, the frames as JPEG.
    visuals: a ReplayVisualsConfig (typestore: the messages' types; input_topics: the input's topics, which
    its output topics must not clash with). annotated_video: a path for every published frame with the
    overlay, at video_rate_hz (None: 30). crops_per_second / baseline: as run_frames.
    """
    from pose_classifier_ros.bags.replay_visuals import ImagesTopic, ReplayVisuals, ViewpointsTopic
    from pose_classifier_ros.replay.annotated_video import AnnotatedVideo

    out = RunOutputs(RunResult([], {}))
    try:
        sinks: list = []
        if writer is not None:
            for conn in copy_topics:
                writer.add_topic(conn.topic, conn.msgtype, like=conn)
            sinks.append(ViewpointsTopic(writer, viewpoints_topic))
            if images_topic is not None:
                sinks.append(ImagesTopic(writer, images_topic))
        if visuals is not None:
            out.visuals = ReplayVisuals(visuals, typestore, writer, input_topics)
            sinks.append(out.visuals)
        if annotated_video is not None:
            out.video = AnnotatedVideo(annotated_video, rate_hz=video_rate_hz)
            sinks.append(out.video)
        out.run = run_frames(source, processor, crops_per_second=crops_per_second, baseline=baseline, sinks=sinks)
        if out.visuals is not None:
            out.sightings = out.visuals.finish(source.last_time_ns)
    finally:
        if out.video is not None:
            out.video.close()
        if writer is not None:
            writer.close()
    return out


def calibration_crops(frames, crop=None, limit: int = 8) -> list:
    """Up to `limit` crops ((h, w, 3) uint8 RGB: padded, clamped boxes, as the classifier crops them) of the
    first paired frames of `frames` (SourceFrames of any source: bag or video): the real crops
    ``backend: auto`` measures on. Undecodable frames are skipped; [] when no frame has a valid box."""
    import numpy as np

    from pose_classifier_ros.model.preprocess import CropConfig, expand_and_clamp_boxes
    from pose_classifier_ros.stream.frame_processor import FrameDecodeError, decode_image

    crops: list = []
    for source_frame in frames:
        pair = source_frame.pair
        if not pair.detections:
            continue
        try:
            frame = decode_image(pair)
        except FrameDecodeError:
            continue  # skipped, as in the replay itself
        boxes = np.stack([d.box for d in pair.detections]).astype(np.float32)
        boxes_int, valid = expand_and_clamp_boxes(boxes, frame.shape[1], frame.shape[0], crop or CropConfig())
        crops += [frame[y1:y2, x1:x2].copy() for x1, y1, x2, y2 in boxes_int[valid]]
        if len(crops) >= limit:
            break
    return crops[:limit]


__all__ = [
    "DetectionRecord",
    "FrameSink",
    "ReplayResult",
    "RunOutputs",
    "RunResult",
    "SourceFrame",
    "calibration_crops",
    "records_of",
    "run_frames",
    "run_into_outputs",
]
