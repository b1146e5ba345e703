"""pose_classifier_node with a deliberately slow model: every predict_frame batch sleeps DELAY s first.

    python test/ros_helpers/slow_node.py DELAY --ros-args ...

The real node executable and data path; only ViewpointClassifier.predict_frame is wrapped, so a test can
show that publishing keeps the input rate while the inference path lags.
"""

import sys
import time

from pose_classifier_ros.model import classifier as classifier_module
from pose_classifier_ros.ros import pose_classifier_node


def main() -> int:
    delay = float(sys.argv.pop(1))
    predict_frame = classifier_module.ViewpointClassifier.predict_frame

    def slow_predict_frame(self, frame, boxes):
        time.sleep(delay)
        return predict_frame(self, frame, boxes)

    classifier_module.ViewpointClassifier.predict_frame = slow_predict_frame
    return pose_classifier_node.main(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
