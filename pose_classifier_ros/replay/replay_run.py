"""One replay run as a function: ``ReplayOptions`` -> ``run_replay`` -> ``ReplaySummary``.

What `pose-classifier replay` (replay/cli.py) does for one input, and what `pose-classifier batch` (season/)
does per input with a model loaded once per worker::

    options = ReplayOptions(input=Path("flight.mp4"), tracks=Path("flight.xml"), checkpoint=ckpt, report_dir=out)
    summary = run_replay(options, classifier=None)   # -> ReplaySummary; raises ReplayError & co.

The input's kind comes from its path (``input_kind``): a directory or a .mcap / .db3 file is a rosbag2 bag
(replay/bag_replay.py), any other file a video with its ``tracks`` (replay/video_replay.py). Both write the
same outputs. Seams: ``load_settings`` (the --params YAML), ``schedule_mode`` (--schedule or
schedule.mode), ``load_classifier`` / ``classifier_key`` (the model and what it depends on), ``check_bag``
(topics before the model load), ``build_pipelines`` (pipeline and baseline from the settings).
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

from pose_classifier_ros.bags.bag_source import DETECTIONS_TYPE, IMAGE_TYPES, POLICY_STATE_TYPE
from pose_classifier_ros.bags.bagio import BagError, open_reader
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.ground_truth import load_ground_truth_csv
from pose_classifier_ros.replay.report import build_report, write_replay_report
from pose_classifier_ros.replay.runner import ReplayResult

_logger = logging.getLogger(__name__)


@dataclass
class ReplayOptions:
    """Everything one replay run reads: the `replay` CLI's options (paths as Path, None = default)."""

    input: Path
    checkpoint: Path
    tracks: Path | None = None
    tracks_format: str | None = None
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
    focus_track: str | None = None
    focus_topic: str | None = None
    no_baseline: bool = False
    annotations_topic: str = "/annotations"
    summaries_topic: str = "/track_summaries"
    best_views: Path | None = None
    no_progress: bool = False
    truth_attribute: str | None = None
    unknown_truth: str = "error"
    stride: int = 1
    start: float = 0.0
    end: float | None = None
    write_images: bool = False
    annotated_video: Path | None = None
    name: str | None = None  # the input's name in the per-detection table (batch: the row's name)

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
    schedule_source: the mode that ran and where it came from (schedule_mode); kind: "bag" or "video";
    images: the bag's image messages, or the video frames decoded; input_error: why a damaged input ended
    early (a truncated video: the results before its last good frame are kept), else None."""

    input: str
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
    kind: str = "bag"
    input_error: str | None = None
    annotated_video: str | None = None
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


def input_kind(path: Path) -> str:
    """ "bag" for a directory or a .mcap / .db3 file, else "video" (any file FFmpeg may decode)."""
    path = Path(path)
    return "bag" if path.is_dir() or path.suffix.lower() in (".mcap", ".db3") else "video"


def _default_out(options: ReplayOptions, kind: str = "bag") -> Path | None:
    if options.no_out:
        return None
    if options.out is not None:
        if options.out.suffix in (".mcap", ".db3"):
            # rosbag2 bags are directories (OUT/OUT.mcap inside), as `ros2 bag record -o` makes them
            _logger.info("writing the output bag directory %s", options.out.with_suffix(""))
            return options.out.with_suffix("")
        return options.out
    if kind == "video":  # a video's output bag holds no input topics: only on request
        return None
    if options.report_dir is not None:
        return options.report_dir / "replayed"
    return options.input.parent / f"{options.input.name.split('.')[0]}_viewpoints"


def decode_options(options: ReplayOptions):
    """video.decode.DecodeOptions from --start/--end/--stride (ValueError for impossible values)."""
    from pose_classifier_ros.video.decode import DecodeOptions

    return DecodeOptions(start_s=float(options.start), end_s=options.end, stride=int(options.stride))


def check_options(options: ReplayOptions, kind: str) -> None:
    """Options that do not apply to the input's kind are an error (ValueError), not silently ignored; a
    missing input is a FileNotFoundError."""
    if not Path(options.input).exists():
        raise FileNotFoundError(f"input {str(options.input)!r} does not exist (a rosbag2 bag or a video file)")
    if kind == "video":
        if options.tracks is None:
            raise ValueError(
                f"{options.input} is a video: give its track file with --tracks (CVAT for video 1.1 XML, MOT "
                "or the detections CSV); a rosbag is a directory or a .mcap / .db3 file"
            )
        if options.focus_topic is not None:
            raise ValueError(
                f"--focus-topic reads a recorded PolicyState topic of a rosbag; {options.input} is a video: "
                "use --focus-track ID"
            )
        decode_options(options)
        return
    video_only = {
        "--tracks": options.tracks is not None,
        "--tracks-format": options.tracks_format is not None,
        "--truth-attribute": options.truth_attribute is not None,
        "--stride": options.stride != 1,
        "--start": options.start != 0.0,
        "--end": options.end is not None,
    }
    given = [name for name, set_ in video_only.items() if set_]
    if given:
        raise ValueError(f"{', '.join(given)} apply to video input; {options.input} is a rosbag")
    if options.write_images:
        _logger.info("--write-images: a bag's output bag holds its images already")


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


def load_classifier(options: ReplayOptions, settings, num_threads: int | None = None, *, tracks=None):
    """ViewpointClassifier from the checkpoint (FileNotFoundError, model.checkpoint.CheckpointError).
    tracks: a video's Tracks when already read (backend auto calibrates on the video's first crops and is
    timed on the batch the run's schedule mode will classify: schedule.max_crops, or model.batch_size)."""
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    if not options.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {str(options.checkpoint)!r} does not exist")
    backend = options.backend or settings.model.backend
    batch_size = int(options.batch_size or settings.model.batch_size)
    calibration, workload = None, batch_size
    if backend == "auto":

        def calibration():  # the first frames' crops, what auto measures on: read only when nothing is cached
            return _calibration_crops(options, settings, tracks) or None

        if schedule_mode(options, settings)[0] == "scheduled":
            workload = int(options.max_crops if options.max_crops is not None else settings.schedule.max_crops)
    return ViewpointClassifier.from_checkpoint(
        options.checkpoint,
        device=options.device or settings.model.device,
        backend=backend,
        backbone_weights=options.backbone_weights or settings.model.backbone_weights or None,
        batch_size=batch_size,
        crop=settings.crop,
        num_threads=num_threads,
        backend_cache_dir=settings.model.backend_cache_dir or None,
        calibration_crops=calibration,
        workload_crops=workload,
    )


def _calibration_crops(options: ReplayOptions, settings, tracks=None) -> list:
    """The input's first crops ([] when it cannot be read: auto then measures on synthetic crops)."""
    if input_kind(options.input) == "bag":
        from pose_classifier_ros.replay.bag_replay import bag_calibration_crops

        return bag_calibration_crops(
            options.input, options.image_topic, options.detections_topic, settings.sync, settings.crop
        )
    if options.tracks is None:
        return []
    from pose_classifier_ros.replay.video_replay import video_calibration_crops
    from pose_classifier_ros.video.tracks import load_tracks

    try:
        tracks = tracks if tracks is not None else load_tracks(options.tracks, options.tracks_format)
        return video_calibration_crops(options.input, tracks, decode_options(options), settings.crop)
    except ValueError:
        return []


def check_bag(options: ReplayOptions, has_csv_ground_truth: bool) -> str | None:
    """Check the bag's topics (BagError) before the slow model load; returns the ground-truth topic to read
    (None when a CSV is given or the bag has none)."""
    with open_reader(options.input) as reader:
        reader.require_topic(options.image_topic, IMAGE_TYPES)
        reader.require_topic(options.detections_topic, (DETECTIONS_TYPE,))
        if options.focus_topic is not None:
            reader.require_topic(options.focus_topic, (POLICY_STATE_TYPE,))
        if not has_csv_ground_truth and options.ground_truth_topic in reader.topics:
            _logger.info("using ground truth from bag topic %s", options.ground_truth_topic)
            return options.ground_truth_topic
    return None


def build_pipelines(options: ReplayOptions, settings, classifier, mode: str) -> tuple[Any, Any]:
    """(pipeline, baseline): the TrackPipeline of `mode` (stream.pipeline_factory, as the node builds it), and
    in scheduled mode an every_frame baseline on the same frames (None with --no-baseline or in every_frame).
    --focus-track pins the scheduled pipeline's focus."""
    from pose_classifier_ros.stream.pipeline_factory import build_pipeline

    if mode != "scheduled":
        return build_pipeline(settings, classifier, mode="every_frame"), None
    pipeline = build_pipeline(settings, classifier, mode="scheduled", max_crops=options.max_crops)
    if options.focus_track:
        pipeline.focus.pin([options.focus_track])
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
        input=str(options.input),
        images=int(stats["images"] if "images" in stats else stats["frames_decoded"]),
        frames=int(stats["frames_processed"]),
        crops=crops,
        tracks=len({r.track_id for r in result.records}),
        seconds=seconds,
        load_seconds=load_seconds,
        ground_truth_matched=stats.get("ground_truth_matched"),
        out_bag=result.out_bag,
        input_error=stats.get("input_error"),
        result=result,
    )


def _prepare_out(options: ReplayOptions, kind: str) -> Path | None:
    """The output bag's path (None: none); BagError when it exists without --overwrite."""
    out_path = _default_out(options, kind)
    if out_path is not None and out_path.exists():
        if not options.overwrite:
            raise BagError(f"output bag {str(out_path)!r} exists already; pass --overwrite or choose --out")
        shutil.rmtree(out_path)
    return out_path


def _visuals(options: ReplayOptions, settings):
    from pose_classifier_ros.bags.replay_visuals import ReplayVisualsConfig

    return ReplayVisualsConfig(
        annotations_topic=options.annotations_topic,
        summaries_topic=options.summaries_topic,
        keep_crops=options.best_views is not None or options.report_dir is not None,
        timeout_s=settings.voting.track_timeout_s,
    )


def run_replay(options: ReplayOptions, classifier=None) -> ReplaySummary:
    """Replay one bag or video the way `pose-classifier replay` does and write its outputs (output bag, best
    views, report files, the per-detection table, the annotated video). classifier: a loaded classifier to
    reuse (its pipeline and voting state are built fresh here); None loads one from options.checkpoint.

    Raises BagError (unreadable bag, missing topic, output bag exists), video.probe.VideoOpenError (not a
    video), ValueError (bad options or params, bad ground-truth CSV, unreadable track file, unknown truth
    values), FileNotFoundError, model.checkpoint.CheckpointError, and ReplayError when nothing could be
    classified or the ground truth matched no detection. A truncated video is not an error: the results up
    to its last good frame are written and summary.input_error names that frame.
    """
    settings = load_settings(options)
    mode, why = schedule_mode(options, settings)
    _logger.info("schedule: %s (%s)", mode, why)
    focus_options = options.focus_track is not None or options.focus_topic is not None
    if mode != "scheduled" and (options.crops_per_second is not None or options.max_crops is not None or focus_options):
        raise ValueError(
            f"--crops-per-second, --max-crops, --focus-track and --focus-topic need schedule mode scheduled "
            f"(--schedule scheduled, or schedule.mode in --params); it is {mode} ({why})"
        )
    if options.focus_track is not None and options.focus_topic is not None:
        raise ValueError("give --focus-track or --focus-topic, not both")
    if focus_options and settings.schedule.focus_share <= 0:
        raise ValueError("--focus-track / --focus-topic need schedule.focus_share > 0 (--params sets it to 0)")
    kind = input_kind(options.input)
    check_options(options, kind)
    ground_truth = load_ground_truth_csv(options.ground_truth) if options.ground_truth is not None else None
    if kind == "video":
        from pose_classifier_ros.replay.video_replay import load_video_inputs
        from pose_classifier_ros.video.probe import probe_video

        probe_video(options.input)  # VideoOpenError before the model load
        inputs = load_video_inputs(
            options.tracks,
            options.tracks_format,
            ground_truth_csv=ground_truth,
            truth_attribute=options.truth_attribute,
            unknown_truth=options.unknown_truth,
        )
        gt_topic = None
    else:
        gt_topic = check_bag(options, ground_truth is not None)
    out_path = _prepare_out(options, kind)

    load_seconds = 0.0
    if classifier is None:
        started = time.perf_counter()
        classifier = load_classifier(options, settings, tracks=inputs.tracks if kind == "video" else None)
        load_seconds = time.perf_counter() - started
    pipeline, baseline = build_pipelines(options, settings, classifier, mode)

    started = time.perf_counter()
    common = dict(
        out_path=out_path,
        viewpoints_topic=options.viewpoints_topic,
        storage=options.storage,
        progress=not options.no_progress,
        crops_per_second=options.crops_per_second,
        baseline=baseline,
        visuals=_visuals(options, settings),
        annotated_video=options.annotated_video,
    )
    if kind == "video":
        from pose_classifier_ros.replay.video_replay import replay_video

        result = replay_video(
            options.input,
            inputs.tracks,
            pipeline,
            decode=decode_options(options),
            ground_truth=inputs.ground_truth,
            images_topic=f"{options.image_topic.rstrip('/')}/compressed" if options.write_images else None,
            **common,
        )
        has_gt = inputs.ground_truth is not None
    else:
        result = replay_bag(
            options.input,
            pipeline,
            image_topic=options.image_topic,
            detections_topic=options.detections_topic,
            pairing=settings.sync,
            ground_truth=ground_truth,
            ground_truth_topic=gt_topic,
            focus_topic=options.focus_topic,
            **common,
        )
        has_gt = ground_truth is not None or gt_topic is not None
    if result.schedule is not None and focus_options:
        result.schedule["focus"] = (
            f"track {options.focus_track} (--focus-track)"
            if options.focus_track is not None
            else f"{options.focus_topic} ({result.stats.get('focus_msgs', 0)} PolicyState messages)"
        )
    summary = _summary(options, result, time.perf_counter() - started, load_seconds)
    summary.kind = kind
    summary.schedule, summary.schedule_source = mode, why
    if options.annotated_video is not None and result.stats.get("annotated_frames"):
        summary.annotated_video = str(options.annotated_video)
    _write_outputs(options, summary, has_gt)
    summary.seconds = time.perf_counter() - started
    return summary


def _write_outputs(options: ReplayOptions, summary: ReplaySummary, has_gt: bool) -> None:
    """Best views, the report files and the per-detection table of a finished run; ReplayError when nothing
    was classified or the ground truth matched nothing (what could be written is written first)."""
    result = summary.result
    if summary.frames == 0:
        what = (
            "no frame with track boxes was classified (do the tracks' frame numbers fall in the video and in "
            "--start/--end/--stride?)"
            if summary.kind == "video"
            else "no image was paired with detections (header stamps differ?) or every image failed to decode"
        )
        raise ReplayError(f"no frame could be classified: {what}; see the warnings above", summary)
    if options.best_views is not None:
        from pose_classifier_ros.visualization.best_views import write_best_views

        summary.best_views_csv = str(write_best_views(options.best_views, result.sightings))
    if options.report_dir is not None:
        from pose_classifier_ros.replay.detections_table import write_detections_table

        table = write_detections_table(
            options.report_dir, result, input_name=options.name or _input_name(options.input)
        )
        summary.report_paths = [str(p) for p in table]
    if has_gt and not result.stats.get("ground_truth_matched"):
        key = "frame_index" if summary.kind == "video" else "stamp_ns/frame_index"
        raise ReplayError(
            f"ground truth ({result.stats.get('ground_truth_source')}) matched none of the "
            f"{len(result.records)} classified detections: check that its {key} and track_id values match "
            f"the {summary.kind}'s",
            summary,
        )
    summary.report = report = build_report(result)
    summary.accuracy = (report.get("per_frame") or {}).get("accuracy")
    summary.smoothed_accuracy = (report.get("smoothed") or {}).get("accuracy")
    if options.report_dir is not None:
        paths = write_replay_report(options.report_dir, report, result, title=replay_title(options))
        summary.report_paths = paths + summary.report_paths
        summary.metrics_path = paths[0]


def _input_name(path: Path) -> str:
    return Path(path).name.split(".")[0] or str(path)


def replay_title(options: ReplayOptions) -> str:
    return f"replay of {options.input}"


__all__ = [
    "ReplayError",
    "ReplayOptions",
    "ReplaySummary",
    "build_pipelines",
    "check_bag",
    "check_options",
    "classifier_key",
    "decode_options",
    "input_kind",
    "load_classifier",
    "load_settings",
    "replay_title",
    "run_replay",
    "schedule_mode",
]
