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

import argparse
import csv
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.bags.bagio import BagError, open_reader, open_writer
from pose_classifier_ros.labels import VIEWPOINTS, normalize_label

_logger = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
VIEWPOINTS_TYPE = "pose_classifier_ros/msg/ViewpointArray"


# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """True class index per (stamp_ns, track_id) or (frame_index, track_id)."""

    by_stamp: dict[tuple[int, str], int] = field(default_factory=dict)
    by_frame: dict[tuple[int, str], int] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.by_stamp) + len(self.by_frame)

    def lookup(self, stamp_ns: int, frame_index: int, track_id: str) -> int | None:
        label = self.by_stamp.get((stamp_ns, track_id))
        return self.by_frame.get((frame_index, track_id)) if label is None else label


def load_ground_truth_csv(path: str | Path) -> GroundTruth:
    """Read ``stamp_ns,frame_index,track_id,pose`` (stamp_ns or frame_index may be empty/absent)."""
    gt = GroundTruth(source=str(path))
    try:
        with Path(path).open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            if not {"track_id", "pose"} <= columns or not columns & {"stamp_ns", "frame_index"}:
                raise ValueError(
                    f"ground truth {str(path)!r} needs columns track_id, pose and stamp_ns or "
                    f"frame_index; it has {sorted(columns)}"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    label = normalize_label(row["pose"])
                    track = str(row["track_id"]).strip()
                    if (row.get("stamp_ns") or "").strip():
                        gt.by_stamp[(int(row["stamp_ns"]), track)] = label
                    elif (row.get("frame_index") or "").strip():
                        gt.by_frame[(int(row["frame_index"]), track)] = label
                    else:
                        raise ValueError("neither stamp_ns nor frame_index is set")
                except (ValueError, TypeError) as exc:
                    _logger.warning("ground truth %s line %d skipped: %s", path, line, exc)
    except OSError as exc:
        raise ValueError(f"cannot read ground truth {str(path)!r}: {exc}") from None
    if not len(gt):
        raise ValueError(f"ground truth {str(path)!r} has no usable rows")
    return gt


# ---------------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------------
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
                    except Exception as exc:  # noqa: BLE001 - malformed message: skip, as the node does
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


# ---------------------------------------------------------------------------------------------
# Metrics and report
# ---------------------------------------------------------------------------------------------
def build_report(result: ReplayResult) -> dict:
    """Metrics dict: per_frame / smoothed classification reports (if ground truth), temporal flip rates."""
    from pose_classifier_ros.metrics import classification_report, flip_rate

    recs = result.records
    report: dict[str, Any] = {}
    matched = [r for r in recs if r.true is not None]
    for key in ("label", "smoothed"):  # over known labels; the schedule section counts UNKNOWN as wrong
        known = [r for r in matched if getattr(r, key) is not None]
        if known:
            report["per_frame" if key == "label" else key] = classification_report(
                np.array([r.true for r in known]), np.array([getattr(r, key) for r in known])
            )
    tracks = [r.track_id for r in recs]
    stamps = [r.stamp_ns * 1e-9 for r in recs]
    report["temporal"] = {
        "per_frame": flip_rate(tracks, stamps, [r.label for r in recs]),
        "smoothed": flip_rate(tracks, stamps, [r.smoothed for r in recs]),
    }
    if matched:
        report["temporal"]["ground_truth"] = flip_rate(
            [r.track_id for r in matched], [r.stamp_ns * 1e-9 for r in matched], [r.true for r in matched]
        )
    if result.schedule is not None:
        from pose_classifier_ros.bags.schedule_report import schedule_section

        report["schedule"] = schedule_section(result)
    report["replay"] = dict(result.stats, output_bag=result.out_bag)
    return report


def format_replay_report(report: dict, title: str) -> str:
    """Text report: report.format_text_report of the per-frame and smoothed parts, then temporal/replay."""
    from pose_classifier_ros.report import format_text_report

    parts = [title, "=" * len(title), ""]
    for key, heading in (("per_frame", "per-frame label (one crop)"), ("smoothed", "smoothed label (track vote)")):
        if key in report:
            parts.append(format_text_report(report[key], heading))
    temporal = report["temporal"]
    parts.append("label flips per second per track (mean over tracks):")
    for key in ("per_frame", "smoothed", "ground_truth"):
        if key in temporal:
            parts.append(f"  {key:<13} {temporal[key]['mean_flips_per_s']:.3f}")
    if "schedule" in report:
        from pose_classifier_ros.bags.schedule_report import format_schedule_section

        parts += ["", format_schedule_section(report["schedule"])]
    stats = report.get("replay", {})
    parts += ["", "replay: " + ", ".join(f"{k}={v}" for k, v in stats.items() if not isinstance(v, dict))]
    return "\n".join(parts) + "\n"


def write_replay_report(report_dir: str | Path, report: dict, result: ReplayResult, title: str) -> list[str]:
    """metrics.json, report.txt, confusion_matrix.png (+ _smoothed) and track_timeline.png in report_dir."""
    import json

    from pose_classifier_ros import report as report_mod

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / "metrics.json", report_dir / "report.txt"]
    paths[0].write_text(json.dumps(report_mod.to_jsonable(dict(report, title=title)), indent=2) + "\n")
    paths[1].write_text(format_replay_report(report, title))
    if "per_frame" in report:
        paths.append(
            report_mod.plot_confusion_matrix(
                report["per_frame"]["confusion_matrix"],
                report_dir / "confusion_matrix.png",
                title="per-frame viewpoint",
            )
        )
    if "smoothed" in report:
        paths.append(
            report_mod.plot_confusion_matrix(
                report["smoothed"]["confusion_matrix"],
                report_dir / "confusion_matrix_smoothed.png",
                title="smoothed viewpoint (track vote)",
            )
        )
    recs = [r for r in result.records if r.label is not None and r.smoothed is not None]
    if recs:
        paths.append(
            report_mod.plot_track_timeline(
                [r.track_id for r in recs],
                [r.stamp_ns * 1e-9 for r in recs],
                [r.label for r in recs],
                [r.smoothed for r in recs],
                report_dir / "track_timeline.png",
                title=f"{title}: viewpoint per track",
            )
        )
    if result.sightings:
        from pose_classifier_ros.visualization.contact_sheet import write_contact_sheet

        paths.append(
            write_contact_sheet(
                result.sightings, report_dir / "contact_sheet.png", title=f"{title}: best views per track"
            )
        )
    return [str(p) for p in paths]


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
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
    from pose_classifier_ros.stream.pipeline import ViewpointPipeline

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
    pipeline = baseline = ViewpointPipeline(
        classifier,
        voting=settings.voting,
        detection_filter=settings.filter,
        iou_threshold=settings.tracking_iou_threshold,
    )
    if args.schedule == "scheduled":
        from dataclasses import replace

        from pose_classifier_ros.stream.pipeline import ScheduledPipeline

        schedule = replace(
            settings.schedule,
            mode="scheduled",
            max_crops=args.max_crops if args.max_crops is not None else settings.schedule.max_crops,
        )
        pipeline = ScheduledPipeline(
            classifier,
            voting=settings.voting,
            iou_threshold=settings.tracking_iou_threshold,
            detection_filter=settings.filter,
            schedule=schedule,
            crop=settings.crop,
        )
        if args.no_baseline:
            baseline = None
    elif args.crops_per_second is not None or args.max_crops is not None:
        raise ValueError("--crops-per-second and --max-crops need --schedule scheduled")

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
        baseline=baseline if pipeline is not baseline else None,
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
        _print_summary(report)
    return 0


def _print_summary(report: dict) -> None:
    for key in ("per_frame", "smoothed"):
        if key in report:
            r = report[key]
            print(
                f"{key:>9}: accuracy {r['accuracy']:.3f} on {r['num_samples']} detections, "
                f"coarse {r['coarse_accuracy']:.3f}, mean angular error {r['mean_angular_error_deg']:.1f} deg"
            )
    t = report["temporal"]
    print(
        f"flip rate: {t['per_frame']['mean_flips_per_s']:.2f}/s per frame, "
        f"{t['smoothed']['mean_flips_per_s']:.2f}/s smoothed"
    )
    if "schedule" in report:
        from pose_classifier_ros.bags.schedule_report import format_schedule_section

        print(format_schedule_section(report["schedule"]))


if __name__ == "__main__":  # pragma: no cover
    from pose_classifier_ros.cli import main

    sys.exit(main(["replay", *sys.argv[1:]]))
