"""The processing paths of a paired frame: decode the image, run the pipeline, build the message.

The live node and the offline replay both call these on the ``Pair`` that ``StampPairer`` returns, so
both publish the same ``ViewpointArray`` for the same inputs. No rclpy: message classes come in through a
``types`` namespace (``conversions.message_types``), which works for rclpy and rosbags classes alike.

- every_frame (ViewpointPipeline): ``process(pair)`` decodes, classifies every crop, returns the message.
- scheduled (ScheduledPipeline): ``publish(pair)`` is the publishing path (track association + message
  from track state; no decoding for raw images, no model); ``infer(published)`` is the inference path
  (decode, classify the scheduled crops, update the tracks); ``step(pair, max_crops)`` does both on one
  frame and then builds its message (replay's simulated compute budget).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_classifier_ros.stream.conversions import frame_result_to_msg, image_from_msg
from pose_classifier_ros.stream.pairing import Pair
from pose_classifier_ros.stream.pipeline import FrameResult, InferenceCycle, ObservedFrame


class FrameDecodeError(ValueError):
    """A paired image could not be decoded (unknown encoding, truncated data); the frame is skipped."""


@dataclass
class ProcessedFrame:
    """What one paired frame produced. frame: (H, W, 3) uint8 RGB; message: the ViewpointArray to publish,
    with the image's header; decode_ms: image decoding time, ms."""

    stamp_ns: int
    frame: np.ndarray
    result: FrameResult
    message: Any
    decode_ms: float


def image_encoding(image_msg) -> str:
    """The encoding (Image) or format (CompressedImage) of an image message, for error messages."""
    return str(getattr(image_msg, "encoding", None) or getattr(image_msg, "format", "?"))


@dataclass
class PublishedFrame:
    """Output of the publishing path: the pair, what the pipeline observed (hand it to infer()), the results
    from track state and the ViewpointArray to publish (the image's header)."""

    stamp_ns: int
    pair: Pair
    observed: ObservedFrame
    result: FrameResult
    message: Any


@dataclass
class InferredFrame:
    """Output of the inference path: the decoded frame, the cycle (choices, timings) and decode time, ms."""

    stamp_ns: int
    frame: np.ndarray
    cycle: InferenceCycle
    decode_ms: float


class FrameProcessor:
    """pair (image message + list[Detection]) -> decoded frame -> pipeline -> ViewpointArray.

    pipeline: a ViewpointPipeline (or anything with ``process(frame, detections, stamp_ns)``) for
    every_frame, or a ScheduledPipeline (``observe`` / ``classify`` / ``result``) for scheduled mode;
    types: namespace with ViewpointArray, Viewpoint, BoundingBox2D, Pose2D, Point2D, Time.
    """

    def __init__(self, pipeline, types):
        self.pipeline = pipeline
        self.types = types
        self._last_size: tuple[int, int] | None = None  # (width, height) of the last decoded frame

    @property
    def scheduled(self) -> bool:
        return hasattr(self.pipeline, "observe")

    def decode(self, pair: Pair) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the pair's image; FrameDecodeError when it cannot be decoded."""
        try:
            frame = image_from_msg(pair.image)
        except Exception as exc:  # UnsupportedEncodingError, bad sizes, corrupt JPEG
            raise FrameDecodeError(
                f"cannot decode image (encoding {image_encoding(pair.image)!r}) at stamp {pair.stamp_ns} ns: {exc}"
            ) from exc
        self._last_size = (int(frame.shape[1]), int(frame.shape[0]))
        return frame

    def frame_size(self, pair: Pair) -> tuple[int, int]:
        """(width, height) of the pair's image without decoding it where possible: a raw Image says it; a
        CompressedImage is assumed to have the size of the last decoded frame (decoded once otherwise)."""
        width, height = int(getattr(pair.image, "width", 0) or 0), int(getattr(pair.image, "height", 0) or 0)
        if width > 0 and height > 0:
            return width, height
        if self._last_size is None:
            self.decode(pair)
        return self._last_size

    def process(self, pair: Pair) -> ProcessedFrame:
        """every_frame: run one paired frame through the pipeline; pair.detections is a list of Detection."""
        t0 = time.perf_counter()
        frame = self.decode(pair)
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = self.pipeline.process(frame, pair.detections, pair.stamp_ns)
        message = frame_result_to_msg(result, pair.image.header, self.types)
        return ProcessedFrame(
            stamp_ns=int(pair.stamp_ns), frame=frame, result=result, message=message, decode_ms=decode_ms
        )

    def publish(self, pair: Pair) -> PublishedFrame:
        """scheduled, publishing path: associate the detections with tracks, message from track state."""
        width, height = self.frame_size(pair)
        observed, result = self.pipeline.observe(pair.detections, pair.stamp_ns, width, height)
        return PublishedFrame(
            stamp_ns=int(pair.stamp_ns),
            pair=pair,
            observed=observed,
            result=result,
            message=frame_result_to_msg(result, pair.image.header, self.types),
        )

    def infer(self, published: PublishedFrame, max_crops: int | None = None) -> InferredFrame:
        """scheduled, inference path: decode the frame and classify the crops the scheduler picks."""
        t0 = time.perf_counter()
        frame = self.decode(published.pair)
        decode_ms = (time.perf_counter() - t0) * 1e3
        cycle = self.pipeline.classify(frame, published.observed, max_crops)
        return InferredFrame(stamp_ns=published.stamp_ns, frame=frame, cycle=cycle, decode_ms=decode_ms)

    def step(self, pair: Pair, max_crops: int) -> tuple[PublishedFrame, InferredFrame | None, Exception | None]:
        """scheduled, both paths on one frame in order (replay): observe, classify up to max_crops crops of
        this frame (0: no decoding), then the frame's message from the updated state. Returns (published,
        inferred or None, the FrameDecodeError of an undecodable image or None: its message still stands,
        as live, where the publishing path never decodes a raw image)."""
        published = self.publish(pair)
        if max_crops <= 0:
            return published, None, None
        try:
            inferred = self.infer(published, max_crops)
        except FrameDecodeError as exc:
            return published, None, exc
        if inferred.cycle.choices:
            result = self.pipeline.result(published.observed)
            published = PublishedFrame(
                published.stamp_ns,
                pair,
                published.observed,
                result,
                frame_result_to_msg(result, pair.image.header, self.types),
            )
        return published, inferred, None


__all__ = ["FrameDecodeError", "FrameProcessor", "InferredFrame", "ProcessedFrame", "PublishedFrame", "image_encoding"]
