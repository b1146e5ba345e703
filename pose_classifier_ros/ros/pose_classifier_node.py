"""`pose_classifier_node`: lifecycle node that publishes the viewpoint of every detected animal per frame.

Subscribes ``image`` (Image) or ``image/compressed`` (CompressedImage) and ``detections``
(Detection2DArray); publishes ``viewpoints`` (ViewpointArray, the image header copied), ``label_info``
(LabelInfo, transient local), ``diagnostics`` and optionally ``debug_image``. The node holds no ML
logic: callbacks only read stamps and feed the StampPairer. schedule.mode scheduled (default): the
publishing path (executor thread, ``_publish_scheduled``) associates every paired frame's detections
with tracks and publishes at once from track state; the inference thread (``_infer_loop``) takes the
newest published frame, decodes it and classifies the crops the scheduler picks. every_frame: a worker
thread (``_work``) decodes the newest paired frame, runs ViewpointPipeline on every crop and publishes.
docs/node_pose_classifier.md is the reference.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
import time
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo, VisionClass
from visualization_msgs.msg import ImageMarker

from pose_classifier_ros import msg as pc_msg
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.ros import qos
from pose_classifier_ros.ros.failure_log import FailureLog, describe
from pose_classifier_ros.ros.params import NodeConfig, declare_parameters, read_config, resolve_path
from pose_classifier_ros.stream.conversions import detections_from_msg, message_types, stamp_to_ns
from pose_classifier_ros.stream.frame_processor import FrameDecodeError, FrameProcessor
from pose_classifier_ros.stream.frame_watchdog import FrameWatchdog, FrameWatchdogConfig
from pose_classifier_ros.stream.pairing import StampPairer
from pose_classifier_ros.visualization.annotations import annotation_types
from pose_classifier_ros.visualization.frame_visuals import FrameVisuals, VisualsConfig

NODE_NAME = "pose_classifier"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class FrameQueue:
    """Paired frames from the executor to the worker. "latest": one slot, a new frame replaces the
    waiting one; "all": FIFO of `maxsize`, the oldest is dropped when full. put() returns drops."""

    def __init__(self, policy: str, maxsize: int):
        self._items: deque = deque()
        self._maxsize = 1 if policy == "latest" else maxsize
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> int:
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self):
        """The next item, or None once closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return None if self._closed else self._items.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


def _lower_thread_priority(nice: int) -> None:
    """Raise this thread's niceness by `nice` (Linux: per thread, inherited by threads it creates; allowed
    without privileges). In scheduled mode the inference path runs so, so that on a busy CPU the cheap
    publishing path does not queue behind the model (schedule.inference_nice)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + nice, 19))
    except (AttributeError, OSError):
        pass


def _at_inference_priority(nice: int, build):
    """build() in a thread at niceness +nice (nice > 0), so that the thread pools the model runtime creates
    there (ONNX Runtime's intra-op threads) inherit it; returns build()'s result or raises its error."""
    if nice <= 0:
        return build()
    out: dict = {}

    def run():
        _lower_thread_priority(nice)
        try:
            out["value"] = build()
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="pose_classifier_model_build")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _logged(where: str):
    """Method decorator: an exception escaping it is logged (type, message, traceback; once per cause) before
    rclpy sees it (rclpy turns it into the error transition, or stops spinning, without saying why)."""

    def wrap(fn):
        def logged(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                self._failures.report(where, exc)
                raise

        logged.__name__, logged.__doc__ = fn.__name__, fn.__doc__
        return logged

    return wrap


class PoseClassifierNode(LifecycleNode):
    """ROS I/O around StampPairer + ViewpointPipeline, with the yolo_ros lifecycle split."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._failures = FailureLog(self.get_logger().error)
        self._watchdog: FrameWatchdog | None = None
        self._backbone_weights_path = None
        declare_parameters(self)
        self.config: NodeConfig | None = None
        self.checkpoint_path = None
        self._class_names = VIEWPOINTS
        self._qos_reporter = qos.IncompatibleQosReporter(self)
        self._pubs: dict = {}
        self._subs: list = []
        self._timer = None
        self._pairer: StampPairer | None = None
        self._processor: FrameProcessor | None = None
        self._visuals: FrameVisuals | None = None
        self._frames: FrameQueue | None = None
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # counters and timing windows (executor thread + worker)
        self._counts: Counter = Counter()
        self._latency_ms: deque = deque(maxlen=200)  # rolling window of the last processed frames
        self._label_age_s: deque = deque(maxlen=1000)  # ages of the last published known labels (scheduled)
        self._stage_ms: dict[str, deque] = {}
        self._pairing_warned = False
        self._image_topic = ""

    # -- lifecycle --------------------------------------------------------------------------------
    @_logged("configure")
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            config = read_config(self)
        except ValueError as exc:
            log.error(f"configure failed: invalid parameters: {exc}")
            return FAILURE
        try:
            path = resolve_path(config.model.checkpoint)
        except FileNotFoundError as exc:
            log.error(f"configure failed: model.checkpoint: {exc}")
            return FAILURE
        from pose_classifier_ros.model.device import DeviceError, resolve_device

        try:
            resolve_device(config.model.device)
        except DeviceError as exc:
            log.error(f"configure failed: model.device: {exc}")
            return FAILURE
        from pose_classifier_ros.model.checkpoint import CheckpointError
        from pose_classifier_ros.model.preflight import check_model_files

        try:  # everything activate needs (a head-only checkpoint's backbone too), then dropped again
            weights = resolve_path(config.model.backbone_weights) if config.model.backbone_weights else None
            model_config, _ = check_model_files(path, backbone_weights=weights)
        except (CheckpointError, OSError) as exc:
            log.error(
                f"configure failed: cannot load checkpoint {path} (model.checkpoint={config.model.checkpoint!r}): {exc}"
            )
            return FAILURE
        if model_config is not None:
            self._class_names = tuple(model_config.class_names)
        self.config, self.checkpoint_path, self._backbone_weights_path = config, path, weights
        self._pubs = {
            "viewpoints": self._publisher(pc_msg.ViewpointArray, "viewpoints", qos.output_qos()),
            "label_info": self._publisher(LabelInfo, "label_info", qos.latched_qos()),
            "diagnostics": self._publisher(DiagnosticArray, "diagnostics", qos.output_qos()),
        }
        if config.publish_debug_image:
            self._pubs["debug_image"] = self._publisher(Image, "debug_image", qos.output_qos(1))
            self._pubs["debug_image_compressed"] = self._publisher(
                CompressedImage, "debug_image/compressed", qos.output_qos(1)
            )
        if config.publish_annotations:
            self._pubs["annotations"] = self._publisher(ImageMarker, "annotations", qos.output_qos())
        if config.publish_track_summaries:
            self._pubs["track_summaries"] = self._publisher(pc_msg.TrackSummary, "track_summaries", qos.output_qos(50))
        log.info(
            f"configured: checkpoint {path}, device {config.model.device}, backend {config.model.backend}, "
            f"sync {config.sync.mode}, schedule {config.schedule.mode}, policy {config.processing.policy}"
        )
        return SUCCESS

    @_logged("activate")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from pose_classifier_ros.model.classifier import ViewpointClassifier
        from pose_classifier_ros.stream.pipeline import ScheduledPipeline, ViewpointPipeline

        cfg, log = self.config, self.get_logger()
        t0 = time.perf_counter()
        try:
            nice = cfg.schedule.inference_nice if cfg.schedule.mode == "scheduled" else 0
            classifier = _at_inference_priority(
                nice,
                lambda: ViewpointClassifier.from_checkpoint(
                    self.checkpoint_path,
                    device=cfg.model.device,
                    backend=cfg.model.backend,
                    backbone_weights=str(self._backbone_weights_path) if self._backbone_weights_path else None,
                    batch_size=cfg.model.batch_size,
                    crop=cfg.crop,
                    num_threads=cfg.model.num_threads or None,
                ),
            )
            if cfg.schedule.mode == "scheduled":
                pipeline = ScheduledPipeline(
                    classifier,
                    voting=cfg.voting,
                    iou_threshold=cfg.tracking.iou_threshold,
                    schedule=cfg.schedule,
                    crop=cfg.crop,
                    detection_filter=cfg.filter,
                )
            else:
                pipeline = ViewpointPipeline(
                    classifier,
                    voting=cfg.voting,
                    iou_threshold=cfg.tracking.iou_threshold,
                    detection_filter=cfg.filter,
                    crop=cfg.crop,
                )
            self._processor = FrameProcessor(pipeline, message_types())
            self._visuals = FrameVisuals(
                VisualsConfig(
                    track_summaries=cfg.publish_track_summaries,
                    best_views_dir=cfg.best_views.save_dir,
                    jpeg_quality=cfg.debug_image.jpeg_quality,
                    track_timeout_s=cfg.voting.track_timeout_s,
                ),
                annotation_types(),
            )
            self._count("debug_images_encoded", 0)  # listed in diagnostics from the start
        except Exception as exc:  # a model that does not load must leave the node inactive, not dead
            log.error(
                f"activate failed: cannot build the model from {self.checkpoint_path} on {cfg.model.device}: {describe(exc)}"
            )
            self._failures.report("activate", exc)  # the traceback
            self._release_model()
            return FAILURE
        self._pairer = StampPairer(cfg.sync)
        self._pairing_warned = False
        super().on_activate(state)  # enables the lifecycle publishers
        self._publish_label_info()
        if self._processor.scheduled:  # the inference thread only ever wants the newest frame
            # The publishing path (executor thread) must get the GIL back quickly while the inference thread
            # runs Python code; the default 5 ms switch interval adds up to 5 ms per hand-over.
            sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
            self._frames = FrameQueue("latest", 1)
            self._worker = threading.Thread(target=self._infer_loop, name="pose_classifier_inference", daemon=True)
        else:
            self._frames = FrameQueue(cfg.processing.policy, cfg.processing.queue_size)
            self._worker = threading.Thread(target=self._work, name="pose_classifier_worker", daemon=True)
        self._worker.start()
        self._create_subscriptions()
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
        log.info(
            f"active: {classifier.backend} on {classifier.device} (loaded in {time.perf_counter() - t0:.1f} s), "
            f"schedule {cfg.schedule.mode}, "
            f"listening on {self._image_topic} and {self.resolve_topic_name('detections')}"
        )
        return SUCCESS

    @_logged("deactivate")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        super().on_deactivate(state)
        self.get_logger().info("inactive: model released")
        return SUCCESS

    @_logged("cleanup")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self.config = None
        return SUCCESS

    @_logged("shutdown")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return SUCCESS

    @_logged("error transition")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        cause = f" (after {self._failures.last}; traceback above)" if self._failures.last else ""
        self.get_logger().error(f"error transition{cause}: releasing the model and all topics")
        self.release()
        return SUCCESS

    def release(self) -> None:
        """Stop the worker, free the model and destroy every subscription and publisher (idempotent)."""
        self._stop_processing()
        self._destroy_publishers()

    # -- setup helpers ----------------------------------------------------------------------------
    def _publisher(self, msg_type, topic: str, profile):
        name = self.resolve_topic_name(topic)
        return self.create_lifecycle_publisher(
            msg_type,
            topic,
            profile,
            qos_overriding_options=qos.overridable(),
            event_callbacks=self._qos_reporter.publisher_callbacks(name, profile),
        )

    def _create_subscriptions(self) -> None:
        # Remapping applies to `image`; the compressed topic is the remapped name + /compressed (image_transport).
        self._image_topic = self.resolve_topic_name("image")
        image_type = Image
        if self.config.image_transport == "compressed":
            self._image_topic += "/compressed"
            image_type = CompressedImage
        for msg_type, topic, profile, callback in (
            (image_type, self._image_topic, qos.image_qos(), self._image_cb),
            (Detection2DArray, self.resolve_topic_name("detections"), qos.detections_qos(), self._detections_cb),
        ):
            self._subs.append(
                self.create_subscription(
                    msg_type,
                    topic,
                    callback,
                    profile,
                    qos_overriding_options=qos.overridable(),
                    event_callbacks=self._qos_reporter.subscription_callbacks(topic, profile),
                )
            )

    def _publish_label_info(self) -> None:
        info = LabelInfo(threshold=0.0)
        info.header.stamp = self.get_clock().now().to_msg()
        info.class_map = [VisionClass(class_id=i, class_name=name) for i, name in enumerate(self._class_names)]
        self._pubs["label_info"].publish(info)

    def _stop_processing(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._frames is not None:
            self._frames.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        self._frames = None
        self._pairer = None
        self._flush_track_summaries()
        self._release_model()

    def _release_model(self) -> None:
        if self._processor is None:
            return
        device = getattr(getattr(self._processor.pipeline, "classifier", None), "device", None)
        self._processor = None
        gc.collect()
        if getattr(device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.empty_cache()
        try:  # glibc keeps freed weights mapped; hand them back so an inactive node is small again
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def _destroy_publishers(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    # -- data path --------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    @_logged("image callback")
    def _record(self, counts: dict, stages_ms: dict, latency_ms: float | None = None, label_ages_s=()) -> None:
        """Add to the diagnostics counters and rolling windows (called by the executor and the worker threads)."""
        with self._lock:
            for key, n in counts.items():
                self._counts[key] += int(n)
            self._label_age_s.extend(label_ages_s)
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
            for key, value in stages_ms.items():
                self._stage_ms.setdefault(key, deque(maxlen=200)).append(float(value))

    def _image_cb(self, msg) -> None:
        if self._watchdog is not None:
            self._watchdog.image_received(
                getattr(msg, "width", None),
                getattr(msg, "height", None),
                getattr(msg, "encoding", None) or getattr(msg, "format", None),
            )
        self._offer("images_received", self._pairer.add_image, msg)

    @_logged("detections callback")
    def _detections_cb(self, msg: Detection2DArray) -> None:
        if self._watchdog is not None:
            self._watchdog.detections_received()
        self._offer(
            "detections_received", lambda stamp, m: self._pairer.add_detections(stamp, detections_from_msg(m)), msg
        )

    def _offer(self, counter: str, add, msg) -> None:
        """Stamp (and boxes) -> pairer -> queue; nothing heavier runs in the executor thread."""
        self._count(counter)
        try:
            pairs = add(stamp_to_ns(msg.header.stamp), msg)
        except Exception as exc:  # one malformed message must not stop the stream
            self._count("dropped_bad_message")
            self.get_logger().warning(f"skipping malformed message ({counter}): {exc}", throttle_duration_sec=5.0)
            return
        frames, processor = self._frames, self._processor
        for pair in pairs:
            if frames is None or processor is None:
                continue
            if processor.scheduled:
                published = self._publish_scheduled(processor, pair)
                if published is not None:  # replaces a frame the inference thread did not take: not a drop
                    self._count("inference_frames_skipped", frames.put(published))
            else:
                self._count(
                    "dropped_stale" if self.config.processing.policy == "latest" else "dropped_queue_full",
                    frames.put(pair),
                )

    # -- scheduled: publishing path (executor thread) and inference path (own thread) --------------
    def _publish_scheduled(self, processor: FrameProcessor, pair):
        """Track association + ViewpointArray from track state, published at once; never waits for the model."""
        t0 = time.perf_counter()
        try:
            published = processor.publish(pair)
        except FrameDecodeError as exc:  # a compressed frame whose size cannot be known: publish nothing
            self._count("dropped_undecodable")
            self.get_logger().error(f"{self._image_topic}: {exc}", throttle_duration_sec=5.0)
            return None
        except Exception as exc:  # per frame: log (traceback once per cause), count, keep going
            self._count("dropped_error")
            self._failures.report("publishing a frame", exc)
            return None
        t1 = time.perf_counter()
        self._pubs["viewpoints"].publish(published.message)
        self._publish_annotations(published.result, pair.image.header)
        if self._visuals is not None:  # every published frame counts for the track summaries
            self._publish_summaries(self._visuals.observe(published.result, pair.image.header.frame_id))
        t2 = time.perf_counter()
        latency_ms = (self.get_clock().now().nanoseconds - pair.stamp_ns) / 1e6 if pair.stamp_ns else None
        ages = [
            (pair.stamp_ns - r.label_stamp_ns) * 1e-9 for r in published.result.results if r.label_stamp_ns is not None
        ]
        result = published.result
        counts = {
            "frames_processed": 1,
            "crops_skipped": result.skipped,
            "filtered": getattr(result, "filtered", 0),
            "viewpoints_unknown": sum(r.label_stamp_ns is None for r in result.results),
        }
        self._record(counts, {"track": (t1 - t0) * 1e3, "publish": (t2 - t1) * 1e3}, latency_ms, ages)
        return published

    def _infer_loop(self) -> None:
        _lower_thread_priority(self.config.schedule.inference_nice)
        frames = self._frames
        while (published := frames.get()) is not None:
            try:
                self._infer(published)
            except FrameDecodeError as exc:
                self._count("inference_undecodable")
                self.get_logger().error(f"{self._image_topic}: {exc}", throttle_duration_sec=5.0)
            except Exception as exc:  # per cycle: log (traceback once per cause), count, keep going
                self._count("inference_errors")
                self._failures.report("inference", exc)

    def _infer(self, published) -> None:
        processor = self._processor
        if processor is None:
            return
        inferred = processor.infer(published)
        cycle = inferred.cycle
        result = processor.pipeline.result(published.observed)
        self._publish_debug(inferred.frame, result, published.pair.image.header)
        if self._visuals is not None:
            self._visuals.consider(inferred.frame, result)  # best views from this inference's fresh labels
        stages = {"decode": inferred.decode_ms, **{f"inference.{k}": v for k, v in cycle.timings_ms.items()}}
        self._record({"inference_cycles": 1, "crops_classified": cycle.classified}, stages)

    def _work(self) -> None:
        frames = self._frames
        while (pair := frames.get()) is not None:
            try:
                self._process(pair)
            except Exception as exc:  # per frame: log (traceback once per cause), count, keep going
                self._count("dropped_error")
                self._failures.report("processing a frame", exc)

    def _process(self, pair) -> None:
        processor = self._processor
        if processor is None:
            return
        t0 = time.perf_counter()
        try:
            out = processor.process(pair)  # decodes only the frames that will be processed
        except FrameDecodeError as exc:  # UnsupportedEncodingError, truncated data: publish nothing for it
            self._count("dropped_undecodable")
            self.get_logger().error(f"{self._image_topic}: {exc}", throttle_duration_sec=5.0)
            return
        frame, result = out.frame, out.result
        t2 = time.perf_counter()
        self._pubs["viewpoints"].publish(out.message)
        self._publish_annotations(result, pair.image.header)
        self._publish_debug(frame, result, pair.image.header)
        self._publish_track_summaries(frame, result, pair.image.header)
        t3 = time.perf_counter()
        latency_ms = (self.get_clock().now().nanoseconds - pair.stamp_ns) / 1e6 if pair.stamp_ns else None
        stages = {"decode": out.decode_ms, **result.timings_ms, "publish": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        counts = {"frames_processed": 1, "crops_skipped": result.skipped, "filtered": getattr(result, "filtered", 0)}
        self._record(counts, stages, latency_ms)

    # -- visual outputs: annotations, debug images (only while subscribed), track summaries ----------
    def _publish_annotations(self, result, header) -> None:
        """Built (about 5 ms for 8 animals) only while someone subscribes, as the debug images."""
        pub, visuals = self._pubs.get("annotations"), self._visuals
        if pub is not None and visuals is not None and pub.get_subscription_count() > 0:
            pub.publish(visuals.annotation(result, header))

    def _publish_debug(self, frame: np.ndarray, result, header) -> None:
        """Draw the overlay once, and only when `debug_image` or `debug_image/compressed` has a subscriber."""
        visuals = self._visuals
        raw, jpeg = self._pubs.get("debug_image"), self._pubs.get("debug_image_compressed")
        wants_raw = raw is not None and raw.get_subscription_count() > 0
        wants_jpeg = jpeg is not None and jpeg.get_subscription_count() > 0
        if visuals is None or not (wants_raw or wants_jpeg):
            return
        annotated = visuals.debug_rgb(frame, result)
        self._count("debug_images_encoded")
        if wants_raw:
            msg = Image(
                header=header,
                height=annotated.shape[0],
                width=annotated.shape[1],
                encoding="rgb8",
                is_bigendian=0,
                step=annotated.shape[1] * 3,
            )
            msg.data = annotated.tobytes()
            raw.publish(msg)
        if wants_jpeg:
            msg = CompressedImage(header=header, format="jpeg")
            msg.data = visuals.debug_jpeg(annotated)
            jpeg.publish(msg)

    def _publish_track_summaries(self, frame: np.ndarray, result, header) -> None:
        if self._visuals is not None:
            self._publish_summaries(self._visuals.finished_tracks(frame, result, header.frame_id))

    def _publish_summaries(self, summaries: list) -> None:
        pub = self._pubs.get("track_summaries")
        if pub is not None and summaries:
            for msg in summaries:
                pub.publish(msg)
            self._count("track_summaries_published", len(summaries))

    def _flush_track_summaries(self) -> None:
        """Deactivation: a TrackSummary for every track still alive (publishers are still enabled here)."""
        visuals, self._visuals = self._visuals, None
        if visuals is None:
            return
        pub = self._pubs.get("track_summaries")
        for msg in visuals.flush():
            if pub is not None:
                try:
                    pub.publish(msg)
                except Exception as exc:  # shutting down: the context may be gone already
                    self.get_logger().debug(f"track summary not published at shutdown: {exc}")
                    break

    # -- diagnostics ------------------------------------------------------------------------------
    def _check_frames_flow(self) -> None:
        """Lost-frame watchdog: one warning when frames stop while detections/publishers are there, one
        info when they flow again."""
        if self._watchdog is None:
            return
        publishers = sorted(
            {
                f"{p.node_namespace.rstrip('/')}/{p.node_name}"
                for p in self.get_publishers_info_by_topic(self._image_topic)
            }
        )
        event = self._watchdog.check(publishers)
        if event is not None and event.kind == "lost":
            self.get_logger().warning(event.message)
        elif event is not None:
            self.get_logger().info(event.message)

    @_logged("diagnostics timer")
    def _diagnostics_cb(self) -> None:
        pairer = self._pairer
        if pairer is None:
            return
        self._check_frames_flow()
        problem = pairer.diagnose()
        if problem and not self._pairing_warned:
            self._pairing_warned = True  # one clear warning, not one per frame
            self.get_logger().warning(
                f"image/detections pairing on {self._image_topic} and "
                f"{self.resolve_topic_name('detections')}: {problem}"
            )
        if self.config.diagnostics_period_s > 0:
            self._pubs["diagnostics"].publish(self._diagnostics(pairer, problem))

    def _track_count(self) -> int:
        pipeline = getattr(self._processor, "pipeline", None)
        if pipeline is None:
            return 0
        return len(pipeline.tracks) if hasattr(pipeline, "tracks") else len(pipeline.voter)

    def _diagnostics(self, pairer: StampPairer, problem: str | None) -> DiagnosticArray:
        with self._lock:
            counts = dict(self._counts)
            latency = np.asarray(self._latency_ms, dtype=np.float64)
            ages = np.asarray(self._label_age_s, dtype=np.float64)
            stages = {k: float(np.mean(v)) for k, v in self._stage_ms.items() if v}
        counts.update({f"frames_{k}" if k == "paired" else k: v for k, v in pairer.stats.items()})
        counts.setdefault("filtered", 0)
        counts["failures_repeated"] = sum(self._failures.repeats.values())
        values = {
            **{k: str(v) for k, v in sorted(counts.items())},
            "tracks": str(self._track_count()),
            "processing_policy": self.config.processing.policy,
            "schedule_mode": self.config.schedule.mode,
            "qos_incompatible_events": str(self._qos_reporter.count),
        }
        if latency.size:
            values.update(
                {
                    "latency_ms.median": f"{np.median(latency):.1f}",
                    "latency_ms.p95": f"{np.percentile(latency, 95):.1f}",
                    "latency_ms.max": f"{latency.max():.1f}",
                    "latency_frames": str(latency.size),
                }
            )
        if ages.size:
            values.update(
                {
                    "label_age_s.median": f"{np.median(ages):.3f}",
                    "label_age_s.p95": f"{np.percentile(ages, 95):.3f}",
                    "label_age_s.max": f"{ages.max():.3f}",
                }
            )
        values.update({f"stage_ms.{k}": f"{v:.2f}" for k, v in stages.items()})
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: viewpoint pipeline",
            hardware_id=self.config.model.device,
            level=DiagnosticStatus.OK,
            message="ok",
        )
        errors = counts.get("dropped_undecodable", 0) + counts.get("dropped_error", 0)
        watchdog = self._watchdog
        if watchdog is not None:
            values["frames_lost"] = "true" if watchdog.lost else "false"
        if watchdog is not None and watchdog.lost:
            status.level = DiagnosticStatus.WARN
            status.message = f"frames lost on {self._image_topic}: {watchdog.reason}"
        elif problem or errors:
            status.level = DiagnosticStatus.WARN
            status.message = problem or f"{errors} frame(s) failed to decode or process"
        elif not counts.get("images_received"):
            status.level, status.message = DiagnosticStatus.WARN, f"no images on {self._image_topic}"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array


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
