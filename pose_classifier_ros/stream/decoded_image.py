"""An image that is already decoded (a video frame, a test picture), usable wherever a paired image message is.

FrameProcessor accepts, as a pair's image, either a ROS Image / CompressedImage message (rclpy or
rosbags) or any object with ``header`` (Header-like: ``.stamp.sec``, ``.stamp.nanosec``, ``.frame_id``),
``width``, ``height`` (px) and ``rgb() -> (H, W, 3) uint8``: decoding is ``image.rgb()`` and the size is read
from width / height without decoding. DecodedImage is that object, holding the pixels or a loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def is_decoded_image(image: Any) -> bool:
    """True for an already-decoded image (has a callable rgb()), False for an image message."""
    return callable(getattr(image, "rgb", None))


@dataclass
class DecodedImage:
    """header: Header-like (the ViewpointArray copies it; for an output bag, the typestore's Header);
    width, height: px; pixels: (H, W, 3) uint8 RGB, or loader: () -> those pixels, called at most once
    (on the first rgb()), so frames that are never classified are never decoded."""

    header: Any
    width: int
    height: int
    pixels: np.ndarray | None = None
    loader: Callable[[], np.ndarray] | None = None

    def __post_init__(self):
        if self.pixels is None and self.loader is None:
            raise ValueError("DecodedImage needs pixels or a loader")
        self.width, self.height = int(self.width), int(self.height)

    @classmethod
    def of(cls, header: Any, pixels: np.ndarray) -> DecodedImage:
        """A DecodedImage of (H, W, 3) uint8 RGB pixels (size taken from them)."""
        return cls(header, int(pixels.shape[1]), int(pixels.shape[0]), pixels=pixels)

    @property
    def encoding(self) -> str:
        return "decoded rgb8"

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB; ValueError when the pixels do not match width x height."""
        if self.pixels is None:
            self.pixels, self.loader = self.loader(), None
        frame = self.pixels
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            desc = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"decoded image is {desc}, expected ({self.height}, {self.width}, 3) uint8 RGB")
        return frame


__all__ = ["DecodedImage", "is_decoded_image"]
