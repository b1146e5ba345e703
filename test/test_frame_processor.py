"""FrameProcessor on pairs whose image is already decoded (DecodedImage or any object with header, width,
height, rgb()), and the offline runner over such pairs: the contract a video source builds on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from helpers.fake_classifier import RedChannelClassifier

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.replay.runner import run_frames
from pose_classifier_ros.stream.conversions import message_types, stamp_to_ns
from pose_classifier_ros.stream.decoded_image import DecodedImage
from pose_classifier_ros.stream.frame_processor import FrameDecodeError, FrameProcessor
from pose_classifier_ros.stream.pairing import Pair
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.pipeline_types import Detection
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.source_frame import SourceFrame

NS = 1_000_000_000
W, H = 160, 120
BOX = (40, 30, 100, 90)
LEFT, BACK = INDEX["left"], INDEX["back"]


def picture(label: int) -> np.ndarray:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[BOX[1] : BOX[3], BOX[0] : BOX[2], 0] = label
    return frame


def header(types, stamp_ns: int):
    return types.Header(stamp=types.Time(sec=stamp_ns // NS, nanosec=stamp_ns % NS), frame_id="video")


def processor(mode: str, max_crops: int = 4) -> FrameProcessor:
    pipeline = TrackPipeline(RedChannelClassifier(), schedule=ScheduleConfig(mode=mode, max_crops=max_crops))
    return FrameProcessor(pipeline, message_types())


@pytest.mark.parametrize("mode", ["every_frame", "scheduled"])
def test_decoded_image_pairs_go_through_step(mode):
    proc = processor(mode)
    types = proc.types
    stamp = 7 * NS
    image = DecodedImage.of(header(types, stamp), picture(LEFT))
    step = proc.step(Pair(stamp, image, [Detection(BOX, 0.9, "elk-1")], 0))
    assert step.error is None and step.frame is image.pixels
    (v,) = step.message.viewpoints
    assert (v.track_id, v.label_name, v.fresh, stamp_to_ns(step.message.header.stamp)) == ("elk-1", "left", True, stamp)
    assert (step.message.image_width, step.message.image_height) == (W, H)


def test_size_comes_from_width_and_height_and_pixels_load_only_when_classified():
    proc = processor("scheduled")
    loads = []

    def load():
        loads.append(1)
        return picture(BACK)

    stamp = NS
    image = DecodedImage(header(proc.types, stamp), W, H, loader=load)
    step = proc.step(Pair(stamp, image, [Detection(BOX, 0.9, "deer-2")], 0), max_crops=0)
    assert loads == [] and step.frame is None  # published from track state, never decoded
    (v,) = step.message.viewpoints
    assert v.label == 255 and (step.message.image_width, step.message.image_height) == (W, H)
    step = proc.step(Pair(stamp + NS // 10, image, [Detection(BOX, 0.9, "deer-2")], 0))
    assert loads == [1] and step.message.viewpoints[0].label_name == "back"


def test_any_object_with_header_size_and_rgb_is_accepted_and_bad_pixels_are_a_decode_error():
    proc = processor("every_frame")
    frame = SimpleNamespace(header=header(proc.types, NS), width=W, height=H, rgb=lambda: picture(LEFT))
    pair = Pair(NS, frame, [Detection(BOX, 0.9)], 0)
    assert proc.frame_size(pair) == (W, H) and proc.decode(pair).shape == (H, W, 3)
    bad = Pair(
        NS, SimpleNamespace(header=frame.header, width=W, height=H, rgb=lambda: np.zeros((H, W), np.uint8)), [], 0
    )
    with pytest.raises(FrameDecodeError, match=r"not an \(H, W, 3\) uint8 RGB array"):
        proc.decode(bad)
    with pytest.raises(ValueError, match="expected"):
        DecodedImage(frame.header, W + 1, H, pixels=picture(LEFT)).rgb()
    step = proc.step(bad)  # every_frame: nothing published for a frame that cannot be decoded
    assert step.message is None and isinstance(step.error, FrameDecodeError)


def test_runner_over_decoded_frames_records_and_feeds_sinks():
    """What a video source does: yield SourceFrames of decoded images; the runner steps them into sinks."""
    proc = processor("scheduled", max_crops=1)
    frames = [
        SourceFrame(
            Pair(
                NS + k * NS // 10,
                DecodedImage.of(header(proc.types, NS + k * NS // 10), picture(LEFT)),
                [Detection(BOX, 0.9, "elk-1")],
                0,
            ),
            k,
            k * 1000,
        )
        for k in range(6)
    ]

    class Sink:
        def __init__(self):
            self.seen = []

        def on_frame(self, frame, step):
            self.seen.append((frame.frame_index, frame.time_ns, step.message.viewpoints[0].label_name))

    sink = Sink()
    run = run_frames(frames, proc, crops_per_second=5.0, sinks=[sink])
    # 10 Hz frames, 5 crops/s, at most 1 per frame: the first frame finds the budget full, then every 2nd frame.
    assert run.stats["frames_processed"] == 6 and len(run.records) == 6 and run.last_time_ns == 5000
    assert [s[:2] for s in sink.seen] == [(k, k * 1000) for k in range(6)]
    assert all(label == "left" for _, _, label in sink.seen)
    assert [r.fresh for r in run.records] == [True, False, True, False, True, False]
    assert run.schedule["crops_classified"] == 3 and run.schedule["crops_per_second"] == 5.0
