"""The classifier node's configuration (rclpy-free): ``NodeConfig``, its parameter table, YAML loading.

``NodeConfig`` is a tree of typed dataclasses whose attribute paths are the parameter names
(``cfg.sync.tolerance_s`` is ``sync.tolerance_s``); its field defaults are the parameters' defaults,
the core groups (``CropConfig``, ``DetectionFilterConfig``, ``PairingConfig``, ``VotingConfig``,
``ScheduleConfig``) are used as they are. ``_docs()`` adds meanings and ranges;
``node_schema()`` joins both (``ParameterSchema.from_config``). The node declares the schema
(ros/params.py) and the offline replay reads config/pose_classifier.yaml through it, so both accept and
reject exactly the same settings; config/pose_classifier.yaml and docs/node_pose_classifier.md mirror it
(tests check both).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.model.preprocess import CropConfig
from pose_classifier_ros.parameters import ParameterDoc, ParameterSchema, at_most
from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig
from pose_classifier_ros.stream.pairing import PAIRING_MODES, PairingConfig
from pose_classifier_ros.stream.scheduler import SCHEDULE_MODES, ScheduleConfig
from pose_classifier_ros.stream.voting import VOTING_MODES, VotingConfig

NODE_NAME = "pose_classifier"


def classifier_backends() -> tuple[tuple[str, ...], str]:
    """(accepted backends, default backend) of ViewpointClassifier: the parameter follows the classifier."""
    import inspect

    from pose_classifier_ros.model import classifier

    default = inspect.signature(classifier.ViewpointClassifier).parameters["backend"].default
    return tuple(classifier.ALL_BACKENDS), str(default)


@dataclass
class ModelSettings:
    """``model.*``: which checkpoint, and where and how it runs."""

    checkpoint: str = ""
    backbone_weights: str = ""
    device: str = "cpu"
    backend: str = field(default_factory=lambda: classifier_backends()[1])
    backend_cache_dir: str = ""  # "": $XDG_CACHE_HOME/pose_classifier_ros, else ~/.cache/pose_classifier_ros
    batch_size: int = 32
    num_threads: int = 0  # 0: torch's default

    def __post_init__(self):
        self.checkpoint, self.backbone_weights = str(self.checkpoint).strip(), str(self.backbone_weights).strip()
        self.backend_cache_dir = str(self.backend_cache_dir).strip()


@dataclass
class TrackingSettings:
    """``tracking.*``: IoU tracking of detections without an id."""

    iou_threshold: float = 0.3


@dataclass
class ProcessingSettings:
    """``processing.*``: which paired frames the every_frame path processes."""

    policy: str = "latest"
    queue_size: int = 100


@dataclass
class DebugImageSettings:
    """``debug_image.*``."""

    jpeg_quality: int = 80


@dataclass
class BestViewsSettings:
    """``best_views.*``."""

    save_dir: str = ""  # "" = off

    def __post_init__(self):
        self.save_dir = str(self.save_dir).strip()


@dataclass
class NodeConfig:
    """Everything the node reads from its parameters; the attribute path is the parameter name."""

    model: ModelSettings = field(default_factory=ModelSettings)
    image_transport: str = "raw"
    crop: CropConfig = field(default_factory=CropConfig)
    filter: DetectionFilterConfig = field(default_factory=DetectionFilterConfig)
    sync: PairingConfig = field(default_factory=PairingConfig)
    voting: VotingConfig = field(default_factory=VotingConfig)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    publish_debug_image: bool = False
    debug_image: DebugImageSettings = field(default_factory=DebugImageSettings)
    publish_annotations: bool = True
    publish_track_summaries: bool = True
    best_views: BestViewsSettings = field(default_factory=BestViewsSettings)
    diagnostics_period_s: float = 1.0
    lost_frames_timeout_s: float = 5.0
    autostart: bool = True


# NodeConfig fields that are not parameters (they keep their defaults).
FIXED_FIELDS = ("voting.max_tracks",)


def _docs() -> tuple[ParameterDoc, ...]:
    """Meaning and limits of each parameter, in YAML order (defaults: the NodeConfig fields)."""
    D = ParameterDoc
    return (
        D(
            "model.checkpoint",
            "Checkpoint file: absolute path, path relative to the working directory, or "
            "package://<package>/<path in its share directory>. Checked in on_configure.",
            read_only=True,
        ),
        D(
            "model.backbone_weights",
            "Backbone weights for a head-only checkpoint (empty: the checkpoint carries the backbone).",
            read_only=True,
        ),
        D("model.device", "Torch device: cpu, cuda or cuda:<index>."),
        D(
            "model.backend",
            "Inference backend of ViewpointClassifier (auto: on the first activation with a checkpoint on a "
            "machine, the fastest candidate that agrees with fp32 eager is measured and cached; the device "
            "must support a fixed one).",
            choices=classifier_backends()[0],
        ),
        D(
            "model.backend_cache_dir",
            "Where backend auto caches its measured choice and ONNX exports (empty: "
            "$XDG_CACHE_HOME/pose_classifier_ros, else ~/.cache/pose_classifier_ros).",
        ),
        D("model.batch_size", "Maximum crops per forward pass.", 1, 4096),
        D("model.num_threads", "torch intra-op CPU threads; 0 keeps torch's default.", 0, 1024),
        D(
            "image_transport",
            "raw subscribes `image` (sensor_msgs/Image); compressed subscribes "
            "`image/compressed` (sensor_msgs/CompressedImage), after remapping of `image`.",
            choices=("raw", "compressed"),
        ),
        D("crop.padding", "Fraction of the box width/height added on each side before cropping.", 0.0, 2.0),
        D(
            "crop.min_box_size",
            "Boxes smaller than this (px, after clamping to the frame) are skipped.",
            0.0,
            100000.0,
        ),
        D(
            "filter.class_ids",
            "Detector class ids (ObjectHypothesis.class_id of a detection's best "
            'hypothesis, strings) to classify; empty list (or [""]) = every class. Other detections are counted '
            "(filtered) and not published.",
        ),
        D(
            "filter.min_score",
            "Detections whose detector score is below this are not classified (counted "
            "as filtered, not published); 0 keeps all.",
            0.0,
            1.0,
        ),
        D(
            "sync.mode",
            "stamp pairs image and detections by header stamp; arrival pairs "
            "each detections message with the latest image (for detectors that do not copy the stamp).",
            choices=PAIRING_MODES,
        ),
        D(
            "sync.tolerance_s",
            "Largest stamp difference, s, for which an image and a detections message are the same frame.",
            0.0,
            10.0,
        ),
        D(
            "sync.queue_size",
            "Unpaired images / detections kept while waiting for their "
            "partner; raise it when the detector lags the camera by many frames.",
            1,
            10000,
        ),
        D("voting.window", "Per-frame predictions per track the smoothed label is voted over.", 1, 10000),
        D(
            "voting.min_votes",
            "Votes a track needs before its label is stable (Viewpoint.is_stable); at most voting.window.",
            1,
            10000,
        ),
        D("voting.mode", "majority votes on per-frame labels; mean averages probabilities.", choices=VOTING_MODES),
        D(
            "voting.window_s",
            "When > 0, also bound the vote window in time: votes older than this, s (frame stamps), before the "
            "track's newest vote leave it, so a track classified a few times a second (scheduled) is voted over "
            "the same span of motion as one classified every frame; 0 = count only (voting.window).",
            0.0,
            3600.0,
        ),
        D("voting.track_timeout_s", "A track unseen for this long, s (frame stamps), is forgotten.", 0.001, 3600.0),
        D(
            "voting.switch_votes",
            "Hysteresis: once a track's label is stable, a new label "
            "must win this many consecutive votes before the voted label changes (1 = none); at most voting.window.",
            1,
            10000,
        ),
        D(
            "voting.min_confidence",
            "Per-frame predictions whose top probability is "
            "below this do not vote (Viewpoint.voted false); 0 = all vote.",
            0.0,
            1.0,
        ),
        D(
            "voting.skip_truncated",
            "Predictions on boxes whose padded crop is cut by the frame edge (Viewpoint.truncated) do not vote.",
        ),
        D(
            "tracking.iou_threshold",
            "IoU needed to continue a track when the detector sets no Detection2D.id.",
            0.0,
            1.0,
        ),
        D(
            "processing.policy",
            "latest processes the newest paired frame and drops older ones "
            "(live use); all queues frames FIFO up to processing.queue_size (offline evaluation).",
            choices=("latest", "all"),
        ),
        D(
            "processing.queue_size",
            "Frames buffered with processing.policy all; the oldest is dropped when full.",
            1,
            100000,
        ),
        D(
            "schedule.mode",
            "every_frame classifies every crop of every processed frame and "
            "publishes after it (processing.policy applies); scheduled publishes every paired frame at once from "
            "per-track state while an inference thread classifies the crops the scheduler picks (live default).",
            choices=SCHEDULE_MODES,
        ),
        D(
            "schedule.max_crops",
            "scheduled: crops per inference cycle (one batch): the focus share comes out of it; new tracks may "
            "exceed it (schedule.max_new_crops).",
            1,
            4096,
        ),
        D(
            "schedule.box_change",
            "scheduled: relative change of box area or aspect "
            "ratio since a track's last classification that asks for a new one.",
            0.001,
            100.0,
        ),
        D(
            "schedule.max_age_s",
            "scheduled: label age, s, after which a visible "
            "track is classified before unsettled and changed ones (the budget permitting).",
            0.01,
            3600.0,
        ),
        D(
            "schedule.inference_nice",
            "scheduled: niceness added to the inference "
            "thread and the model runtime's threads, so that on a busy CPU the publishing path does not wait behind "
            "the model (0 = same priority; higher starves the model sooner under other load).",
            0,
            19,
        ),
        D(
            "schedule.focus_share",
            "scheduled: fraction of each inference cycle's crops (of schedule.max_crops, rounded up, at least one) "
            "reserved for the focused tracks: the navigation policy's target, from PolicyState on `policy_state`. "
            "The target is classified every cycle whatever the herd size; without a (fresh) focus or with the "
            "target out of view the whole budget goes to the other tracks. 0 = focus off (no subscription).",
            0.0,
            1.0,
        ),
        D(
            "schedule.focus_timeout_s",
            "scheduled: a focus whose PolicyState header stamp is further than this, s, from the stamp of the frame "
            "being classified is stale and ignored (the policy stopped, or the clock was reset).",
            0.01,
            3600.0,
        ),
        D(
            "schedule.max_new_crops",
            "scheduled: tracks never classified before that one cycle classifies at most, past schedule.max_crops if "
            "need be, so a new track gets its first label in the first cycle that sees it (more wait for the next "
            "cycle); 0 = new tracks only within schedule.max_crops. A cycle costs about (max_crops + new tracks) "
            "crops: lower it on a slow CPU where a herd appearing at once would stall the target's label.",
            0,
            4096,
        ),
        D(
            "publish_debug_image",
            "Offer `debug_image` (rgb8) and `debug_image/compressed` (JPEG): the frame "
            "with the annotation overlay burnt in, drawn and encoded only while someone subscribes.",
        ),
        D("debug_image.jpeg_quality", "JPEG quality of `debug_image/compressed`.", 1, 100),
        D(
            "publish_annotations",
            "Publish `annotations` (visualization_msgs/ImageMarker, one per processed "
            "frame with the image header): boxes and `<track> <voted viewpoint>` labels coloured by viewpoint, "
            "drawn on the image by Foxglove's Image panel.",
        ),
        D(
            "publish_track_summaries",
            "Publish a TrackSummary on `track_summaries` when a track expires "
            "(unseen for voting.track_timeout_s): viewpoint histogram and the best left/right/overall views.",
        ),
        D(
            "best_views.save_dir",
            "Folder to save each finished track's best left/right/overall crops (JPEG, "
            "<track>/{left,right,best}.jpg) and a sightings.csv row in; empty = off.",
        ),
        D("diagnostics_period_s", "Period of `diagnostics`, s; 0 disables them.", 0.0, 3600.0),
        D(
            "lost_frames_timeout_s",
            "Warn once (and set diagnostics to WARN) when detections arrive or the "
            "image topic has a publisher but no image was received for this long, s, or images arrive far less "
            "often than detections; 0 disables the check.",
            0.0,
            3600.0,
        ),
        D("autostart", "Configure and activate at start (no lifecycle manager needed)."),
    )


_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _check_device_and_backend(v: dict[str, Any]) -> list[str]:
    device, backend = str(v["model.device"]), str(v["model.backend"])
    if not _DEVICE_RE.match(device):
        return [f"model.device: must be cpu, cuda or cuda:<index>, got {device!r}"]
    from pose_classifier_ros.model.classifier import resolve_backend

    try:
        resolve_backend(backend, "cuda" if device.startswith("cuda") else "cpu")
    except ValueError as exc:
        return [f"model.backend: {exc}"]
    return []


def checkpoint_is_set(v: dict[str, Any]) -> list[str]:
    """The node's own check: it cannot configure without a checkpoint (replay takes it on its command line)."""
    if str(v["model.checkpoint"]).strip():
        return []
    return ["model.checkpoint: is empty; set it to the checkpoint file"]


@functools.cache
def node_schema() -> ParameterSchema:
    """The classifier node's ParameterSchema (builds ``NodeConfig``)."""
    return ParameterSchema.from_config(
        NODE_NAME,
        NodeConfig,
        _docs(),
        fixed=FIXED_FIELDS,
        cross_checks=(at_most("voting.window", "voting.min_votes", "voting.switch_votes"), _check_device_and_backend),
    )


def node_parameters():
    """The node's parameters in YAML order."""
    return node_schema().parameters


def config_from_values(values: dict[str, Any], source: str = "", require_checkpoint: bool = True) -> NodeConfig:
    """NodeConfig from ``{parameter name: value}`` (missing names keep their defaults).

    ParameterError (a ValueError) names every unknown key, wrong type, out-of-range value and
    inconsistent pair, prefixed by `source` (the YAML file or the node). require_checkpoint: an empty
    model.checkpoint is an error (the node); replay passes the checkpoint on its command line.
    """
    return node_schema().build(values, source, extra_checks=(checkpoint_is_set,) if require_checkpoint else ())


def load_node_config(path: str | Path) -> NodeConfig:
    """NodeConfig from the node's section of a ROS 2 parameters YAML file (config/pose_classifier.yaml).

    The same checks, with the same messages, as the node applies to its parameters (the checkpoint may
    be empty).
    """
    return node_schema().build_file(path)


__all__ = [
    "FIXED_FIELDS",
    "NODE_NAME",
    "BestViewsSettings",
    "DebugImageSettings",
    "ModelSettings",
    "NodeConfig",
    "ProcessingSettings",
    "TrackingSettings",
    "checkpoint_is_set",
    "config_from_values",
    "load_node_config",
    "node_parameters",
    "node_schema",
]
