"""`pose_classifier_node`: lifecycle node that publishes the viewpoint of every detected animal per frame.

Subscribes ``image`` (Image) or ``image/compressed`` (CompressedImage) and ``detections``
(Detection2DArray); publishes ``viewpoints`` (ViewpointArray, the image header copied), ``label_info``
(LabelInfo, transient local), ``diagnostics`` and the visual outputs; optionally reads ``policy_state``
(PolicyState: the navigation policy's target gets a reserved share of each inference cycle). The node holds no ML logic and
chooses only the threading of one TrackPipeline (stream/pipeline.py): its executor thread pairs images
with detections and, in ``schedule.mode: scheduled``, observes and publishes each pair while an inference
thread classifies; in ``every_frame`` a worker thread steps and publishes each pair (ros/node_processing.py
says who does what). Lifecycle set-up is ros/node_setup.py, diagnostics ros/node_diagnostics.py.
docs/node_pose_classifier.md is the reference.
"""

from __future__ import annotations

import signal
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from vision_msgs.msg import Detection2DArray, LabelInfo, VisionClass

from pose_classifier_ros.ros import qos
from pose_classifier_ros.ros.failure_log import FailureLog, describe, reported
from pose_classifier_ros.ros.node_diagnostics import NodeCounters, diagnostics_status
from pose_classifier_ros.ros.node_outputs import NodeOutputs
from pose_classifier_ros.ros.node_processing import NodeProcessing
from pose_classifier_ros.ros.node_setup import (
    ConfigureError,
    ModelFiles,
    build_classifier,
    check_model,
    create_publishers,
    create_subscriptions,
    release_memory,
    uses_focus,
)
from pose_classifier_ros.ros.params import NodeConfig, declare_parameters, read_config
from pose_classifier_ros.stream.conversions import detections_from_msg, message_types
from pose_classifier_ros.stream.frame_processor import FrameProcessor
from pose_classifier_ros.stream.frame_watchdog import FrameWatchdog, FrameWatchdogConfig
from pose_classifier_ros.stream.node_config import node_parameters

NODE_NAME = "pose_classifier"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
CONFIGURE_PARAMETERS = frozenset(p.name for p in node_parameters())  # all read once, at configure


class PoseClassifierNode(LifecycleNode):
    """ROS I/O around StampPairer + TrackPipeline, with the yolo_ros lifecycle split."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.failures = FailureLog(self.get_logger().error)
        declare_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.config: NodeConfig | None = None
        self._model_files: ModelFiles | None = None
        self._qos_reporter = qos.IncompatibleQosReporter(self)
        self._pubs: dict = {}
        self._subs: list = []
        self._timer = None
        self._watchdog: FrameWatchdog | None = None
        self._processing: NodeProcessing | None = None
        self._counters = NodeCounters()
        self._pairing_warned = False
        self._image_topic = ""
        self._backend_diagnostics: dict = {}

    # -- lifecycle --------------------------------------------------------------------------------
    @reported("configure")
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            config = read_config(self)
        except ValueError as exc:
            log.error(f"configure failed: invalid parameters: {exc}")
            return FAILURE
        try:
            self._model_files = check_model(config)
        except ConfigureError as exc:
            log.error(str(exc))
            return FAILURE
        self.config, path = config, self._model_files.checkpoint
        self._pubs = create_publishers(self, config, self._qos_reporter)
        log.info(
            f"configured: checkpoint {path}, device {config.model.device}, backend {config.model.backend}, "
            f"sync {config.sync.mode}, schedule {config.schedule.mode}, policy {config.processing.policy}"
        )
        return SUCCESS

    @reported("activate")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from pose_classifier_ros.stream.pipeline_factory import build_pipeline

        cfg, log = self.config, self.get_logger()
        t0 = time.perf_counter()
        try:
            classifier = build_classifier(
                cfg, self._model_files, cfg.schedule.inference_nice if cfg.schedule.mode == "scheduled" else 0
            )
            pipeline = build_pipeline(cfg, classifier, on_clock_reset=lambda event: log.info(event.message))
            outputs = NodeOutputs(cfg, self._pubs, self._counters, log, lambda: self.get_clock().now().nanoseconds)
        except Exception as exc:  # a model that does not load must leave the node inactive, not dead
            log.error(
                f"activate failed: cannot build the model from {self._model_files.checkpoint} on {cfg.model.device}: "
                f"{describe(exc)}"
            )
            self.failures.report("activate", exc)  # the traceback
            release_memory(None)
            return FAILURE
        choice = getattr(classifier, "backend_choice", None)  # backend auto: what it measured and chose
        if choice is not None:
            log.info(choice.summary())
        self._backend_diagnostics = choice.as_diagnostics() if choice is not None else {"backend": classifier.backend}
        super().on_activate(state)  # enables the lifecycle publishers
        self._publish_label_info()
        self._subs, self._image_topic = create_subscriptions(
            self, cfg, self._qos_reporter, self._image_cb, self._detections_cb, self._policy_state_cb
        )
        processor = FrameProcessor(pipeline, message_types())
        self._processing = NodeProcessing(
            cfg, processor, outputs, self._counters, self.failures, log, self._image_topic
        )
        self._processing.start()
        self._pairing_warned = False
        self._watchdog = None
        if cfg.lost_frames_timeout_s > 0:
            self._watchdog = FrameWatchdog(
                self._image_topic,
                FrameWatchdogConfig(
                    timeout_s=cfg.lost_frames_timeout_s, window_s=max(10.0, 2 * cfg.lost_frames_timeout_s)
                ),
                transport=cfg.image_transport,
            )
        # Steady clock: diagnostics keep coming while a simulated clock is paused.
        self._timer = self.create_timer(
            cfg.diagnostics_period_s or 1.0, self._diagnostics_cb, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        focus = (
            f"; focus ({cfg.schedule.focus_share:g} of each cycle) from {self.resolve_topic_name('policy_state')}"
            if uses_focus(cfg)
            else ""
        )
        log.info(
            f"active: {classifier.backend} on {classifier.device} (loaded in {time.perf_counter() - t0:.1f} s), "
            f"schedule {cfg.schedule.mode}, "
            f"listening on {self._image_topic} and {self.resolve_topic_name('detections')}{focus}"
        )
        return SUCCESS

    @reported("deactivate")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        super().on_deactivate(state)
        self.get_logger().info("inactive: model released")
        return SUCCESS

    @reported("cleanup")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self.config = None
        return SUCCESS

    @reported("shutdown")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return SUCCESS

    @reported("error transition")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        cause = f" (after {self.failures.last}; traceback above)" if self.failures.last else ""
        self.get_logger().error(f"error transition{cause}: releasing the model and all topics")
        self.release()
        self.config = None
        return SUCCESS

    def release(self) -> None:
        """Stop the thread, free the model and destroy every subscription and publisher (idempotent)."""
        self._stop_processing()
        self._destroy_publishers()

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Every node parameter is read once, at configure: while configured (inactive or active) a change
        would silently do nothing, so it is refused with a message saying how to apply it."""
        if self.config is None:
            return SetParametersResult(successful=True)
        names = [p.name for p in params if p.name in CONFIGURE_PARAMETERS]
        if not names:
            return SetParametersResult(successful=True)
        node = self.get_fully_qualified_name()
        return SetParametersResult(
            successful=False,
            reason=(
                f"{', '.join(names)} is read at configure and the node is configured: the change would take "
                f"effect only after cleanup + configure (ros2 lifecycle set {node} deactivate, cleanup; set the "
                "parameter; configure, activate); not changed"
            ),
        )

    # -- setup helpers ----------------------------------------------------------------------------
    def _publish_label_info(self) -> None:
        info = LabelInfo(threshold=0.0)
        info.header.stamp = self.get_clock().now().to_msg()
        info.class_map = [VisionClass(class_id=i, class_name=n) for i, n in enumerate(self._model_files.class_names)]
        self._pubs["label_info"].publish(info)

    def _stop_processing(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        processing, self._processing = self._processing, None
        if processing is not None:  # also restores what activate changed process-wide (the switch interval)
            processing.stop()
            device = getattr(processing.processor.pipeline.classifier, "device", None)
            del processing
            release_memory(device)

    def _destroy_publishers(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    # -- executor thread: the callbacks feed the data path (ros/node_processing.py) -----------------------
    @reported("image callback", reraise=False)
    def _image_cb(self, msg) -> None:
        processing = self._processing
        if self._watchdog is not None:
            self._watchdog.image_received(
                getattr(msg, "width", None),
                getattr(msg, "height", None),
                getattr(msg, "encoding", None) or getattr(msg, "format", None),
            )
        if processing is not None:
            processing.offer("images_received", processing.pairer.add_image, msg)

    @reported("detections callback", reraise=False)
    def _detections_cb(self, msg: Detection2DArray) -> None:
        processing = self._processing
        if self._watchdog is not None:
            self._watchdog.detections_received()
        if processing is not None:
            add = processing.pairer.add_detections
            processing.offer("detections_received", lambda stamp, m: add(stamp, detections_from_msg(m)), msg)

    @reported("policy_state callback", reraise=False)
    def _policy_state_cb(self, msg) -> None:
        processing = self._processing
        if processing is not None:
            processing.set_focus(msg)

    # -- diagnostics ------------------------------------------------------------------------------
    def _check_frames_flow(self) -> None:
        """Lost-frame watchdog: one warning when frames stop while detections/publishers are there, one
        info when they flow again."""
        if self._watchdog is None:
            return
        publishers = [
            f"{p.node_namespace.rstrip('/')}/{p.node_name}"
            for p in self.get_publishers_info_by_topic(self._image_topic)
        ]
        event = self._watchdog.check(publishers)
        if event is not None and event.kind == "lost":
            self.get_logger().warning(event.message)
        elif event is not None:
            self.get_logger().info(event.message)

    @reported("diagnostics timer")
    def _diagnostics_cb(self) -> None:
        processing = self._processing
        if processing is None:
            return
        pairer = processing.pairer
        self._check_frames_flow()
        problem = pairer.diagnose()
        if problem and not self._pairing_warned:
            self._pairing_warned = True  # one clear warning, not one per frame
            self.get_logger().warning(
                f"image/detections pairing on {self._image_topic} and "
                f"{self.resolve_topic_name('detections')}: {problem}"
            )
        if self.config.diagnostics_period_s <= 0:
            return
        snapshot = self._counters.snapshot()
        snapshot.counts["failures_repeated"] = sum(self.failures.repeats.values())
        extra = {
            "tracks": str(len(processing.processor.pipeline)),
            "processing_policy": self.config.processing.policy,
            "schedule_mode": self.config.schedule.mode,
            "focus": processing.processor.pipeline.focus.describe(),
            "qos_incompatible_events": str(self._qos_reporter.count),
            **{k: str(v) for k, v in self._backend_diagnostics.items()},
        }
        status = diagnostics_status(
            f"{self.get_fully_qualified_name()}: viewpoint pipeline",
            self.config.model.device,
            snapshot,
            pairer.stats,
            extra,
            image_topic=self._image_topic,
            pairing_problem=problem,
            watchdog=self._watchdog,
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


def main(args=None) -> int:
    try:
        with rclpy.init(args=args):
            try:
                node = PoseClassifierNode()
            except (ValueError, ParameterException) as exc:
                rclpy.logging.get_logger(NODE_NAME).error(f"invalid parameters: {exc}")
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            try:
                if node.get_parameter("autostart").value:
                    # Same process, before spinning: no race between configure and activate (launch_ros#318).
                    if node.trigger_configure() == SUCCESS:
                        node.trigger_activate()
                executor.spin()
            finally:
                node.release()  # the worker thread must stop before the context goes away
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C in a terminal reaches both `ros2 launch` and the node, and launch forwards another SIGINT:
        # one arriving during interpreter teardown must not turn a clean exit into "died, exit code -2".
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
