"""`pose-classifier replay VIDEO --tracks TRACKS`: a field video and its track file through the node's pipeline.

The counterpart of replay/bag_replay.py for footage: video/video_source.VideoSource yields the frames the
tracks cover (decoded ahead in their own thread, stamped from presentation times), replay/runner.run_frames
steps them through the same FrameProcessor + TrackPipeline, into sinks: best views (ReplayVisuals), an
optional output bag (``--out``: /viewpoints, /annotations, /track_summaries, and with ``--write-images``
the frames as JPEG), an optional annotated video. Ground truth comes from the track file's per-box
attribute (``viewpoint`` by default) or a CSV keyed by (frame_index, track_id).

``load_video_inputs`` reads and checks the tracks and ground truth (before the slow model load);
``replay_video`` runs; ``video_calibration_crops`` gives backend auto its first crops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pose_classifier_ros.replay.ground_truth import GroundTruth
from pose_classifier_ros.replay.runner import ReplayResult, calibration_crops, run_into_outputs
from pose_classifier_ros.video.decode import DecodeOptions
from pose_classifier_ros.video.tracks import Tracks, load_tracks
from pose_classifier_ros.video.viewpoint_truth import DEFAULT_ATTRIBUTE, truth_from_attribute

_logger = logging.getLogger(__name__)


@dataclass
class VideoInputs:
    """What a video replay reads besides the video: tracks (Tracks), ground truth (None without) and where
    it came from in words."""

    tracks: Tracks
    ground_truth: GroundTruth | None


def load_video_inputs(
    tracks_path: Path,
    tracks_format: str | None = None,
    *,
    ground_truth_csv: GroundTruth | None = None,
    truth_attribute: str | None = None,
    unknown_truth: str = "error",
) -> VideoInputs:
    """Read the track file (video.tracks.TrackFormatError) and the ground truth: a --ground-truth CSV when
    given, else the per-box attribute `truth_attribute` (None: "viewpoint" when boxes carry it).

    ValueError when a named attribute is on no box; video.viewpoint_truth.UnknownViewpointError for values
    that are no viewpoint (unknown_truth="skip" drops those boxes' truth instead)."""
    tracks = load_tracks(tracks_path, tracks_format)
    if not tracks.num_boxes:
        raise ValueError(f"tracks {str(tracks_path)!r} hold no box ({tracks.summary()})")
    if ground_truth_csv is not None:
        if truth_attribute is not None:
            _logger.warning("--ground-truth given: the attribute %r of the tracks is not used", truth_attribute)
        return VideoInputs(tracks, ground_truth_csv)
    attribute = truth_attribute or DEFAULT_ATTRIBUTE
    truth = truth_from_attribute(tracks, attribute, on_unknown=unknown_truth)
    if not len(truth):
        if truth_attribute is not None:
            named = sorted({k for attrs in tracks.attributes.values() for k in attrs})
            raise ValueError(
                f"no box of {str(tracks_path)!r} has a usable {attribute!r} attribute (attributes: "
                f"{', '.join(named) or 'none'}; {truth.missing} boxes say none was given)"
            )
        return VideoInputs(tracks, None)
    _logger.info(
        "ground truth from %s: %d boxes (%d without a value, %d without the attribute)",
        truth.source,
        len(truth),
        truth.missing,
        truth.absent,
    )
    return VideoInputs(tracks, GroundTruth(by_frame=truth.by_frame, source=truth.source))


def video_calibration_crops(path: Path, tracks: Tracks, decode: DecodeOptions | None, crop=None, limit: int = 8):
    """calibration_crops of the video's first frames with boxes ([] when the video cannot be read: auto then
    measures on synthetic crops)."""
    from pose_classifier_ros.video.video_source import VideoSource

    try:
        source = VideoSource(path, tracks, decode)
    except ValueError:  # VideoError included
        return []
    return calibration_crops(source, crop, limit)


def replay_video(
    video_path: str | Path,
    tracks: Tracks,
    pipeline,
    *,
    decode: DecodeOptions | None = None,
    ground_truth: GroundTruth | None = None,
    out_path: str | Path | None = None,
    viewpoints_topic: str = "/viewpoints",
    images_topic: str | None = None,
    storage: str = "mcap",
    progress: bool = True,
    crops_per_second: float | None = None,
    baseline=None,
    visuals=None,
    annotated_video: str | Path | None = None,
) -> ReplayResult:
    """Run `pipeline` (a TrackPipeline) over the frames of `video_path` that `tracks` covers.

    decode: start/end/stride and decoder settings (DecodeOptions); out_path: a new output bag with the
    viewpoints topic and the visuals' topics; images_topic: also the frames as JPEG CompressedImage there
    (None, or no out_path: none); visuals: bags.replay_visuals.ReplayVisualsConfig (annotation/summary topics, best views);
    annotated_video: write every frame with the overlay there; crops_per_second / baseline: as replay_bag.

    Raises video.probe.VideoOpenError (not a video), video_source.TrackSizeError (tracks of another frame
    size). A truncated video ends the run after its last good frame: the result holds everything before it
    and stats["input_error"] names that frame.
    """
    from pose_classifier_ros.bags.bagio import make_typestore, open_writer
    from pose_classifier_ros.stream.conversions import message_types
    from pose_classifier_ros.stream.frame_processor import FrameProcessor
    from pose_classifier_ros.video.video_source import VideoSource

    # every frame when something writes every frame: the annotated video, or the images into an output bag
    every = annotated_video is not None or (images_topic is not None and out_path is not None)
    source = VideoSource(video_path, tracks, decode, all_frames=every, progress=progress)
    writer = open_writer(out_path, storage=storage) if out_path is not None else None
    typestore = writer.typestore if writer is not None else make_typestore()
    outputs = run_into_outputs(
        source,
        FrameProcessor(pipeline, message_types(typestore)),
        writer=writer,
        typestore=typestore,
        viewpoints_topic=viewpoints_topic,
        images_topic=images_topic,
        visuals=visuals,
        annotated_video=annotated_video,
        video_rate_hz=source.info.average_rate,
        crops_per_second=crops_per_second,
        baseline=baseline,
    )

    run = outputs.run
    stats = _stats(source, run, outputs.visuals, outputs.video)
    records, baseline_records = run.records, run.baseline_records
    if ground_truth is not None:
        ground_truth.label(records, baseline_records, stats)
    base = ReplayResult(baseline_records, {"mode": "every_frame"}, None) if baseline is not None else None
    classes = {**dict(tracks.labels), **run.track_classes}
    return ReplayResult(
        records,
        stats,
        str(out_path) if out_path is not None else None,
        schedule=run.schedule,
        baseline=base,
        sightings=outputs.sightings,
        track_classes={t: c for t, c in classes.items() if c},
        time_origin_ns=int(source.options.base_ns),
    )


def _stats(source, run, vis, video) -> dict[str, Any]:
    """The report's "replay" counters for a video, in the report's order; "video": what was read and fitted."""
    info, fit, decode = source.info, source.fit, source.decode
    stats: dict[str, Any] = dict(source.stats)
    stats.update(run.stats)
    stats.update(boxes_clamped=fit.clamped, boxes_outside_frame=fit.outside)
    for why, n in sorted(source.tracks.skipped.items()):
        stats[f"track_rows_skipped ({why})"] = n
    if vis is not None:
        stats.update(annotations_written=vis.annotations_written, track_summaries=vis.summaries_written)
    if video is not None:
        stats.update(annotated_frames=video.frames_written)
    if source.error is not None:
        stats["input_error"] = str(source.error)
        stats["last_good_frame"] = source.error.last_index
    stats["video"] = dict(
        path=info.path,
        width=info.width,
        height=info.height,
        codec=info.codec,
        frame_count=info.frame_count,
        duration_s=info.duration_s,
        average_rate=float(info.average_rate) if info.average_rate else None,
        creation_time_ns=info.creation_time_ns,
        start_s=source.options.start_s,
        end_s=source.options.end_s,
        stride=source.options.stride,
        tracks=source.tracks.source,
        tracks_format=source.tracks.format,
        decode_s=decode.decode_s,
        convert_s=decode.convert_s,
        converted=decode.converted,
        consumer_wait_s=decode.consumer_wait_s,
    )
    return stats


__all__ = ["VideoInputs", "load_video_inputs", "replay_video", "video_calibration_crops"]
