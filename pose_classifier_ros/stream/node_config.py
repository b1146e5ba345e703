"""The classifier node's parameters (rclpy-free): one table, the typed NodeConfig, YAML loading.

The table is the single source of truth for names, types, defaults, ranges and meanings;
config/pose_classifier.yaml and docs/node_pose_classifier.md mirror it (a test checks the YAML). The
node declares it (ros/params.py) and the offline replay reads the same YAML through it, so both accept
and reject exactly the same settings. Defaults of the crop, voting and pairing groups come from the
core dataclasses.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.model.preprocess import CropConfig
from pose_classifier_ros.parameters import Parameter, ParameterError, ParameterSchema, read_params_file
from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig
from pose_classifier_ros.stream.pairing import PairingConfig
from pose_classifier_ros.stream.scheduler import SCHEDULE_MODES, ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

NODE_NAME = "pose_classifier"


def classifier_backends() -> tuple[tuple[str, ...], str]:
    """(accepted backends, default backend) of ViewpointClassifier: the parameter follows the classifier."""
    from pose_classifier_ros.model import classifier

    default = inspect.signature(classifier.ViewpointClassifier).parameters["backend"].default
    return tuple(classifier.ALL_BACKENDS), str(default)


def node_parameters() -> tuple[Parameter, ...]:
    """The node's parameters in YAML order."""
    crop, voting, pairing, schedule = CropConfig(), VotingConfig(), PairingConfig(), ScheduleConfig()
    backends, default_backend = classifier_backends()
    P = Parameter
    return (
        P(
            "model.checkpoint",
            "",
            "Checkpoint file: absolute path, path relative to the working directory, or "
            "package://<package>/<path in its share directory>. Checked in on_configure.",
            read_only=True,
        ),
        P(
            "model.backbone_weights",
            "",
            "Backbone weights for a head-only checkpoint (empty: the checkpoint carries the backbone).",
            read_only=True,
        ),
        P("model.device", "cpu", "Torch device: cpu, cuda or cuda:<index>."),
        P(
            "model.backend",
            default_backend,
            "Inference backend of ViewpointClassifier (auto: on the first activation with a checkpoint on a "
            "machine, the fastest candidate that agrees with fp32 eager is measured and cached; the device "
            "must support a fixed one).",
            choices=backends,
        ),
        P(
            "model.backend_cache_dir",
            "",
            "Where backend auto caches its measured choice and ONNX exports (empty: "
            "$XDG_CACHE_HOME/pose_classifier_ros, else ~/.cache/pose_classifier_ros).",
        ),
        P("model.batch_size", 32, "Maximum crops per forward pass.", 1, 4096),
        P("model.num_threads", 0, "torch intra-op CPU threads; 0 keeps torch's default.", 0, 1024),
        P(
            "image_transport",
            "raw",
            "raw subscribes `image` (sensor_msgs/Image); compressed subscribes "
            "`image/compressed` (sensor_msgs/CompressedImage), after remapping of `image`.",
            choices=("raw", "compressed"),
        ),
        P(
            "crop.padding",
            float(crop.padding),
            "Fraction of the box width/height added on each side before cropping.",
            0.0,
            2.0,
        ),
        P(
            "crop.min_box_size",
            float(crop.min_box_size),
            "Boxes smaller than this (px, after clamping to the frame) are skipped.",
            0.0,
            100000.0,
        ),
        P(
            "filter.class_ids",
            [],
            "Detector class ids (ObjectHypothesis.class_id of a detection's best "
            'hypothesis, strings) to classify; empty list (or [""]) = every class. Other detections are counted '
            "(filtered) and not published.",
        ),
        P(
            "filter.min_score",
            0.0,
            "Detections whose detector score is below this are not classified (counted "
            "as filtered, not published); 0 keeps all.",
            0.0,
            1.0,
        ),
        P(
            "sync.mode",
            str(pairing.mode),
            "stamp pairs image and detections by header stamp; arrival pairs "
            "each detections message with the latest image (for detectors that do not copy the stamp).",
            choices=("stamp", "arrival"),
        ),
        P(
            "sync.tolerance_s",
            float(pairing.tolerance_s),
            "Largest stamp difference, s, for which an image and a detections message are the same frame.",
            0.0,
            10.0,
        ),
        P(
            "sync.queue_size",
            int(pairing.queue_size),
            "Unpaired images / detections kept while waiting for their "
            "partner; raise it when the detector lags the camera by many frames.",
            1,
            10000,
        ),
        P(
            "voting.window",
            int(voting.window),
            "Per-frame predictions per track the smoothed label is voted over.",
            1,
            10000,
        ),
        P(
            "voting.min_votes",
            int(voting.min_votes),
            "Votes a track needs before its label is stable (Viewpoint.is_stable); at most voting.window.",
            1,
            10000,
        ),
        P(
            "voting.mode",
            str(voting.mode),
            "majority votes on per-frame labels; mean averages probabilities.",
            choices=("majority", "mean"),
        ),
        P(
            "voting.track_timeout_s",
            float(voting.track_timeout_s),
            "A track unseen for this long, s (frame stamps), is forgotten.",
            0.001,
            3600.0,
        ),
        P(
            "voting.switch_votes",
            int(voting.switch_votes),
            "Hysteresis: once a track's label is stable, a new label "
            "must win this many consecutive votes before the voted label changes (1 = none); at most voting.window.",
            1,
            10000,
        ),
        P(
            "voting.min_confidence",
            float(voting.min_confidence),
            "Per-frame predictions whose top probability is "
            "below this do not vote (Viewpoint.voted false); 0 = all vote.",
            0.0,
            1.0,
        ),
        P(
            "voting.skip_truncated",
            bool(voting.skip_truncated),
            "Predictions on boxes whose padded crop is cut by the frame edge (Viewpoint.truncated) do not vote.",
        ),
        P(
            "tracking.iou_threshold",
            0.3,
            "IoU needed to continue a track when the detector sets no Detection2D.id.",
            0.0,
            1.0,
        ),
        P(
            "processing.policy",
            "latest",
            "latest processes the newest paired frame and drops older ones "
            "(live use); all queues frames FIFO up to processing.queue_size (offline evaluation).",
            choices=("latest", "all"),
        ),
        P(
            "processing.queue_size",
            100,
            "Frames buffered with processing.policy all; the oldest is dropped when full.",
            1,
            100000,
        ),
        P(
            "schedule.mode",
            str(schedule.mode),
            "every_frame classifies every crop of every processed frame and "
            "publishes after it (processing.policy applies); scheduled publishes every paired frame at once from "
            "per-track state while an inference thread classifies the crops the scheduler picks (live default).",
            choices=SCHEDULE_MODES,
        ),
        P("schedule.max_crops", int(schedule.max_crops), "scheduled: crops per inference cycle (one batch).", 1, 4096),
        P(
            "schedule.box_change",
            float(schedule.box_change),
            "scheduled: relative change of box area or aspect "
            "ratio since a track's last classification that asks for a new one.",
            0.001,
            100.0,
        ),
        P(
            "schedule.max_age_s",
            float(schedule.max_age_s),
            "scheduled: label age, s, after which a visible "
            "track is classified before unsettled and changed ones (the budget permitting).",
            0.01,
            3600.0,
        ),
        P(
            "schedule.inference_nice",
            int(schedule.inference_nice),
            "scheduled: niceness added to the inference "
            "thread and the model runtime's threads, so that on a busy CPU the publishing path does not wait behind "
            "the model (0 = same priority; higher starves the model sooner under other load).",
            0,
            19,
        ),
        P(
            "publish_debug_image",
            False,
            "Offer `debug_image` (rgb8) and `debug_image/compressed` (JPEG): the frame "
            "with the annotation overlay burnt in, drawn and encoded only while someone subscribes.",
        ),
        P("debug_image.jpeg_quality", 80, "JPEG quality of `debug_image/compressed`.", 1, 100),
        P(
            "publish_annotations",
            True,
            "Publish `annotations` (visualization_msgs/ImageMarker, one per processed "
            "frame with the image header): boxes and `<track> <voted viewpoint>` labels coloured by viewpoint, "
            "drawn on the image by Foxglove's Image panel.",
        ),
        P(
            "publish_track_summaries",
            True,
            "Publish a TrackSummary on `track_summaries` when a track expires "
            "(unseen for voting.track_timeout_s): viewpoint histogram and the best left/right/overall views.",
        ),
        P(
            "best_views.save_dir",
            "",
            "Folder to save each finished track's best left/right/overall crops (JPEG, "
            "<track>/{left,right,best}.jpg) and a sightings.csv row in; empty = off.",
        ),
        P("diagnostics_period_s", 1.0, "Period of `diagnostics`, s; 0 disables them.", 0.0, 3600.0),
        P(
            "lost_frames_timeout_s",
            5.0,
            "Warn once (and set diagnostics to WARN) when detections arrive or the "
            "image topic has a publisher but no image was received for this long, s, or images arrive far less "
            "often than detections; 0 disables the check.",
            0.0,
            3600.0,
        ),
        P("autostart", True, "Configure and activate at start (no lifecycle manager needed)."),
    )


@dataclass
class NodeConfig:
    """Everything the node reads from its parameters, validated."""

    checkpoint: str = ""
    backbone_weights: str = ""
    device: str = "cpu"
    backend: str = "auto"
    backend_cache_dir: str = ""
    batch_size: int = 32
    num_threads: int = 0
    image_transport: str = "raw"
    tracking_iou_threshold: float = 0.3
    processing_policy: str = "latest"
    processing_queue_size: int = 100
    publish_debug_image: bool = False
    debug_jpeg_quality: int = 80
    publish_annotations: bool = True
    publish_track_summaries: bool = True
    best_views_dir: str = ""
    diagnostics_period_s: float = 1.0
    autostart: bool = True
    crop: CropConfig = field(default_factory=CropConfig)
    voting: VotingConfig = field(default_factory=VotingConfig)
    pairing: PairingConfig = field(default_factory=PairingConfig)
    filter: DetectionFilterConfig = field(default_factory=DetectionFilterConfig)
    lost_frames_timeout_s: float = 5.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def node_schema() -> ParameterSchema:
    """The classifier node's ParameterSchema."""
    return ParameterSchema(NODE_NAME, node_parameters())


def config_from_values(values: dict[str, Any], source: str = "", require_checkpoint: bool = True) -> NodeConfig:
    """NodeConfig from ``{parameter name: value}`` (missing names keep their defaults).

    ParameterError (a ValueError) names every unknown key, wrong type, out-of-range value and
    inconsistent pair, prefixed by `source` (the YAML file or the node). require_checkpoint: an empty
    model.checkpoint is an error (the node); replay passes the checkpoint on its command line.
    """
    schema = node_schema()
    errors = []
    try:
        v = schema.check(values)
    except ParameterError as exc:  # keep going with the valid values so every problem is named at once
        errors.append(str(exc))
        v = schema.defaults()
        v.update({k: x for k, x in values.items() if k in schema.by_name and schema.by_name[k].problem(x) is None})
    if not _DEVICE_RE.match(str(v["model.device"])):
        errors.append(f"model.device={v['model.device']!r} is not cpu, cuda or cuda:<index>")
    if v["voting.min_votes"] > v["voting.window"]:
        errors.append(f"voting.min_votes={v['voting.min_votes']} exceeds voting.window={v['voting.window']}")
    if v["voting.switch_votes"] > v["voting.window"]:
        errors.append(f"voting.switch_votes={v['voting.switch_votes']} exceeds voting.window={v['voting.window']}")
    if any(not isinstance(c, str) for c in v["filter.class_ids"]):
        errors.append(f"filter.class_ids={v['filter.class_ids']!r} must be a list of strings (quote numeric ids)")
    if not errors:
        from pose_classifier_ros.model.classifier import resolve_backend

        try:
            resolve_backend(str(v["model.backend"]), "cuda" if str(v["model.device"]).startswith("cuda") else "cpu")
        except ValueError as exc:
            errors.append(f"model.backend={v['model.backend']!r}: {exc}")
    if require_checkpoint and not str(v["model.checkpoint"]).strip():
        errors.append("model.checkpoint is empty: set it to the checkpoint file")
    if errors:
        raise ParameterError((f"{source}: " if source else "") + "; ".join(errors))
    try:
        crop = CropConfig(padding=float(v["crop.padding"]), min_box_size=float(v["crop.min_box_size"]))
        voting = VotingConfig(
            window=int(v["voting.window"]),
            min_votes=int(v["voting.min_votes"]),
            mode=str(v["voting.mode"]),
            track_timeout_s=float(v["voting.track_timeout_s"]),
            switch_votes=int(v["voting.switch_votes"]),
            min_confidence=float(v["voting.min_confidence"]),
            skip_truncated=bool(v["voting.skip_truncated"]),
        )
        detection_filter = DetectionFilterConfig(
            class_ids=tuple(v["filter.class_ids"]), min_score=float(v["filter.min_score"])
        )
        pairing = PairingConfig(
            mode=str(v["sync.mode"]), tolerance_s=float(v["sync.tolerance_s"]), queue_size=int(v["sync.queue_size"])
        )
        schedule = ScheduleConfig(
            mode=str(v["schedule.mode"]),
            max_crops=int(v["schedule.max_crops"]),
            box_change=float(v["schedule.box_change"]),
            max_age_s=float(v["schedule.max_age_s"]),
            inference_nice=int(v["schedule.inference_nice"]),
        )
    except (TypeError, ValueError) as exc:  # the core dataclasses' own checks
        raise ParameterError((f"{source}: " if source else "") + str(exc)) from None
    return NodeConfig(
        checkpoint=str(v["model.checkpoint"]).strip(),
        backbone_weights=str(v["model.backbone_weights"]).strip(),
        device=str(v["model.device"]),
        backend=str(v["model.backend"]),
        backend_cache_dir=str(v["model.backend_cache_dir"]).strip(),
        batch_size=int(v["model.batch_size"]),
        num_threads=int(v["model.num_threads"]),
        image_transport=str(v["image_transport"]),
        tracking_iou_threshold=float(v["tracking.iou_threshold"]),
        processing_policy=str(v["processing.policy"]),
        processing_queue_size=int(v["processing.queue_size"]),
        publish_debug_image=bool(v["publish_debug_image"]),
        debug_jpeg_quality=int(v["debug_image.jpeg_quality"]),
        publish_annotations=bool(v["publish_annotations"]),
        publish_track_summaries=bool(v["publish_track_summaries"]),
        best_views_dir=str(v["best_views.save_dir"]).strip(),
        diagnostics_period_s=float(v["diagnostics_period_s"]),
        autostart=bool(v["autostart"]),
        crop=crop,
        voting=voting,
        pairing=pairing,
        filter=detection_filter,
        lost_frames_timeout_s=float(v["lost_frames_timeout_s"]),
        schedule=schedule,
    )


def load_node_config(path: str | Path) -> NodeConfig:
    """NodeConfig from the node's section of a ROS 2 parameters YAML file (config/pose_classifier.yaml).

    The same checks, with the same messages, as the node applies to its parameters.
    """
    return config_from_values(read_params_file(path, NODE_NAME), source=str(path), require_checkpoint=False)


__all__ = ["NODE_NAME", "NodeConfig", "config_from_values", "load_node_config", "node_parameters", "node_schema"]
