"""The one processing path of a paired frame: decode the image, run the pipeline, build the message.

The live node (in its worker thread) and the offline replay (in bag order) both call
``FrameProcessor.process`` on the ``Pair`` that ``StampPairer`` returns, so both publish the same
``ViewpointArray`` for the same inputs. No rclpy: message classes come in through a ``types``
namespace (``conversions.message_types``), which works for rclpy and rosbags classes alike.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose_classifier_ros.stream.conversions import frame_result_to_msg, image_from_msg
from pose_classifier_ros.stream.pairing import Pair
from pose_classifier_ros.stream.pipeline import FrameResult


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


class FrameProcessor:
    """pair (image message + list[Detection]) -> decoded frame -> ViewpointPipeline -> ViewpointArray.

    pipeline: a ViewpointPipeline (or anything with ``process(frame, detections, stamp_ns)``);
    types: namespace with ViewpointArray, Viewpoint, BoundingBox2D, Pose2D, Point2D, Time.
    """

    def __init__(self, pipeline, types):
        self.pipeline = pipeline
        self.types = types

    def decode(self, pair: Pair) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the pair's image; FrameDecodeError when it cannot be decoded."""
        try:
            return image_from_msg(pair.image)
        except Exception as exc:  # noqa: BLE001 - UnsupportedEncodingError, bad sizes, corrupt JPEG
            raise FrameDecodeError(f"cannot decode image (encoding {image_encoding(pair.image)!r}) at stamp "
                                   f"{pair.stamp_ns} ns: {exc}") from exc

    def process(self, pair: Pair) -> ProcessedFrame:
        """Run one paired frame through the pipeline; pair.detections is a list of stream.pipeline.Detection."""
        t0 = time.perf_counter()
        frame = self.decode(pair)
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = self.pipeline.process(frame, pair.detections, pair.stamp_ns)
        message = frame_result_to_msg(result, pair.image.header, self.types)
        return ProcessedFrame(stamp_ns=int(pair.stamp_ns), frame=frame, result=result, message=message,
                              decode_ms=decode_ms)


__all__ = ["FrameDecodeError", "FrameProcessor", "ProcessedFrame", "image_encoding"]
