"""`pose-classifier replay BAG`: classify a recorded flight offline, write an output bag and a report.

Runs the node's own StampPairer + ViewpointPipeline (no second implementation of pairing, cropping,
classification or voting) over the bag's image and detection topics, in bag order, and writes a new
bag (MCAP by default) holding the original topics plus ``/viewpoints``
(pose_classifier_ros/msg/ViewpointArray, header copied from the image, written when the pair completes).

With ground truth (a CSV ``stamp_ns|frame_index,track_id,pose``, or a ViewpointArray topic in the
bag such as the sample bag's ``/ground_truth/viewpoints``) it reports per-frame and smoothed
classification metrics and per-track flip rates in the `evaluate` CLI's schema::

    {"per_frame": classification_report, "smoothed": classification_report,
     "temporal": {"per_frame": flip_rate, "smoothed": flip_rate}, "replay": {...counters...}}

written as metrics.json, report.txt, confusion_matrix.png and track_timeline.png (``--report-dir``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.bags.bagio import BagError, open_reader, open_writer
from pose_classifier_ros.bags.ground_truth import GroundTruth
from pose_classifier_ros.labels import VIEWPOINTS, normalize_label

_logger = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
VIEWPOINTS_TYPE = "pose_classifier_ros/msg/ViewpointArray"


@dataclass
class DetectionRecord:
    """One published detection of the replay (what the node would have published)."""

    stamp_ns: int
    frame_index: int
    track_id: str
    label: int | None  # per-frame class index (scheduled: possibly cached); None = UNKNOWN
    smoothed: int | None  # voted class index; None while the track has no vote
    true: int | None  # ground-truth class index, if known
    label_age_s: float | None = 0.0  # frame stamp - stamp of the frame `label` was computed on
    fresh: bool = True  # `label` was computed on this frame


@dataclass
class ReplayResult:
    records: list[DetectionRecord]
    stats: dict[str, Any]
    out_bag: str | None
    schedule: dict[str, Any] | None = None  # scheduled mode: settings and crop counts
    baseline: ReplayResult | None = None  # every_frame run over the same frames, for comparison
    sightings: list = field(default_factory=list)  # best_views.Sighting per finished track (visuals on)


def records_of(result, frame_index: int) -> list[DetectionRecord]:
    """DetectionRecords of one FrameResult (every_frame or scheduled)."""
    out = []
    for r in result.results:
        known = 0 <= int(r.label) < len(VIEWPOINTS)
        smoothed = r.smoothed if r.smoothed is not None and int(r.smoothed.num_votes) > 0 else None
        stamp = r.label_stamp_ns if r.label_stamp_ns is not None else (result.stamp_ns if known else None)
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
            )
        )
    return out


def calibration_crops(
    bag_path: str | Path,
    image_topic: str,
    detections_topic: str,
    pairing=None,
    crop=None,
    limit: int = 8,
) -> list:
    """Up to `limit` crops ((h, w, 3) uint8 RGB: padded, clamped boxes, as the classifier crops them) of
    the bag's first paired frames: the real crops ``backend: auto`` measures on. Undecodable images and
    malformed messages are skipped; [] when the bag has no paired frame with a valid box."""
    import numpy as np

    from pose_classifier_ros.model.preprocess import CropConfig, expand_and_clamp_boxes
    from pose_classifier_ros.stream.conversions import detections_from_msg, image_from_msg, stamp_to_ns
    from pose_classifier_ros.stream.pairing import PairingConfig, StampPairer

    pairer, crops = StampPairer(pairing or PairingConfig()), []
    with open_reader(bag_path) as reader:
        for topic, _, raw, msgtype in reader.messages():
            if topic not in (image_topic, detections_topic):
                continue
            try:
                msg = reader.deserialize(raw, msgtype)
                if topic == image_topic:
                    pairs = pairer.add_image(stamp_to_ns(msg.header.stamp), msg)
                else:
                    pairs = pairer.add_detections(stamp_to_ns(msg.header.stamp), detections_from_msg(msg))
                for pair in pairs:
                    if not pair.detections:
                        continue
                    frame = image_from_msg(pair.image)
                    boxes = np.stack([d.box for d in pair.detections]).astype(np.float32)
                    boxes_int, valid = expand_and_clamp_boxes(
                        boxes, frame.shape[1], frame.shape[0], crop or CropConfig()
                    )
                    crops += [frame[y1:y2, x1:x2].copy() for x1, y1, x2, y2 in boxes_int[valid]]
            except Exception as exc:  # a bad message is skipped, as in the replay itself
                _logger.debug("calibration crops: skipping a message: %s", exc)
            if len(crops) >= limit:
                break
    return crops[:limit]


def replay_bag(
    bag_path: str | Path,
    pipeline,
    *,
    out_path: str | Path | None = None,
    image_topic: str = "/camera/image_raw",
    detections_topic: str = "/detections",
    viewpoints_topic: str = "/viewpoints",
    pairing=None,
    ground_truth: GroundTruth | None = None,
    ground_truth_topic: str | None = None,
    storage: str = "mcap",
    progress: bool = True,
    crops_per_second: float | None = None,
    baseline=None,
    visuals=None,
) -> ReplayResult:
    """Run ``pipeline`` over a bag; optionally write ``out_path`` (a new bag dir).

    pipeline: a ViewpointPipeline (every_frame: every crop of every frame) or a ScheduledPipeline
    (scheduled: each frame publishes from track state after an inference cycle on it that classifies as
    many crops as a simulated budget of ``crops_per_second`` allows over the frame interval, unused budget
    carried forward up to schedule.max_crops; without a budget, schedule.max_crops crops per frame).
    Deterministic: frame stamps, not the wall clock, drive the budget. baseline: a ViewpointPipeline run on
    the same frames for comparison (result.baseline). visuals: a bags.replay_visuals.ReplayVisualsConfig to
    write the annotation topic and track summaries and collect best views (result.sightings).

    Raises BagError for unreadable bags and missing topics. Frames whose image cannot be decoded
    (unsupported encoding, wrong data size) are logged and skipped (scheduled: their message, built from
    track state, is still written, as the live node publishes it).
    """
    from tqdm import tqdm

    from pose_classifier_ros.bags.replay_visuals import ReplayVisuals
    from pose_classifier_ros.stream.conversions import detections_from_msg, message_types, stamp_to_ns
    from pose_classifier_ros.stream.frame_processor import FrameDecodeError, FrameProcessor
    from pose_classifier_ros.stream.pairing import PairingConfig, StampPairer
    from pose_classifier_ros.stream.scheduler import CropBudget

    pairer = StampPairer(pairing or PairingConfig())
    records: list[DetectionRecord] = []
    baseline_records: list[DetectionRecord] = []
    stats = dict(
        images=0,
        detection_msgs=0,
        frames_processed=0,
        frames_skipped=0,
        detections_classified=0,
        detections_skipped=0,
        detections_filtered=0,
        bad_messages=0,
    )
    frame_index_of: dict[int, int] = {}
    bag_gt: dict[tuple[int, str], int] = {}

    with open_reader(bag_path) as reader:
        reader.require_topic(image_topic, IMAGE_TYPES)
        reader.require_topic(detections_topic, (DETECTIONS_TYPE,))
        if ground_truth_topic is not None:
            reader.require_topic(ground_truth_topic, (VIEWPOINTS_TYPE,))
        if viewpoints_topic in reader.topics:
            raise BagError(
                f"bag {str(bag_path)!r} already has a {viewpoints_topic!r} topic; "
                f"choose another output topic with --viewpoints-topic"
            )
        writer = open_writer(out_path, storage=storage) if out_path is not None else None
        processor = FrameProcessor(pipeline, message_types(reader.typestore))
        baseline_processor = FrameProcessor(baseline, processor.types) if baseline is not None else None
        budget = None
        if processor.scheduled:
            schedule = dict(
                mode="scheduled",
                crops_per_second=crops_per_second,
                max_crops=pipeline.schedule.max_crops,
                box_change=pipeline.schedule.box_change,
                max_age_s=pipeline.schedule.max_age_s,
                crops_classified=0,
                inference_cycles=0,
                undecodable_frames=0,
            )
            if crops_per_second is not None:
                budget = CropBudget(crops_per_second, cap=pipeline.schedule.max_crops)
        else:
            schedule = None
        try:
            if writer is not None:
                for conn in reader.connections:
                    writer.add_topic(conn.topic, conn.msgtype, like=conn)
                writer.add_topic(viewpoints_topic, VIEWPOINTS_TYPE)
            vis = ReplayVisuals(visuals, reader.typestore, writer, reader.topics) if visuals is not None else None
            total = reader.topics[image_topic].count
            bar = tqdm(total=total, desc="replay", unit="frame", disable=not progress, dynamic_ncols=True)
            started = time.monotonic()
            for topic, bag_ns, raw, msgtype in reader.messages():
                if writer is not None:
                    writer.write(topic, bag_ns, raw)
                pairs = []
                if topic == image_topic:
                    stats["images"] += 1
                    bar.update()
                    try:
                        msg = reader.deserialize(raw, msgtype)
                    except BagError as exc:
                        _logger.warning("skipping an image: %s", exc)
                        stats["bad_messages"] += 1
                        continue
                    stamp = stamp_to_ns(msg.header.stamp)
                    frame_index_of[stamp] = stats["images"] - 1
                    pairs = pairer.add_image(stamp, msg)
                elif topic == detections_topic:
                    stats["detection_msgs"] += 1
                    try:
                        msg = reader.deserialize(raw, msgtype)
                        detections = detections_from_msg(msg)
                    except Exception as exc:  # malformed message: skip, as the node does
                        _logger.warning("skipping a detections message: %s", exc)
                        stats["bad_messages"] += 1
                        continue
                    pairs = pairer.add_detections(stamp_to_ns(msg.header.stamp), detections)
                elif topic == ground_truth_topic:
                    msg = reader.deserialize(raw, msgtype)
                    for vp in msg.viewpoints:
                        bag_gt[(stamp_to_ns(msg.header.stamp), str(vp.track_id))] = int(vp.label)
                for pair in pairs:
                    frame_index = frame_index_of.get(pair.stamp_ns, -1)
                    if baseline_processor is not None:
                        try:
                            baseline_records += records_of(baseline_processor.process(pair).result, frame_index)
                        except FrameDecodeError:
                            pass  # counted by the main run
                    frame = classified = None
                    if schedule is not None:
                        result, message, frame, classified = _scheduled_step(processor, pair, budget, schedule)
                    else:
                        try:
                            out = processor.process(pair)
                        except FrameDecodeError as exc:
                            stats["frames_skipped"] += 1
                            _logger.warning("skipping frame: %s", exc)
                            continue
                        result, message, frame = out.result, out.message, out.frame
                    stats["frames_processed"] += 1
                    stats["detections_classified"] += len(result.results)
                    stats["detections_skipped"] += int(result.skipped)
                    stats["detections_filtered"] += int(getattr(result, "filtered", 0))
                    records += records_of(result, frame_index)
                    if writer is not None:
                        writer.write(viewpoints_topic, bag_ns, message)
                    if vis is not None:
                        vis.on_frame(bag_ns, frame, result, pair.image.header, classified)
                if stats["images"] % 5 == 0:
                    rate = stats["frames_processed"] / max(time.monotonic() - started, 1e-6)
                    bar.set_postfix(classified=stats["frames_processed"], fps=f"{rate:.1f}", refresh=False)
            bar.close()
            if vis is not None:
                sightings = vis.finish(bag_ns if stats["images"] else 0)
                stats.update(annotations_written=vis.annotations_written, track_summaries=vis.summaries_written)
        finally:
            if writer is not None:
                writer.close()

    stats["pairing"] = dict(getattr(pairer, "stats", {}) or {})
    stats["unpaired_images"] = (
        stats["images"] - stats["bad_messages"] - stats["frames_processed"] - stats["frames_skipped"]
    )
    if bag_gt or ground_truth is not None:
        gt = ground_truth or GroundTruth(by_stamp=bag_gt, source=f"bag topic {ground_truth_topic}")
        for rec in records + baseline_records:
            rec.true = gt.lookup(rec.stamp_ns, rec.frame_index, rec.track_id)
        stats["ground_truth_source"] = gt.source
        stats["ground_truth_matched"] = sum(r.true is not None for r in records)
    base = ReplayResult(baseline_records, {"mode": "every_frame"}, None) if baseline is not None else None
    return ReplayResult(
        records,
        stats,
        str(out_path) if out_path is not None else None,
        schedule=schedule,
        baseline=base,
        sightings=sightings if visuals is not None else [],
    )


def _scheduled_step(processor, pair, budget, schedule: dict):
    """One frame in scheduled mode: the budget's crops of this frame classified, then its message.

    Returns (published result, message, decoded frame or None, result after this frame's inference or None).
    """
    crops = budget.take(pair.stamp_ns) if budget is not None else schedule["max_crops"]
    published, inferred, error = processor.step(pair, crops)
    if error is not None:
        schedule["undecodable_frames"] += 1
        _logger.warning("frame not classified: %s", error)
    if inferred is not None:
        if budget is not None:
            budget.spend(len(inferred.cycle.choices))
        schedule["crops_classified"] += len(inferred.cycle.choices)
        schedule["inference_cycles"] += bool(inferred.cycle.choices)
    classified = processor.pipeline.result(published.observed) if inferred is not None else None
    return published.result, published.message, getattr(inferred, "frame", None), classified
