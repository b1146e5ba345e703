"""`pose-classifier replay BAG`: classify a recorded flight offline, write an output bag and a report.

Runs the node's own StampPairer + TrackPipeline (no second implementation of pairing, cropping,
classification or voting) over the bag's image and detection topics, in bag order, and writes a new
bag (MCAP by default) holding the original topics plus ``/viewpoints``
(pose_classifier_ros/msg/ViewpointArray, header copied from the image, written when the pair completes).

With ground truth (a CSV ``stamp_ns|frame_index,track_id,pose``, or a ViewpointArray topic in the
bag such as the sample bag's ``/ground_truth/viewpoints``) it reports per-frame and smoothed
classification metrics and per-track flip rates in the `evaluate` CLI's schema::

    {"per_frame": classification_report, "smoothed": classification_report,
     "temporal": {"per_frame": flip_rate, "smoothed": flip_rate}, "replay": {...counters...}}

written as metrics.json, report.txt, confusion_matrix.png and track_timeline.png (``--report-dir``).

Three parts: bags/bag_source.py yields the bag's paired frames, replay/runner.py steps them through
the pipeline into sinks (here the output bag's topics), replay/report.py writes the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pose_classifier_ros.bags.bag_source import BagSource
from pose_classifier_ros.bags.bagio import BagError, open_reader, open_writer
from pose_classifier_ros.replay.ground_truth import GroundTruth
from pose_classifier_ros.replay.runner import ReplayResult, calibration_crops, run_into_outputs


def bag_calibration_crops(
    bag_path: str | Path, image_topic: str, detections_topic: str, pairing=None, crop=None, limit: int = 8
) -> list:
    """calibration_crops of a bag's first paired frames ([] when a topic is missing: auto then measures on
    synthetic crops)."""
    with open_reader(bag_path) as reader:
        try:
            source = BagSource(reader, image_topic=image_topic, detections_topic=detections_topic, pairing=pairing)
        except BagError:
            return []
        return calibration_crops(source, crop, limit)


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
    focus_topic: str | None = None,
    annotated_video: str | Path | None = None,
) -> ReplayResult:
    """Run ``pipeline`` (a TrackPipeline) over a bag; optionally write ``out_path`` (a new bag dir).

    every_frame pipeline: every crop of every frame. scheduled: each frame publishes from track state after
    an inference cycle on it that classifies as many crops as a simulated budget of ``crops_per_second``
    allows over the frame interval, unused budget carried forward up to schedule.max_crops; without a
    budget, schedule.max_crops crops per frame. Deterministic: frame stamps, not the wall clock, drive the
    budget. baseline: an every_frame TrackPipeline run on the same frames for comparison (result.baseline).
    visuals: a bags.replay_visuals.ReplayVisualsConfig to write the annotation topic and track summaries and
    collect best views (result.sightings). annotated_video: write every published frame with the node's
    overlay there (replay/annotated_video.py). focus_topic: a recorded PolicyState topic whose targets set
    pipeline.focus in bag order (scheduled mode: the target gets schedule.focus_share of each cycle, as
    live); a focus pinned on pipeline.focus beforehand works without one (`replay --focus-track`).

    Raises BagError for unreadable bags and missing topics. Frames whose image cannot be decoded
    (unsupported encoding, wrong data size) are logged and skipped (scheduled: their message, built from
    track state, is still written, as the live node publishes it).
    """
    from pose_classifier_ros.stream.conversions import message_types
    from pose_classifier_ros.stream.frame_processor import FrameProcessor

    with open_reader(bag_path) as reader:
        source = BagSource(
            reader,
            image_topic=image_topic,
            detections_topic=detections_topic,
            pairing=pairing,
            ground_truth_topic=ground_truth_topic,
            progress=progress,
            focus_topic=focus_topic,
            focus=pipeline.focus if focus_topic is not None else None,
        )
        if viewpoints_topic in reader.topics:
            raise BagError(
                f"bag {str(bag_path)!r} already has a {viewpoints_topic!r} topic; "
                f"choose another output topic with --viewpoints-topic"
            )
        writer = open_writer(out_path, storage=storage) if out_path is not None else None
        source.on_message = writer.write if writer is not None else None
        outputs = run_into_outputs(
            source,
            FrameProcessor(pipeline, message_types(reader.typestore)),
            writer=writer,
            typestore=reader.typestore,
            viewpoints_topic=viewpoints_topic,
            copy_topics=reader.connections,
            visuals=visuals,
            input_topics=reader.topics,
            annotated_video=annotated_video,
            crops_per_second=crops_per_second,
            baseline=baseline,
        )

    run, vis = outputs.run, outputs.visuals
    stats = _stats(source, run, vis)
    if outputs.video is not None:
        stats["annotated_frames"] = outputs.video.frames_written
    records, baseline_records = run.records, run.baseline_records
    if source.ground_truth or ground_truth is not None:
        gt = ground_truth or GroundTruth(by_stamp=source.ground_truth, source=f"bag topic {ground_truth_topic}")
        gt.label(records, baseline_records, stats)
    base = ReplayResult(baseline_records, {"mode": "every_frame"}, None) if baseline is not None else None
    return ReplayResult(
        records,
        stats,
        str(out_path) if out_path is not None else None,
        schedule=run.schedule,
        baseline=base,
        sightings=outputs.sightings,
        track_classes=run.track_classes,
        time_origin_ns=min((r.stamp_ns for r in records), default=0),
    )


def _stats(source: BagSource, run, vis) -> dict[str, Any]:
    """The report's "replay" counters, in the report's order."""
    src, frames = source.stats, run.stats
    stats: dict[str, Any] = dict(images=src["images"], detection_msgs=src["detection_msgs"])
    if source.focus_topic is not None:
        stats["focus_msgs"] = src["focus_msgs"]
    stats.update(frames)
    stats["bad_messages"] = src["bad_messages"]
    if vis is not None:
        stats.update(annotations_written=vis.annotations_written, track_summaries=vis.summaries_written)
    stats["pairing"] = dict(source.pairer.stats)
    stats["unpaired_images"] = (
        stats["images"] - stats["bad_messages"] - stats["frames_processed"] - stats["frames_skipped"]
    )
    return stats


__all__ = ["bag_calibration_crops", "replay_bag"]
