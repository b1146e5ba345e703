"""The classifier node's data path without a node process: threads by schedule.mode, what start() changes
process-wide and stop() restores, and a clock reset seen by the pairer logged once with the tracks it forgot."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
from helpers.fake_classifier import Prediction
from helpers.waiting import wait_for
from sensor_msgs.msg import Image

from pose_classifier_ros.ros.failure_log import FailureLog
from pose_classifier_ros.ros.node_diagnostics import NodeCounters
from pose_classifier_ros.ros.node_processing import NodeProcessing
from pose_classifier_ros.stream.conversions import message_types
from pose_classifier_ros.stream.frame_processor import FrameProcessor
from pose_classifier_ros.stream.node_config import ModelSettings, NodeConfig, ProcessingSettings
from pose_classifier_ros.stream.pipeline_factory import build_pipeline
from pose_classifier_ros.stream.pipeline_types import Detection
from pose_classifier_ros.stream.scheduler import ScheduleConfig

NS = 1_000_000_000


class ConstantClassifier:
    def predict_frame(self, frame, boxes):
        probs = np.full((len(boxes), 8), 0.02, np.float32)
        probs[:, 3] = 0.86
        return Prediction(probs, np.ones(len(boxes), bool))


class Outputs:
    """Records what the data path hands to the node's outputs (NodeOutputs publishes from the same calls)."""

    def __init__(self):
        self.messages, self.cycles, self.flushed = [], [], 0

    def published(self, pair, result, message, stages_ms):
        self.messages.append(message)

    def classified(self, pair, frame, result, cycle, decode_ms):
        self.cycles.append(cycle)

    def flush_track_summaries(self):
        self.flushed += 1


class Logger:
    def __init__(self):
        self.lines = []

    def info(self, text, **kw):
        self.lines.append(("info", text))

    def warning(self, text, **kw):
        self.lines.append(("warning", text))

    def error(self, text, **kw):
        self.lines.append(("error", text))


def processing(mode: str) -> tuple[NodeProcessing, Outputs, Logger]:
    cfg = NodeConfig(
        model=ModelSettings(checkpoint="unused.pt"),
        schedule=ScheduleConfig(mode=mode),
        processing=ProcessingSettings(policy="all"),
    )
    logger = Logger()
    pipeline = build_pipeline(cfg, ConstantClassifier(), on_clock_reset=lambda e: logger.info(e.message))
    outputs = Outputs()
    proc = NodeProcessing(
        cfg,
        FrameProcessor(pipeline, message_types()),
        outputs,
        NodeCounters(),
        FailureLog(logger.error),
        logger,
        "/img",
    )
    return proc, outputs, logger


def image(types, stamp_ns: int):
    msg = Image(
        header=types.Header(stamp=types.Time(sec=stamp_ns // NS, nanosec=stamp_ns % NS), frame_id="cam"),
        height=60,
        width=80,
        encoding="rgb8",
        is_bigendian=0,
        step=240,
    )
    msg.data = np.full((60, 80, 3), 90, np.uint8).tobytes()
    return msg


def detections(stamp_ns: int):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // NS, nanosec=stamp_ns % NS)))


def feed(proc: NodeProcessing, types, stamp_ns: int) -> None:
    proc.offer("images_received", proc.pairer.add_image, image(types, stamp_ns))
    proc.offer(
        "detections_received",
        lambda stamp, m: proc.pairer.add_detections(stamp, [Detection((10, 10, 50, 50), 0.9, "elk-1")]),
        detections(stamp_ns),
    )


def test_scheduled_lowers_the_switch_interval_while_active_and_restores_it():
    types = message_types()
    before = sys.getswitchinterval()
    proc, outputs, logger = processing("scheduled")
    proc.start()
    assert sys.getswitchinterval() == min(before, 0.001) and proc.thread.name == "pose_classifier_inference"
    for k in range(3):  # observed and published on this (the executor's) thread, classified on the other
        feed(proc, types, 100 * NS + k * NS // 10)
    assert len(outputs.messages) == 3
    wait_for(lambda: outputs.cycles, 30, message="an inference cycle")
    proc.stop()
    assert sys.getswitchinterval() == before and not proc.thread.is_alive() and outputs.flushed == 1


def test_every_frame_steps_on_the_worker_and_a_clock_reset_is_one_line():
    types = message_types()
    before = sys.getswitchinterval()
    proc, outputs, logger = processing("every_frame")
    proc.start()
    assert sys.getswitchinterval() == before and proc.thread.name == "pose_classifier_worker"
    for k in range(3):
        feed(proc, types, 100 * NS + k * NS // 10)
    wait_for(lambda: len(outputs.messages) == 3, 30, message="3 frames stepped on the worker")
    assert len(outputs.cycles) == 3 and all(c.classified == 1 for c in outputs.cycles)
    feed(proc, types, 40 * NS)  # a bag loop: stamps 60 s back
    wait_for(lambda: len(outputs.messages) == 4, 30, message="the frame after the reset")
    proc.stop()
    resets = [(level, text) for level, text in logger.lines if "went back" in text]
    assert resets == [
        (
            "info",
            "pairing (image stamps): stamps went back 60.200 s (bag loop or clock reset): flushed 0 image(s) and "
            "0 detection message(s); forgot 1 track(s) and their labels",
        )
    ], logger.lines
    assert outputs.messages[-1].viewpoints[0].num_votes == 1  # the track started afresh
