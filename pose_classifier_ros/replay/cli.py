"""`pose-classifier replay BAG`: the command line around replay.bag_replay.replay_bag.

Loads the node's YAML through the node's parameter schema, checks the bag before the slow model load,
replays, and prints or writes the report (replay.report). See replay/bag_replay.py for what replay does.

The run is a function, so `pose-classifier batch` (season/) runs the same path per input with a model
loaded once per worker::

    options = ReplayOptions.from_args(args)          # or ReplayOptions(bag=..., checkpoint=..., ...)
    summary = run_replay(options, classifier=None)   # -> ReplaySummary; raises ReplayError & co.

Seams: ``load_settings`` (the --params YAML), ``schedule_mode`` (--schedule or schedule.mode), ``load_classifier`` / ``classifier_key`` (the model and
what it depends on), ``check_bag`` (topics before the model load), ``build_pipelines`` (pipeline and
baseline from the settings), ``run_replay`` (replay_bag + best views + report files).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.bags.bag_source import DETECTIONS_TYPE, IMAGE_TYPES
from pose_classifier_ros.bags.bagio import BagError, open_reader
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.ground_truth import load_ground_truth_csv
from pose_classifier_ros.replay.report import (
    build_report,
    format_replay_report,
    print_summary,
    write_replay_report,
)
from pose_classifier_ros.replay.runner import ReplayResult

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="input rosbag2 (directory, or a .mcap / .db3 file)")
    add_processing_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output bag directory; OUT.mcap writes the directory OUT (default: REPORT_DIR/replayed, else BAG_viewpoints)",
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class ReplayOptions:
    """Everything one replay run reads: the `replay` CLI's options (paths as Path, None = default)."""

    bag: Path
    checkpoint: Path
    out: Path | None = None
    no_out: bool = False
    overwrite: bool = False
    storage: str = "mcap"
    image_topic: str = "/camera/image_raw"
    detections_topic: str = "/detections"
    viewpoints_topic: str = "/viewpoints"
    ground_truth: Path | None = None
    ground_truth_topic: str = "/ground_truth/viewpoints"
    report_dir: Path | None = None
    params: Path | None = None
    backend: str | None = None
    device: str | None = None
    batch_size: int | None = None
    backbone_weights: Path | None = None
    schedule: str | None = None  # None: schedule.mode of --params, else every_frame (schedule_mode)
    crops_per_second: float | None = None
    max_crops: int | None = None
    no_baseline: bool = False
    annotations_topic: str = "/annotations"
    summaries_topic: str = "/track_summaries"
    best_views: Path | None = None
    no_progress: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> ReplayOptions:
        """From parsed `replay` (or `batch`) arguments; names absent from `args` keep their defaults."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        values.update(overrides)
        return cls(**values)


@dataclass
class ReplaySummary:
    """What one run did. frames: frames classified; crops: crops through the model (scheduled: the
    budget's crops, plus the every_frame baseline's); tracks: distinct track ids; seconds: wall time of the
    replay and its outputs, model load excluded (load_seconds, 0.0 when a classifier was passed in);
    accuracy / smoothed_accuracy: per-frame / voted label accuracy (None without ground truth); schedule /
    schedule_source: the mode that ran and where it came from (schedule_mode)."""

    bag: str
    images: int
    frames: int
    crops: int
    tracks: int
    seconds: float
    load_seconds: float = 0.0
    accuracy: float | None = None
    smoothed_accuracy: float | None = None
    ground_truth_matched: int | None = None
    schedule: str = "every_frame"
    schedule_source: str = ""
    out_bag: str | None = None
    best_views_csv: str | None = None
    metrics_path: str | None = None
    report_paths: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict, repr=False)
    result: ReplayResult | None = field(default=None, repr=False)

    @property
    def crops_per_second(self) -> float | None:
        return self.crops / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters and paths (no report, no records)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("report", "result")}
        out["crops_per_second"] = self.crops_per_second
        return out


class ReplayError(RuntimeError):
    """The replay ran but its result is unusable (no frame classified, ground truth matched nothing);
    `summary` holds what it did."""

    def __init__(self, message: str, summary: ReplaySummary | None = None):
        super().__init__(message)
        self.summary = summary


def _default_out(options: ReplayOptions) -> Path | None:
    if options.no_out:
        return None
    if options.out is not None:
        if options.out.suffix in (".mcap", ".db3"):
            # rosbag2 bags are directories (OUT/OUT.mcap inside), as `ros2 bag record -o` makes them
            _logger.info("writing the output bag directory %s", options.out.with_suffix(""))
            return options.out.with_suffix("")
        return options.out
    if options.report_dir is not None:
        return options.report_dir / "replayed"
    return options.bag.parent / f"{options.bag.name.split('.')[0]}_viewpoints"


def load_settings(options: ReplayOptions):
    """NodeConfig from --params: the node's own YAML with the node's meaning (unknown keys, wrong types and
    ranges fail as in the node: ParameterError, a ValueError)."""
    from pose_classifier_ros.stream.node_config import NodeConfig, load_node_config

    return load_node_config(options.params) if options.params is not None else NodeConfig()


def schedule_mode(options, settings) -> tuple[str, str]:
    """(schedule mode, where it came from): --schedule, else --params' schedule.mode, else every_frame.
    options: ReplayOptions or parsed arguments (.schedule, .params)."""
    if options.schedule is not None:
        return options.schedule, "from --schedule"
    if options.params is None:
        return "every_frame", "replay's default without --params"
    from pose_classifier_ros.parameters import read_params_file
    from pose_classifier_ros.stream.node_config import NODE_NAME

    if "schedule.mode" in read_params_file(options.params, NODE_NAME):
        return settings.schedule.mode, f"from {options.params}"
    return settings.schedule.mode, f"the node's default; {options.params} does not set schedule.mode"


def classifier_key(options: ReplayOptions, settings) -> tuple:
    """What load_classifier's result depends on: two runs with equal keys can share one classifier."""
    return (
        str(options.checkpoint),
        options.device or settings.model.device,
        options.backend or settings.model.backend,
        str(options.backbone_weights or settings.model.backbone_weights or ""),
        int(options.batch_size or settings.model.batch_size),
        settings.crop,
    )


def load_classifier(options: ReplayOptions, settings, num_threads: int | None = None):
    """ViewpointClassifier from the checkpoint (FileNotFoundError, model.checkpoint.CheckpointError)."""
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    if not options.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {str(options.checkpoint)!r} does not exist")
    backend = options.backend or settings.model.backend
    calibration = None
    if backend == "auto":  # the first frames' crops: what auto measures on (and caches its choice for)
        from pose_classifier_ros.replay.bag_replay import bag_calibration_crops

        calibration = (
            bag_calibration_crops(
                options.bag, options.image_topic, options.detections_topic, settings.sync, settings.crop
            )
            or None
        )
    return ViewpointClassifier.from_checkpoint(
        options.checkpoint,
        device=options.device or settings.model.device,
        backend=backend,
        backbone_weights=options.backbone_weights or settings.model.backbone_weights or None,
        batch_size=int(options.batch_size or settings.model.batch_size),
        crop=settings.crop,
        num_threads=num_threads,
        backend_cache_dir=settings.model.backend_cache_dir or None,
        calibration_crops=calibration,
    )


def check_bag(options: ReplayOptions, has_csv_ground_truth: bool) -> str | None:
    """Check the bag's topics (BagError) before the slow model load; returns the ground-truth topic to read
    (None when a CSV is given or the bag has none)."""
    with open_reader(options.bag) as reader:
        reader.require_topic(options.image_topic, IMAGE_TYPES)
        reader.require_topic(options.detections_topic, (DETECTIONS_TYPE,))
        if not has_csv_ground_truth and options.ground_truth_topic in reader.topics:
            _logger.info("using ground truth from bag topic %s", options.ground_truth_topic)
            return options.ground_truth_topic
    return None


def build_pipelines(options: ReplayOptions, settings, classifier, mode: str) -> tuple[Any, Any]:
    """(pipeline, baseline): the TrackPipeline of `mode` (stream.pipeline_factory, as the node builds it), and
    in scheduled mode an every_frame baseline on the same frames (None with --no-baseline or in every_frame)."""
    from pose_classifier_ros.stream.pipeline_factory import build_pipeline

    if mode != "scheduled":
        return build_pipeline(settings, classifier, mode="every_frame"), None
    pipeline = build_pipeline(settings, classifier, mode="scheduled", max_crops=options.max_crops)
    baseline = None if options.no_baseline else build_pipeline(settings, classifier, mode="every_frame")
    return pipeline, baseline


def _summary(options: ReplayOptions, result: ReplayResult, seconds: float, load_seconds: float) -> ReplaySummary:
    stats = result.stats
    if result.schedule is not None:
        crops = int(result.schedule.get("crops_classified", 0))
        crops += len(result.baseline.records) if result.baseline is not None else 0
    else:
        crops = int(stats["detections_classified"])
    return ReplaySummary(
        bag=str(options.bag),
        images=int(stats["images"]),
        frames=int(stats["frames_processed"]),
        crops=crops,
        tracks=len({r.track_id for r in result.records}),
        seconds=seconds,
        load_seconds=load_seconds,
        ground_truth_matched=stats.get("ground_truth_matched"),
        out_bag=result.out_bag,
        result=result,
    )


def run_replay(options: ReplayOptions, classifier=None) -> ReplaySummary:
    """Replay one bag the way `pose-classifier replay` does and write its outputs (output bag, best views,
    report files). classifier: a loaded classifier to reuse (its pipeline and voting state are built fresh
    here); None loads one from options.checkpoint.

    Raises BagError (unreadable bag, missing topic, output bag exists), ValueError (bad options or params,
    bad ground-truth CSV), FileNotFoundError, model.checkpoint.CheckpointError, and ReplayError when nothing
    could be classified or the ground truth matched no detection.
    """
    settings = load_settings(options)
    mode, why = schedule_mode(options, settings)
    _logger.info("schedule: %s (%s)", mode, why)
    if mode != "scheduled" and (options.crops_per_second is not None or options.max_crops is not None):
        raise ValueError(
            f"--crops-per-second and --max-crops need schedule mode scheduled (--schedule scheduled, or "
            f"schedule.mode in --params); it is {mode} ({why})"
        )
    ground_truth = load_ground_truth_csv(options.ground_truth) if options.ground_truth is not None else None
    out_path = _default_out(options)
    if out_path is not None and out_path.exists():
        if not options.overwrite:
            raise BagError(f"output bag {str(out_path)!r} exists already; pass --overwrite or choose --out")
        shutil.rmtree(out_path)
    gt_topic = check_bag(options, ground_truth is not None)

    load_seconds = 0.0
    if classifier is None:
        started = time.perf_counter()
        classifier = load_classifier(options, settings)
        load_seconds = time.perf_counter() - started
    pipeline, baseline = build_pipelines(options, settings, classifier, mode)

    from pose_classifier_ros.bags.replay_visuals import ReplayVisualsConfig

    started = time.perf_counter()
    result = replay_bag(
        options.bag,
        pipeline,
        out_path=out_path,
        image_topic=options.image_topic,
        detections_topic=options.detections_topic,
        viewpoints_topic=options.viewpoints_topic,
        pairing=settings.sync,
        ground_truth=ground_truth,
        ground_truth_topic=gt_topic,
        storage=options.storage,
        progress=not options.no_progress,
        crops_per_second=options.crops_per_second,
        baseline=baseline,
        visuals=ReplayVisualsConfig(
            annotations_topic=options.annotations_topic,
            summaries_topic=options.summaries_topic,
            keep_crops=options.best_views is not None or options.report_dir is not None,
            timeout_s=settings.voting.track_timeout_s,
        ),
    )
    summary = _summary(options, result, time.perf_counter() - started, load_seconds)
    summary.schedule, summary.schedule_source = mode, why
    if summary.frames == 0:
        raise ReplayError(
            "no frame could be classified: no image was paired with detections (header stamps "
            "differ?) or every image failed to decode; see the warnings above",
            summary,
        )
    if options.best_views is not None:
        from pose_classifier_ros.visualization.best_views import write_best_views

        summary.best_views_csv = str(write_best_views(options.best_views, result.sightings))
    has_gt = ground_truth is not None or gt_topic is not None
    if has_gt and not result.stats.get("ground_truth_matched"):
        raise ReplayError(
            f"ground truth ({result.stats.get('ground_truth_source')}) matched none of the "
            f"{len(result.records)} classified detections: check that its stamp_ns/frame_index and track_id "
            "values match the bag's",
            summary,
        )
    summary.report = report = build_report(result)
    summary.accuracy = (report.get("per_frame") or {}).get("accuracy")
    summary.smoothed_accuracy = (report.get("smoothed") or {}).get("accuracy")
    if options.report_dir is not None:
        summary.report_paths = write_replay_report(options.report_dir, report, result, title=_title(options))
        summary.metrics_path = summary.report_paths[0]
    summary.seconds = time.perf_counter() - started
    return summary


def _title(options: ReplayOptions) -> str:
    return f"replay of {options.bag}"


def _print_counts(summary: ReplaySummary) -> None:
    stats = summary.result.stats
    print(f"schedule: {summary.schedule} ({summary.schedule_source})")
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
    except (BagError, ValueError, FileNotFoundError) as exc:
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
    if options.report_dir is not None:
        print(format_replay_report(summary.report, _title(options)))
        print("report: " + ", ".join(summary.report_paths))
    else:
        print_summary(summary.report)
    rate = summary.crops_per_second
    print(
        f"timing: model load {summary.load_seconds:.2f} s, replay {summary.seconds:.2f} s, "
        f"{summary.crops} crops ({rate or 0.0:.1f} crops/s)"
    )
    return 0
