"""A paired frame through the track pipeline: decode the image, observe / classify, build the message.

The live node and the offline replay both call these on the ``Pair`` that ``StampPairer`` returns, so
both publish the same ``ViewpointArray`` for the same inputs. No rclpy: message classes come in through a
``types`` namespace (``conversions.message_types``), which works for rclpy and rosbags classes alike.

- ``observe(pair)``: track association and the frame's message from track state (no model; no decoding
  for raw images, whose size the message says). The node's executor thread in scheduled mode.
- ``classify(observation)``: decode the frame and classify the crops the pipeline picks. The node's
  inference thread in scheduled mode.
- ``step(pair, max_crops=None)``: both on one thread, then the frame's message from the updated state.
  The node's worker thread in every_frame mode, and every frame of a replay.

A pair's image is an Image / CompressedImage message or an already-decoded image (stream/decoded_image.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_classifier_ros.stream.conversions import frame_result_to_msg, image_from_msg
from pose_classifier_ros.stream.decoded_image import is_decoded_image
from pose_classifier_ros.stream.pairing import Pair
from pose_classifier_ros.stream.pipeline_types import FrameResult, InferenceCycle, ObservedFrame


class FrameDecodeError(ValueError):
    """A paired image could not be decoded (unknown encoding, truncated data); the frame is skipped."""


def image_encoding(image) -> str:
    """The encoding (Image) or format (CompressedImage) of a pair's image, for error messages."""
    return str(getattr(image, "encoding", None) or getattr(image, "format", "?"))


@dataclass
class Observation:
    """observe()'s output: the pair, what the pipeline observed (hand it to classify()), the results from
    track state and the ViewpointArray to publish (the image's header)."""

    pair: Pair
    observed: ObservedFrame
    result: FrameResult
    message: Any

    @property
    def stamp_ns(self) -> int:
        return int(self.pair.stamp_ns)


@dataclass
class Inference:
    """classify()'s output: the decoded (H, W, 3) uint8 RGB frame, the cycle (choices, timings), the frame's
    results after it (best views and the debug image are drawn from them) and the decode time, ms."""

    frame: np.ndarray
    cycle: InferenceCycle
    result: FrameResult
    decode_ms: float


@dataclass
class Step:
    """step()'s output. message: the ViewpointArray to publish, None when nothing is published for the frame
    (every_frame mode and an undecodable image: a frame's results hold only labels computed on it);
    result: the frame's results after its classification (None with message); frame: (H, W, 3) uint8 RGB,
    None when not decoded (no crop to classify, or undecodable); cycle: None when nothing was classified;
    error: the FrameDecodeError of an undecodable image (scheduled mode still publishes, from track state,
    as the live node's publishing path does)."""

    pair: Pair
    result: FrameResult | None
    message: Any
    frame: np.ndarray | None = None
    cycle: InferenceCycle | None = None
    decode_ms: float = 0.0
    error: FrameDecodeError | None = None

    @property
    def stamp_ns(self) -> int:
        return int(self.pair.stamp_ns)


def decode_image(pair: Pair) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a pair's image: a ROS Image / CompressedImage message, or an already-decoded
    image (anything with ``rgb()``, e.g. a video frame); FrameDecodeError when it cannot be decoded."""
    image = pair.image
    try:
        frame = image.rgb() if is_decoded_image(image) else image_from_msg(image)
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            desc = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"decoded to {desc}, not an (H, W, 3) uint8 RGB array")
    except Exception as exc:  # UnsupportedEncodingError, bad sizes, corrupt JPEG, loader errors
        raise FrameDecodeError(
            f"cannot decode image (encoding {image_encoding(image)!r}) at stamp {pair.stamp_ns} ns: {exc}"
        ) from exc
    return frame


class FrameProcessor:
    """pair (image + list[Detection]) -> decoded frame -> TrackPipeline -> ViewpointArray.

    pipeline: a TrackPipeline (stream/pipeline.py); types: namespace with ViewpointArray, Viewpoint,
    BoundingBox2D, Pose2D, Point2D, Time.
    """

    def __init__(self, pipeline, types):
        self.pipeline = pipeline
        self.types = types
        self._last_size: tuple[int, int] | None = None  # (width, height) of the last decoded frame

    def decode(self, pair: Pair) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the pair's image; FrameDecodeError when it cannot be decoded."""
        frame = decode_image(pair)
        self._last_size = (int(frame.shape[1]), int(frame.shape[0]))
        return frame

    def frame_size(self, pair: Pair) -> tuple[int, int]:
        """(width, height) of the pair's image without decoding it where possible: a raw Image or a decoded
        image says it; a CompressedImage is assumed to have the size of the last decoded frame (decoded once
        otherwise)."""
        width, height = int(getattr(pair.image, "width", 0) or 0), int(getattr(pair.image, "height", 0) or 0)
        if width > 0 and height > 0:
            return width, height
        if self._last_size is None:
            self.decode(pair)
        return self._last_size

    def _message(self, pair: Pair, result: FrameResult):
        return frame_result_to_msg(result, pair.image.header, self.types)

    def observe(self, pair: Pair) -> Observation:
        """Track association + the frame's message from track state."""
        width, height = self.frame_size(pair)
        observed, result = self.pipeline.observe(pair.detections, pair.stamp_ns, width, height)
        return Observation(pair, observed, result, self._message(pair, result))

    def classify(self, observation: Observation, max_crops: int | None = None) -> Inference:
        """Decode the observed frame and classify the crops the pipeline picks (max_crops: this cycle's budget)."""
        t0 = time.perf_counter()
        frame = self.decode(observation.pair)
        decode_ms = (time.perf_counter() - t0) * 1e3
        cycle = self.pipeline.classify(frame, observation.observed, max_crops)
        return Inference(frame, cycle, self.pipeline.result(observation.observed), decode_ms)

    def step(self, pair: Pair, max_crops: int | None = None) -> Step:
        """observe + classify on one frame, in order, then its message from the updated state.

        max_crops: this frame's crop budget (scheduled mode; 0: nothing classified, nothing decoded; None:
        schedule.max_crops). An undecodable image is reported in Step.error, never raised."""
        pipeline = self.pipeline
        limit = pipeline.crop_limit(max_crops)
        frame, error, decode_ms = None, None, 0.0
        if limit is None or limit > 0:
            t0 = time.perf_counter()
            try:
                frame = self.decode(pair)
            except FrameDecodeError as exc:
                error = exc
            decode_ms = (time.perf_counter() - t0) * 1e3
        if error is not None and pipeline.classifies_every_track:
            return Step(pair, None, None, decode_ms=decode_ms, error=error)
        try:
            width, height = (frame.shape[1], frame.shape[0]) if frame is not None else self.frame_size(pair)
        except FrameDecodeError as exc:  # a compressed image whose size cannot be known
            return Step(pair, None, None, decode_ms=decode_ms, error=exc)
        observed = pipeline.associate(pair.detections, pair.stamp_ns, width, height)
        cycle = pipeline.classify(frame, observed, max_crops) if frame is not None else None
        result = pipeline.result(observed)
        result.timings_ms.update(observed.timings_ms)
        if cycle is not None:
            result.timings_ms.update(cycle.timings_ms)
        return Step(pair, result, self._message(pair, result), frame, cycle, decode_ms, error)


__all__ = ["FrameDecodeError", "FrameProcessor", "Inference", "Observation", "Step", "decode_image", "image_encoding"]
