"""What an offline source yields: one paired frame with its index and time in the source.

Sources (bags/bag_source.BagSource for rosbags, video/video_source.VideoSource for videos) yield
``SourceFrame``s in order; replay/runner.run_frames steps them through the node's pipeline. It lives
here, beside ``Pair``, so every source and the runner import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from pose_classifier_ros.stream.pairing import Pair


@dataclass
class SourceFrame:
    """One paired frame of an offline source. frame_index: the image's index in the source (bag image
    message order, video frame number; -1 unknown), the key of frame-indexed ground truth; time_ns: its
    time in the source (bag receive time, int ns), at which outputs are written."""

    pair: Pair
    frame_index: int
    time_ns: int


__all__ = ["SourceFrame"]
