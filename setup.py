"""pip metadata for pose_classifier_ros.

ROS builds use CMakeLists.txt (ament_cmake: the msg/ interfaces need rosidl). This file lets pip
install the same Python package, e.g. `pip install -e .` in scripts/setup.sh, which adds the
`pose-classifier` CLI. The ROS-free core (model, preprocessing, voting, training, evaluation)
works from a plain pip install; the nodes and `pose_classifier_ros.msg` need the ROS build.
"""

from setuptools import find_packages, setup

setup(
    name="pose_classifier_ros",
    version="0.1.0",
    description="DINOv2 viewpoint classification of animals for drone navigation (ROS 2)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pose_classifier_ros", "pose_classifier_ros.*"]),
    install_requires=["numpy", "pillow", "torch", "torchvision", "pyyaml", "tqdm", "matplotlib", "rosbags"],
    extras_require={"onnx": ["onnx", "onnxruntime"], "test": ["pytest", "pytest-timeout"]},
    entry_points={"console_scripts": ["pose-classifier = pose_classifier_ros.cli:main"]},
)
