"""What the classifier node's transitions set up and tear down: model checks, the model, topics, memory.

configure: ``check_model`` (the checkpoint and, for a head-only one, its backbone weights, loaded once and
dropped) and ``create_publishers``; activate: ``build_classifier`` (at the inference thread's priority) and
``create_subscriptions`` (with the focus topic ``policy_state`` where it matters, ``uses_focus``); deactivate: ``release_memory``. Each step reports a problem as ConfigureError
with the line the node logs.
"""

from __future__ import annotations

import ctypes
import gc
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo
from visualization_msgs.msg import ImageMarker

from pose_classifier_ros import msg as pc_msg
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.ros import qos
from pose_classifier_ros.ros.params import NodeConfig, resolve_path
from pose_classifier_ros.stream.threads import at_inference_priority


class ConfigureError(Exception):
    """Configure cannot succeed; the message is the whole log line."""


@dataclass
class ModelFiles:
    """checkpoint: resolved path; backbone_weights: resolved path or None; class_names: the model's."""

    checkpoint: Path
    backbone_weights: Path | None
    class_names: tuple[str, ...] = VIEWPOINTS


def check_model(config: NodeConfig) -> ModelFiles:
    """Resolve and load once everything activate needs (a head-only checkpoint's backbone too)."""
    try:
        path = resolve_path(config.model.checkpoint)
    except FileNotFoundError as exc:
        raise ConfigureError(f"configure failed: model.checkpoint: {exc}") from exc
    from pose_classifier_ros.model.device import DeviceError, resolve_device

    try:
        resolve_device(config.model.device)
    except DeviceError as exc:
        raise ConfigureError(f"configure failed: model.device: {exc}") from exc
    from pose_classifier_ros.model.checkpoint import CheckpointError
    from pose_classifier_ros.model.preflight import check_model_files

    try:  # loaded, checked, then dropped again
        weights = resolve_path(config.model.backbone_weights) if config.model.backbone_weights else None
        model_config, _ = check_model_files(path, backbone_weights=weights)
    except (CheckpointError, OSError) as exc:
        raise ConfigureError(
            f"configure failed: cannot load checkpoint {path} (model.checkpoint={config.model.checkpoint!r}): {exc}"
        ) from exc
    names = tuple(model_config.class_names) if model_config is not None else VIEWPOINTS
    return ModelFiles(path, weights, names)


def build_classifier(config: NodeConfig, files: ModelFiles, nice: int):
    """The ViewpointClassifier on model.device, built in a thread at niceness +nice (its runtime's thread
    pools inherit it). With model.backend auto, the measured choice is cached in model.backend_cache_dir
    (``classifier.backend_choice``)."""
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    model = config.model
    return at_inference_priority(
        nice,
        lambda: ViewpointClassifier.from_checkpoint(
            files.checkpoint,
            device=model.device,
            backend=model.backend,
            backbone_weights=str(files.backbone_weights) if files.backbone_weights else None,
            batch_size=model.batch_size,
            crop=config.crop,
            num_threads=model.num_threads or None,
            backend_cache_dir=model.backend_cache_dir or None,
            # auto times candidates on the batches this node will run: one inference cycle, or a frame
            workload_crops=config.schedule.max_crops if config.schedule.mode == "scheduled" else model.batch_size,
        ),
    )


def _publisher(node, reporter, msg_type, topic: str, profile):
    return node.create_lifecycle_publisher(
        msg_type,
        topic,
        profile,
        qos_overriding_options=qos.overridable(),
        event_callbacks=reporter.publisher_callbacks(node.resolve_topic_name(topic), profile),
    )


def create_publishers(node, config: NodeConfig, reporter) -> dict:
    """The node's lifecycle publishers by name (the optional ones only when configured)."""
    topics = [
        ("viewpoints", pc_msg.ViewpointArray, "viewpoints", qos.output_qos()),
        ("label_info", LabelInfo, "label_info", qos.latched_qos()),
        ("diagnostics", DiagnosticArray, "diagnostics", qos.output_qos()),
    ]
    if config.publish_debug_image:
        topics += [
            ("debug_image", Image, "debug_image", qos.output_qos(1)),
            ("debug_image_compressed", CompressedImage, "debug_image/compressed", qos.output_qos(1)),
        ]
    if config.publish_annotations:
        topics.append(("annotations", ImageMarker, "annotations", qos.output_qos()))
    if config.publish_track_summaries:
        topics.append(("track_summaries", pc_msg.TrackSummary, "track_summaries", qos.output_qos(50)))
    return {name: _publisher(node, reporter, msg_type, topic, profile) for name, msg_type, topic, profile in topics}


def uses_focus(config: NodeConfig) -> bool:
    """The node subscribes the policy's `policy_state` (focus) only where it changes something: scheduled mode
    with schedule.focus_share > 0 (every_frame classifies every visible track anyway)."""
    return config.schedule.mode == "scheduled" and config.schedule.focus_share > 0


def create_subscriptions(
    node, config: NodeConfig, reporter, image_cb, detections_cb, focus_cb=None
) -> tuple[list, str]:
    """(subscriptions, image topic): `image` (raw) or `image/compressed`, `detections` and, where
    uses_focus(config) and focus_cb is given, `policy_state` (PolicyState). Remapping applies to `image`;
    the compressed topic is the remapped name + /compressed, as image_transport names it."""
    image_topic, image_type = node.resolve_topic_name("image"), Image
    if config.image_transport == "compressed":
        image_topic, image_type = image_topic + "/compressed", CompressedImage
    topics = [
        (image_type, image_topic, qos.image_qos(), image_cb),
        (Detection2DArray, node.resolve_topic_name("detections"), qos.detections_qos(), detections_cb),
    ]
    if focus_cb is not None and uses_focus(config):
        topics.append((pc_msg.PolicyState, node.resolve_topic_name("policy_state"), qos.focus_qos(), focus_cb))
    subs = [
        node.create_subscription(
            msg_type,
            topic,
            callback,
            profile,
            qos_overriding_options=qos.overridable(),
            event_callbacks=reporter.subscription_callbacks(topic, profile),
        )
        for msg_type, topic, profile, callback in topics
    ]
    return subs, image_topic


def release_memory(device) -> None:
    """After dropping the model: collect it, empty the CUDA cache on a GPU, and hand glibc's freed pages back
    (glibc keeps freed weights mapped) so an inactive node is small again."""
    gc.collect()
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = [
    "ConfigureError",
    "ModelFiles",
    "build_classifier",
    "check_model",
    "create_publishers",
    "create_subscriptions",
    "release_memory",
    "uses_focus",
]
