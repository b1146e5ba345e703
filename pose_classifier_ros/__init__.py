"""pose_classifier_ros: which way is each animal facing? DINOv2 viewpoint classification for drones.

The top-level package is the ROS-free core (it never imports rclpy); ROS adapters live in
``pose_classifier_ros.ros`` and the generated message types in ``pose_classifier_ros.msg``.
"""

import os as _os
from pkgutil import extend_path as _extend_path

# The ROS build installs this file (often as a symlink: colcon --symlink-install, scripts/setup.sh)
# into the same site-packages directory as the generated message modules (``.msg``). Make both
# halves one package whichever is found first: the directory this file really lives in comes first
# (the sources: a symlink install links files one by one, so a subpackage directory there would miss
# modules added since the build), then every other ``pose_classifier_ros`` directory on sys.path
# (the generated messages, when running from a source checkout).
_source_dir = _os.path.dirname(_os.path.realpath(__file__))
__path__ = [_source_dir] + [p for p in _extend_path(__path__, __name__) if p != _source_dir]

from pose_classifier_ros.labels import VIEWPOINTS  # noqa: E402

__version__ = "0.1.0"
__all__ = ["VIEWPOINTS", "ViewPointClassifier", "ViewpointClassifier", "__version__"]


def __getattr__(name):
    # Lazy: importing the package (e.g. for labels or message conversions) does not load torch.
    # ViewPointClassifier is the reference scripts' spelling (docs/migrating.md).
    if name in ("ViewpointClassifier", "ViewPointClassifier"):
        from pose_classifier_ros.model import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'pose_classifier_ros' has no attribute {name!r}")
