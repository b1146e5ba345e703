"""What runs while the classifier node is active, by thread: pairing, observing, classifying, publishing.

- executor thread (the subscription callbacks): ``offer`` pairs images with detections (StampPairer); in
  ``schedule.mode: scheduled`` each pair is also observed (track association, no model) and its
  ViewpointArray published at once from track state, then handed to the inference thread; ``set_focus``
  stores the policy's target (PolicyState) in the pipeline's thread-safe Focus.
- inference thread (scheduled, ``pose_classifier_inference``, at niceness +schedule.inference_nice): takes
  the newest observed frame, decodes it and classifies the crops the scheduler picks (the focus share first,
  read from the Focus for that frame's stamp).
- worker thread (every_frame, ``pose_classifier_worker``): takes paired frames under processing.policy and
  steps each one (decode, observe, classify every visible track), then publishes it.

Errors are per frame: logged (traceback once per cause, FailureLog), counted, and the stream goes on.
"""

from __future__ import annotations

import sys
import threading
import time

from pose_classifier_ros.ros.node_outputs import NodeOutputs
from pose_classifier_ros.stream.clock import ClockReset
from pose_classifier_ros.stream.conversions import stamp_to_ns
from pose_classifier_ros.stream.frame_processor import FrameDecodeError, FrameProcessor
from pose_classifier_ros.stream.pairing import StampPairer
from pose_classifier_ros.stream.threads import FrameQueue, lower_thread_priority


class NodeProcessing:
    """One activation's data path. cfg: the NodeConfig; processor: FrameProcessor of the TrackPipeline;
    outputs: NodeOutputs; counters: NodeCounters; failures: FailureLog; logger: the node's logger;
    image_topic: for log lines. start() starts the thread, stop() ends it and flushes the track summaries."""

    def __init__(self, cfg, processor: FrameProcessor, outputs: NodeOutputs, counters, failures, logger, image_topic):
        self.cfg, self.processor, self.outputs = cfg, processor, outputs
        self.counters, self.failures, self.logger, self.image_topic = counters, failures, logger, image_topic
        self.inference_thread = cfg.schedule.mode == "scheduled"  # else: the every_frame worker thread
        self.pairer = StampPairer(cfg.sync, on_clock_reset=self._pairing_clock_reset)
        if self.inference_thread:  # it only ever wants the newest observed frame
            self.frames = FrameQueue("latest", 1)
        else:
            self.frames = FrameQueue(cfg.processing.policy, cfg.processing.queue_size)
        name = "pose_classifier_inference" if self.inference_thread else "pose_classifier_worker"
        self.thread = threading.Thread(target=self._thread_loop, name=name, daemon=True)
        self._switch_interval: float | None = None  # the process's value before start() lowered it

    def start(self) -> None:
        if self.inference_thread:
            # The executor thread must get the GIL back quickly while the inference thread runs Python code;
            # the default 5 ms switch interval adds up to 5 ms per hand-over. stop() restores it.
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, 0.001))
        self.thread.start()

    def stop(self) -> None:
        """End the thread (after the frame it is on), restore the switch interval, flush the track summaries."""
        self.frames.close()
        if self.thread.is_alive():
            self.thread.join(timeout=30.0)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        self.outputs.flush_track_summaries()

    def _pairing_clock_reset(self, event: ClockReset) -> None:
        """The pairer saw time go back (executor thread): the pipeline forgets its tracks now; one line."""
        pipeline = self.processor.pipeline
        tracks = len(pipeline)
        pipeline.reset()
        self.logger.info(f"{event.message}; forgot {tracks} track(s) and their labels")

    # -- executor thread ----------------------------------------------------------------------------
    def offer(self, counter: str, add, msg) -> None:
        """A message's stamp (and boxes) -> pairer; each pair it completes is observed and published here
        (scheduled) or queued for the worker (every_frame). add: pairer.add_image or a detections adder."""
        self.counters.count(counter)
        try:
            pairs = add(stamp_to_ns(msg.header.stamp), msg)
        except Exception as exc:  # one malformed message must not stop the stream
            self.counters.count("dropped_bad_message")
            self.logger.warning(f"skipping malformed message ({counter}): {exc}", throttle_duration_sec=5.0)
            return
        for pair in pairs:
            if not self.inference_thread:
                reason = "dropped_stale" if self.cfg.processing.policy == "latest" else "dropped_queue_full"
                self.counters.count(reason, self.frames.put(pair))
                continue
            observation = self._observe(pair)
            if observation is not None:  # replaces a frame the inference thread did not take: not a drop
                self.counters.count("inference_frames_skipped", self.frames.put(observation))

    def set_focus(self, msg) -> None:
        """A PolicyState (executor thread): its target becomes the pipeline's focus, stamped with the frame the
        policy computed it on (an empty target, in SEARCH: no focus). The inference thread reads it."""
        self.counters.count("focus_updates")
        self.processor.pipeline.focus.set([msg.target_track_id], stamp_to_ns(msg.header.stamp))

    def _observe(self, pair):
        """Track association + ViewpointArray from track state, published at once; never waits for the model."""
        t0 = time.perf_counter()
        try:
            observation = self.processor.observe(pair)
        except FrameDecodeError as exc:  # a compressed frame whose size cannot be known: publish nothing
            self.counters.count("dropped_undecodable")
            self.logger.error(f"{self.image_topic}: {exc}", throttle_duration_sec=5.0)
            return None
        except Exception as exc:  # per frame: log (traceback once per cause), count, keep going
            self.counters.count("dropped_error")
            self.failures.report("observing a frame", exc)
            return None
        track_ms = (time.perf_counter() - t0) * 1e3
        self.outputs.published(pair, observation.result, observation.message, {"track": track_ms})
        return observation

    # -- inference thread (scheduled) or worker thread (every_frame) ----------------------------------
    def _thread_loop(self) -> None:
        if self.inference_thread:
            lower_thread_priority(self.cfg.schedule.inference_nice)
        while (item := self.frames.get()) is not None:
            if self.inference_thread:
                self._classify(item)
            else:
                self._step(item)

    def _classify(self, observation) -> None:
        """Decode the newest observed frame, classify the crops the scheduler picks; debug image, best views."""
        try:
            inference = self.processor.classify(observation)
        except FrameDecodeError as exc:
            self.counters.count("inference_undecodable")
            self.logger.error(f"{self.image_topic}: {exc}", throttle_duration_sec=5.0)
            return
        except Exception as exc:  # per cycle: log (traceback once per cause), count, keep going
            self.counters.count("inference_errors")
            self.failures.report("inference", exc)
            return
        self.outputs.classified(
            observation.pair, inference.frame, inference.result, inference.cycle, inference.decode_ms
        )

    def _step(self, pair) -> None:
        """Decode, observe and classify every visible track of one paired frame, then publish it."""
        try:
            step = self.processor.step(pair)
        except Exception as exc:  # per frame: log (traceback once per cause), count, keep going
            self.counters.count("dropped_error")
            self.failures.report("processing a frame", exc)
            return
        if step.message is None:  # UnsupportedEncodingError, truncated data: nothing to publish for it
            self.counters.count("dropped_undecodable")
            self.logger.error(f"{self.image_topic}: {step.error}", throttle_duration_sec=5.0)
            return
        self.outputs.published(pair, step.result, step.message, {"track": step.result.timings_ms.get("observe", 0.0)})
        self.outputs.classified(pair, step.frame, step.result, step.cycle, step.decode_ms)


__all__ = ["NodeProcessing"]
