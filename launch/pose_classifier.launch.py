"""Viewpoint classifier (lifecycle node `pose_classifier`) for one camera + detector.

    ros2 launch pose_classifier_ros pose_classifier.launch.py checkpoint:=/path/model.pt \
        image_topic:=/camera/image_raw detections_topic:=/detector/detections

The node subscribes `image` (or `image/compressed`), `detections` and, optionally, the navigation policy's
`policy_state` (its target gets a reserved share of each inference cycle), remapped here, and publishes
`viewpoints`, `label_info`, `diagnostics` (and `debug_image`) in `namespace`. With autostart:=true
(default) the node configures and activates itself; with autostart:=false drive it with
`ros2 lifecycle set /<namespace>/pose_classifier configure|activate`. Arguments left empty keep the
value from params_file.

large_images:=true runs the node with FASTDDS_DEFAULT_PROFILES_FILE set to the shipped
config/fastdds_large_images.xml (a 128 MB shared-memory segment): raw 1080p/4K frames over best-effort
DDS then arrive. The camera process needs the same variable (see docs/node_pose_classifier.md).
"""

import os

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "pose_classifier_ros"
FASTDDS_PROFILE = ("config", "fastdds_large_images.xml")  # in the package's share directory
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _as_bool(name: str, text: str) -> bool:
    """Launch arguments are strings; accept the usual spellings, never evaluate them as code."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"launch argument {name}:={text!r} is not a boolean (true/false)")


def _classifier_node(context, *args, **kwargs):
    arg = {
        name: LaunchConfiguration(name).perform(context)
        for name in (
            "namespace",
            "params_file",
            "checkpoint",
            "device",
            "backend",
            "image_topic",
            "detections_topic",
            "image_transport",
            "autostart",
            "use_sim_time",
            "log_level",
            "large_images",
            "policy_state_topic",
        )
    }
    # Only arguments given on the command line override the params file.
    overrides = {
        "autostart": _as_bool("autostart", arg["autostart"]),
        "use_sim_time": _as_bool("use_sim_time", arg["use_sim_time"]),
    }
    for name, param in (
        ("checkpoint", "model.checkpoint"),
        ("device", "model.device"),
        ("backend", "model.backend"),
        ("image_transport", "image_transport"),
    ):
        if arg[name]:
            overrides[param] = arg[name]
    env = {}
    if _as_bool("large_images", arg["large_images"]):
        profile = os.path.join(FindPackageShare(PACKAGE).perform(context), *FASTDDS_PROFILE)
        if not os.path.isfile(profile):
            raise FileNotFoundError(f"large_images:=true but the Fast DDS profile {profile} is not installed")
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    return [
        LifecycleNode(
            package=PACKAGE,
            executable="pose_classifier_node",
            name="pose_classifier",
            namespace=arg["namespace"],
            parameters=[arg["params_file"], overrides],
            remappings=[
                ("image", arg["image_topic"]),
                ("detections", arg["detections_topic"]),
                ("policy_state", arg["policy_state_topic"]),
            ],
            arguments=["--ros-args", "--log-level", arg["log_level"]],
            output="screen",
            emulate_tty=True,
            additional_env=env,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="Namespace of the node and its topics (e.g. one per drone or camera).",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "pose_classifier.yaml"]),
                description="Parameter YAML (node name key pose_classifier).",
            ),
            DeclareLaunchArgument(
                "checkpoint",
                default_value="",
                description="Checkpoint: absolute path, relative path or package://pkg/path "
                "(empty: model.checkpoint from params_file).",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="Torch device cpu | cuda | cuda:N (empty: from params_file)."
            ),
            DeclareLaunchArgument(
                "backend",
                default_value="",
                choices=["", "auto", "eager", "bf16", "int8", "onnx", "onnx-int8", "fp16"],
                description="Inference backend (empty: from params_file).",
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value="image",
                description="Camera topic remapped onto the node's `image` (with "
                "image_transport:=compressed the node reads <image_topic>/compressed).",
            ),
            DeclareLaunchArgument(
                "detections_topic",
                default_value="detections",
                description="vision_msgs/Detection2DArray topic remapped onto `detections`.",
            ),
            DeclareLaunchArgument(
                "policy_state_topic",
                default_value="policy_state",
                description="pose_classifier_ros/PolicyState topic remapped onto `policy_state`: the navigation "
                "policy's target gets schedule.focus_share of each inference cycle (optional; without a "
                "publisher nothing changes). side_profile_navigation.launch.py wires it to the policy node.",
            ),
            DeclareLaunchArgument(
                "image_transport",
                default_value="",
                choices=["", "raw", "compressed"],
                description="raw (sensor_msgs/Image) or compressed (CompressedImage); empty: from params_file.",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                choices=["true", "false"],
                description="The node configures and activates itself; false waits for "
                "`ros2 lifecycle set` transitions.",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=["true", "false"],
                description="Use /clock (true when playing a bag with `pose-classifier play`).",
            ),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                choices=["debug", "info", "warn", "error", "fatal"],
                description="Log level of the classifier node.",
            ),
            DeclareLaunchArgument(
                "large_images",
                default_value="false",
                choices=["true", "false"],
                description="Run the node with FASTDDS_DEFAULT_PROFILES_FILE set to the shipped "
                "config/fastdds_large_images.xml (large shared-memory segment) so raw "
                "1080p/4K frames arrive over best-effort DDS; export the same variable "
                "for the camera process. Fast DDS (the default RMW) only.",
            ),
            OpaqueFunction(function=_classifier_node),
        ]
    )
