"""Paired frames of a rosbag, in bag order: the replay's source (rosbags reader + the node's StampPairer).

``BagSource`` reads the bag once, pairs the image and detection topics with ``StampPairer`` as the node
does, and yields ``SourceFrame``s (pair, the image's index among the bag's images, the bag time of the
message that completed the pair). Every message read is handed to ``on_message`` first (the output bag
copies the input), so outputs written by the runner at the pair's bag time interleave as they would live.
A ViewpointArray ground-truth topic, if named, is collected into ``ground_truth`` on the way; a recorded
PolicyState topic, if named, sets ``focus`` (stream.focus.Focus) in bag order, so each frame is classified
with the policy's target as it was known when the frame completed, as live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from pose_classifier_ros.bags.bagio import BagError
from pose_classifier_ros.stream.conversions import detections_from_msg, stamp_to_ns
from pose_classifier_ros.stream.pairing import PairingConfig, StampPairer
from pose_classifier_ros.stream.source_frame import SourceFrame

_logger = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
VIEWPOINTS_TYPE = "pose_classifier_ros/msg/ViewpointArray"
POLICY_STATE_TYPE = "pose_classifier_ros/msg/PolicyState"


class BagSource:
    """Iterate once for the bag's SourceFrames. reader: an open bagio reader; on_message(topic, bag_ns, raw):
    called for every message in bag order before the frames it completes; progress: a tqdm bar of images.

    focus_topic + focus: a PolicyState topic whose target_track_id (stamped with its header) is set on the
    Focus (a TrackPipeline's .focus) as each message is read.

    After iteration: stats (images, detection_msgs, bad_messages, focus_msgs), pairer.stats, ground_truth
    ({(stamp_ns, track_id): class index} from ground_truth_topic) and last_time_ns (bag time of the last
    message). Raises BagError when a topic is missing or has the wrong type.
    """

    def __init__(
        self,
        reader,
        *,
        image_topic: str = "/camera/image_raw",
        detections_topic: str = "/detections",
        pairing: PairingConfig | None = None,
        ground_truth_topic: str | None = None,
        on_message: Callable[[str, int, bytes], None] | None = None,
        progress: bool = False,
        focus_topic: str | None = None,
        focus=None,
    ):
        reader.require_topic(image_topic, IMAGE_TYPES)
        reader.require_topic(detections_topic, (DETECTIONS_TYPE,))
        if ground_truth_topic is not None:
            reader.require_topic(ground_truth_topic, (VIEWPOINTS_TYPE,))
        if focus_topic is not None:
            if focus is None:
                raise ValueError("a focus topic needs a Focus to set")
            reader.require_topic(focus_topic, (POLICY_STATE_TYPE,))
        self.focus_topic, self.focus = focus_topic, focus
        self.reader = reader
        self.image_topic, self.detections_topic = image_topic, detections_topic
        self.ground_truth_topic = ground_truth_topic
        self.pairer = StampPairer(pairing or PairingConfig())
        self.on_message = on_message
        self.progress = progress
        self.stats = dict(images=0, detection_msgs=0, bad_messages=0, focus_msgs=0)
        self.ground_truth: dict[tuple[int, str], int] = {}
        self.last_time_ns = 0
        self._frame_index_of: dict[int, int] = {}

    def __iter__(self) -> Iterator[SourceFrame]:
        from tqdm import tqdm

        total = self.reader.topics[self.image_topic].count
        bar = tqdm(total=total, desc="replay", unit="frame", disable=not self.progress, dynamic_ncols=True)
        try:
            for topic, bag_ns, raw, msgtype in self.reader.messages():
                self.last_time_ns = bag_ns
                if self.on_message is not None:
                    self.on_message(topic, bag_ns, raw)
                if topic == self.image_topic:
                    bar.update()
                for pair in self._pairs(topic, raw, msgtype):
                    yield SourceFrame(pair, self._frame_index_of.get(pair.stamp_ns, -1), bag_ns)
        finally:
            bar.close()

    def _pairs(self, topic: str, raw: bytes, msgtype: str) -> list:
        if topic == self.image_topic:
            self.stats["images"] += 1
            try:
                msg = self.reader.deserialize(raw, msgtype)
            except BagError as exc:
                _logger.warning("skipping an image: %s", exc)
                self.stats["bad_messages"] += 1
                return []
            stamp = stamp_to_ns(msg.header.stamp)
            self._frame_index_of[stamp] = self.stats["images"] - 1
            return self.pairer.add_image(stamp, msg)
        if topic == self.detections_topic:
            self.stats["detection_msgs"] += 1
            try:
                msg = self.reader.deserialize(raw, msgtype)
                detections = detections_from_msg(msg)
            except Exception as exc:  # malformed message: skip, as the node does
                _logger.warning("skipping a detections message: %s", exc)
                self.stats["bad_messages"] += 1
                return []
            return self.pairer.add_detections(stamp_to_ns(msg.header.stamp), detections)
        if topic == self.focus_topic:
            try:
                msg = self.reader.deserialize(raw, msgtype)
                self.focus.set([str(msg.target_track_id)], stamp_to_ns(msg.header.stamp))
            except Exception as exc:  # malformed message: skip it, the previous focus stays
                _logger.warning("skipping a policy state message: %s", exc)
                self.stats["bad_messages"] += 1
                return []
            self.stats["focus_msgs"] += 1
            return []
        if topic == self.ground_truth_topic:
            msg = self.reader.deserialize(raw, msgtype)
            for vp in msg.viewpoints:
                self.ground_truth[(stamp_to_ns(msg.header.stamp), str(vp.track_id))] = int(vp.label)
        return []


__all__ = ["BagSource", "DETECTIONS_TYPE", "IMAGE_TYPES", "POLICY_STATE_TYPE", "VIEWPOINTS_TYPE"]
