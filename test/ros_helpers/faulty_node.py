"""pose_classifier_node with one injected fault: the image callback raises on an image whose encoding is
"fault-injection" (no real message makes it raise; a test must still see that such an error is logged).

    python test/ros_helpers/faulty_node.py --ros-args ...

The real node executable and data path; only FrameWatchdog.image_received, which the image callback calls
first for every image, is wrapped.
"""

import sys

from pose_classifier_ros.ros import pose_classifier_node
from pose_classifier_ros.stream import frame_watchdog

MARK = "fault-injection"


def main() -> int:
    image_received = frame_watchdog.FrameWatchdog.image_received

    def faulty_image_received(self, width=None, height=None, encoding=None):
        if encoding == MARK:
            raise RuntimeError(f"injected fault: an image with encoding {MARK!r}")
        return image_received(self, width, height, encoding)

    frame_watchdog.FrameWatchdog.image_received = faulty_image_received
    return pose_classifier_node.main(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
