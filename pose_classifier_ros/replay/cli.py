"""`pose-classifier replay INPUT`: a rosbag, or a video with its track file, through the node's pipeline.

The input's kind comes from its path: a directory or a .mcap / .db3 file is a rosbag2 bag (its topics paired
as the node pairs them, an output bag with /viewpoints); any other file is a video, which needs ``--tracks``
(CVAT for video 1.1, MOT or the detections CSV; ground truth from the track file's ``viewpoint``
attribute). Both write the same outputs: report (metrics.json, report.txt, figures, contact sheet, the
per-detection table), best views, ``--annotated-video``. This module is the command line: its options
(``add_processing_arguments`` are the ones `batch` takes too) and the printout; the run itself is
replay/replay_run.py (``run_replay``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pose_classifier_ros.bags.bagio import BagError
from pose_classifier_ros.replay.replay_run import ReplayError, ReplayOptions, ReplaySummary, replay_title, run_replay
from pose_classifier_ros.replay.report import format_replay_report, print_summary
from pose_classifier_ros.video.tracks import TRACK_FORMATS

_logger = logging.getLogger(__name__)


def add_processing_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say how one input is processed (model, params, topics, schedule, output topics);
    `pose-classifier batch` takes these too, and its manifest may override them per input."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (.pth)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage")
    parser.add_argument("--image-topic", default="/camera/image_raw", help="sensor_msgs Image or CompressedImage")
    parser.add_argument("--detections-topic", default="/detections", help="vision_msgs/Detection2DArray")
    parser.add_argument("--viewpoints-topic", default="/viewpoints", help="output ViewpointArray topic")
    parser.add_argument(
        "--ground-truth", type=Path, default=None, help="CSV with columns stamp_ns (or frame_index), track_id, pose"
    )
    parser.add_argument(
        "--ground-truth-topic",
        default="/ground_truth/viewpoints",
        help="ViewpointArray topic with true labels, used when present and no CSV is given",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's YAML parameters (config/pose_classifier.yaml): model, crop, filter, sync, voting, "
        "tracking, schedule (schedule.mode unless --schedule is given)",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="inference backend: auto, eager, bf16, int8, onnx, onnx-int8 (default: --params model.backend, else "
        "auto; auto measures the candidates on the bag's first crops, cached in --params model.backend_cache_dir)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: --params model.device, else cpu)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="crops per forward pass (default: --params model.batch_size, else 32)",
    )
    parser.add_argument(
        "--backbone-weights",
        type=Path,
        default=None,
        help="DINOv2 weights file when the checkpoint holds only the head",
    )
    parser.add_argument(
        "--schedule",
        choices=("every_frame", "scheduled"),
        default=None,
        help="every_frame: classify every crop of every frame; scheduled: the node's per-track scheduler "
        "(schedule.* from --params) under --crops-per-second. Default: schedule.mode of --params, else every_frame",
    )
    parser.add_argument(
        "--crops-per-second",
        type=float,
        default=None,
        help="scheduled: simulated compute budget, crops per second of bag time (unused budget "
        "carries forward); default: schedule.max_crops every frame",
    )
    parser.add_argument("--max-crops", type=int, default=None, help="scheduled: override schedule.max_crops")
    focus = parser.add_mutually_exclusive_group()
    focus.add_argument(
        "--focus-track",
        default=None,
        metavar="ID",
        help="scheduled: focus on this track id all along (it gets schedule.focus_share of each cycle, as the "
        "navigation policy's target does live)",
    )
    focus.add_argument(
        "--focus-topic",
        default=None,
        metavar="TOPIC",
        help="scheduled, bags: take the focus from the bag's recorded PolicyState topic (e.g. /policy_state), in "
        "bag order, as the node takes it live",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="scheduled: do not also run every_frame on the same frames for comparison",
    )
    parser.add_argument(
        "--annotations-topic",
        default="/annotations",
        help="output visualization_msgs/ImageMarker topic (boxes + labels per frame); '' = none",
    )
    parser.add_argument(
        "--summaries-topic",
        default="/track_summaries",
        help="output TrackSummary topic (one per finished track); '' = none",
    )
    parser.add_argument(
        "--truth-attribute",
        default=None,
        metavar="NAME",
        help="videos: the track file's per-box attribute holding the true viewpoint (default: viewpoint, used "
        "when boxes carry it); --ground-truth CSV (frame_index,track_id,pose) instead",
    )
    parser.add_argument(
        "--unknown-truth",
        choices=("error", "skip"),
        default="error",
        help="videos: a truth attribute value that is no viewpoint (docs/field_footage.md) stops the run "
        "(error) or leaves that box without ground truth (skip)",
    )
    parser.add_argument("--stride", type=int, default=1, help="videos: classify frames whose index is a multiple of N")
    parser.add_argument("--start", type=float, default=0.0, help="videos: first second to read (inclusive)")
    parser.add_argument("--end", type=float, default=None, help="videos: second to stop at (exclusive)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help="a rosbag2 bag (directory, or a .mcap / .db3 file), or a video file (with --tracks)",
    )
    parser.add_argument(
        "--tracks", type=Path, default=None, help="videos: the track file (CVAT for video 1.1 XML, MOT, detections CSV)"
    )
    parser.add_argument(
        "--tracks-format",
        choices=TRACK_FORMATS,
        default=None,
        help="videos: format of --tracks (default: .xml cvat, .txt mot, .csv by its header)",
    )
    add_processing_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output bag directory; OUT.mcap writes the directory OUT (bags: default REPORT_DIR/replayed, else "
        "BAG_viewpoints; videos: none unless given, holding /viewpoints, /annotations, /track_summaries)",
    )
    parser.add_argument(
        "--write-images",
        action="store_true",
        help="videos: also write the frames (JPEG, IMAGE_TOPIC/compressed) into the output bag, for Foxglove",
    )
    parser.add_argument(
        "--annotated-video",
        type=Path,
        default=None,
        metavar="OUT.mp4",
        help="write every frame with the node's overlay (boxes, track ids, voted viewpoints) as a video",
    )
    parser.add_argument("--no-out", action="store_true", help="do not write an output bag")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="write metrics.json, report.txt, confusion_matrix.png, track_timeline.png here",
    )
    parser.add_argument(
        "--best-views",
        type=Path,
        default=None,
        metavar="DIR",
        help="write DIR/<track>/{left,right,best}.jpg and DIR/sightings.csv",
    )
    parser.add_argument(
        "--name", default=None, help="the input's name in the per-detection table (default: its file name)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_counts(summary: ReplaySummary) -> None:
    stats = summary.result.stats
    print(f"schedule: {summary.schedule} ({summary.schedule_source})")
    if summary.kind == "video":
        print(
            f"decoded {stats['frames_decoded']} frames, {stats['frames_with_boxes']} with track boxes: "
            f"{stats['frames_processed']} frames classified ({stats['detections_classified']} detections)"
        )
        print(
            "boxes: "
            + ", ".join(
                f"{stats[k]} {k.removeprefix('boxes_').replace('_', ' ')}"
                for k in ("boxes", "boxes_clamped", "boxes_outside_frame", "boxes_beyond_video")
                + ("boxes_out_of_range", "boxes_not_reached")
            )
        )
        if summary.input_error:
            print(f"input damaged: {summary.input_error}")
        return
    print(
        f"replayed {stats['images']} images: {stats['frames_processed']} frames classified "
        f"({stats['detections_classified']} detections), {stats['frames_skipped']} skipped, "
        f"{stats['unpaired_images']} images without detections"
    )


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.model.checkpoint import CheckpointError

    options = ReplayOptions.from_args(args)
    try:
        summary = run_replay(options)
    except ReplayError as exc:
        if exc.summary is not None:
            _print_counts(exc.summary)
        _logger.error("%s", exc)
        return 1
    except CheckpointError as exc:
        _logger.error("cannot load checkpoint %s: %s", options.checkpoint, exc)
        return 1
    except (BagError, ValueError, FileNotFoundError) as exc:  # VideoError and TrackFormatError are ValueErrors
        _logger.error("%s", exc)
        return 1
    _print_counts(summary)
    if summary.out_bag:
        added = ", ".join(
            t for t in (options.viewpoints_topic, options.annotations_topic, options.summaries_topic) if t
        )
        print(f"output bag: {summary.out_bag} ({added} added)")
    if summary.best_views_csv is not None:
        print(
            f"best views of {len(summary.result.sightings)} track(s): {options.best_views}/<track>/, {summary.best_views_csv}"
        )
    if summary.annotated_video is not None:
        print(f"annotated video: {summary.annotated_video} ({summary.result.stats['annotated_frames']} frames)")
    if options.report_dir is not None:
        print(format_replay_report(summary.report, replay_title(options)))
        print("report: " + ", ".join(summary.report_paths))
    else:
        print_summary(summary.report)
    rate = summary.crops_per_second
    print(
        f"timing: model load {summary.load_seconds:.2f} s, replay {summary.seconds:.2f} s, "
        f"{summary.crops} crops ({rate or 0.0:.1f} crops/s)"
    )
    return 0


__all__ = ["add_arguments", "add_processing_arguments", "run"]
