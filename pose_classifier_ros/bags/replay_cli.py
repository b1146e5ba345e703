"""`pose-classifier replay BAG`: the command line around bags.replay.replay_bag.

Loads the node's YAML through the node's parameter schema, checks the bag before the slow model load,
replays, and prints or writes the report (bags.replay_report). See bags/replay.py for what replay does.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from pose_classifier_ros.bags.bagio import BagError, open_reader
from pose_classifier_ros.bags.ground_truth import load_ground_truth_csv
from pose_classifier_ros.bags.replay import DETECTIONS_TYPE, IMAGE_TYPES, replay_bag
from pose_classifier_ros.bags.replay_report import (
    build_report,
    format_replay_report,
    print_summary,
    write_replay_report,
)

_logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="input rosbag2 (directory, or a .mcap / .db3 file)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (.pth)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output bag directory; OUT.mcap writes the directory OUT (default: REPORT_DIR/replayed, else BAG_viewpoints)",
    )
    parser.add_argument("--no-out", action="store_true", help="do not write an output bag")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
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
        "--report-dir",
        type=Path,
        default=None,
        help="write metrics.json, report.txt, confusion_matrix.png, track_timeline.png here",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's YAML parameters (config/pose_classifier.yaml): voting, crop, sync",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="inference backend: auto, eager, bf16, int8, onnx (default: --params model.backend, else auto)",
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
        default="every_frame",
        help="every_frame: classify every crop of every frame (default); scheduled: the node's "
        "per-track scheduler (schedule.* from --params) under --crops-per-second",
    )
    parser.add_argument(
        "--crops-per-second",
        type=float,
        default=None,
        help="scheduled: simulated compute budget, crops per second of bag time (unused budget "
        "carries forward); default: schedule.max_crops every frame",
    )
    parser.add_argument("--max-crops", type=int, default=None, help="scheduled: override schedule.max_crops")
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
        "--best-views",
        type=Path,
        default=None,
        metavar="DIR",
        help="write DIR/<track>/{left,right,best}.jpg and DIR/sightings.csv",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _default_out(args) -> Path | None:
    if args.no_out:
        return None
    if args.out is not None:
        if args.out.suffix in (".mcap", ".db3"):
            # rosbag2 bags are directories (OUT/OUT.mcap inside), as `ros2 bag record -o` makes them
            _logger.info("writing the output bag directory %s", args.out.with_suffix(""))
            return args.out.with_suffix("")
        return args.out
    if args.report_dir is not None:
        return args.report_dir / "replayed"
    return args.bag.parent / f"{args.bag.name.split('.')[0]}_viewpoints"


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (BagError, ValueError, FileNotFoundError) as exc:
        _logger.error("%s", exc)
        return 1


def _run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.stream.node_config import NodeConfig, load_node_config

    # The node's own YAML with the node's meaning: unknown keys, wrong types and ranges fail as in the node.
    settings = load_node_config(args.params) if args.params is not None else NodeConfig()
    ground_truth = load_ground_truth_csv(args.ground_truth) if args.ground_truth is not None else None

    out_path = _default_out(args)
    if out_path is not None and out_path.exists():
        if not args.overwrite:
            raise BagError(f"output bag {str(out_path)!r} exists already; pass --overwrite or choose --out")
        shutil.rmtree(out_path)

    # Check the bag (topics, ground-truth topic) before the slow model load.
    with open_reader(args.bag) as reader:
        reader.require_topic(args.image_topic, IMAGE_TYPES)
        reader.require_topic(args.detections_topic, (DETECTIONS_TYPE,))
        gt_topic = None
        if ground_truth is None and args.ground_truth_topic in reader.topics:
            gt_topic = args.ground_truth_topic
            _logger.info("using ground truth from bag topic %s", gt_topic)

    from pose_classifier_ros.bags.replay_visuals import ReplayVisualsConfig
    from pose_classifier_ros.model.checkpoint import CheckpointError
    from pose_classifier_ros.model.classifier import ViewpointClassifier
    from pose_classifier_ros.stream.pipeline_factory import build_pipeline

    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {str(args.checkpoint)!r} does not exist")
    try:
        classifier = ViewpointClassifier.from_checkpoint(
            args.checkpoint,
            device=args.device or settings.device,
            backend=args.backend or settings.backend,
            backbone_weights=args.backbone_weights or settings.backbone_weights or None,
            batch_size=int(args.batch_size or settings.batch_size),
            crop=settings.crop,
        )
    except CheckpointError as exc:
        _logger.error("cannot load checkpoint %s: %s", args.checkpoint, exc)
        return 1
    baseline = None
    if args.schedule == "scheduled":
        pipeline = build_pipeline(settings, classifier, mode="scheduled", max_crops=args.max_crops)
        if not args.no_baseline:
            baseline = build_pipeline(settings, classifier, mode="every_frame")
    elif args.crops_per_second is not None or args.max_crops is not None:
        raise ValueError("--crops-per-second and --max-crops need --schedule scheduled")
    else:
        pipeline = build_pipeline(settings, classifier, mode="every_frame")

    result = replay_bag(
        args.bag,
        pipeline,
        out_path=out_path,
        image_topic=args.image_topic,
        detections_topic=args.detections_topic,
        viewpoints_topic=args.viewpoints_topic,
        pairing=settings.pairing,
        ground_truth=ground_truth,
        ground_truth_topic=gt_topic,
        storage=args.storage,
        progress=not args.no_progress,
        crops_per_second=args.crops_per_second,
        baseline=baseline,
        visuals=ReplayVisualsConfig(
            annotations_topic=args.annotations_topic,
            summaries_topic=args.summaries_topic,
            keep_crops=args.best_views is not None or args.report_dir is not None,
            timeout_s=settings.voting.track_timeout_s,
        ),
    )
    stats = result.stats
    print(
        f"replayed {stats['images']} images: {stats['frames_processed']} frames classified "
        f"({stats['detections_classified']} detections), {stats['frames_skipped']} skipped, "
        f"{stats['unpaired_images']} images without detections"
    )
    if stats["frames_processed"] == 0:
        _logger.error(
            "no frame could be classified: no image was paired with detections (header stamps "
            "differ?) or every image failed to decode; see the warnings above"
        )
        return 1
    if result.out_bag:
        added = ", ".join(t for t in (args.viewpoints_topic, args.annotations_topic, args.summaries_topic) if t)
        print(f"output bag: {result.out_bag} ({added} added)")
    if args.best_views is not None:
        from pose_classifier_ros.visualization.best_views import write_best_views

        csv_path = write_best_views(args.best_views, result.sightings)
        print(f"best views of {len(result.sightings)} track(s): {args.best_views}/<track>/, {csv_path}")
    has_gt = ground_truth is not None or gt_topic is not None
    if has_gt and not stats.get("ground_truth_matched"):
        _logger.error(
            "ground truth (%s) matched none of the %d classified detections: check that its "
            "stamp_ns/frame_index and track_id values match the bag's",
            stats.get("ground_truth_source"),
            len(result.records),
        )
        return 1

    report = build_report(result)
    if args.report_dir is not None:
        title = f"replay of {args.bag}"
        paths = write_replay_report(args.report_dir, report, result, title=title)
        print(format_replay_report(report, title))
        print("report: " + ", ".join(paths))
    else:
        print_summary(report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from pose_classifier_ros.cli import main

    sys.exit(main(["replay", *sys.argv[1:]]))
