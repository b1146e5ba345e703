"""Viewpoint classifier + side-profile navigation policy, wired together.

    ros2 launch pose_classifier_ros side_profile_navigation.launch.py checkpoint:=/path/model.pt \
        image_topic:=/camera/image_raw detections_topic:=/detector/detections cmd_vel_topic:=/drone/cmd_vel

The classifier comes from pose_classifier.launch.py (its arguments: namespace, params_file, checkpoint,
device, backend, image_topic, detections_topic, autostart, use_sim_time pass straight through, since an
included launch file sees this file's launch configurations). The policy node runs in the same namespace
and reads the classifier's `viewpoints`; the classifier reads the policy's `policy_state` (both remapped to
policy_state_topic), so the policy's target gets a reserved share of each inference cycle (focus); start_classifier:=false runs the policy alone, e.g. against
`pose-classifier play` of a bag that already holds viewpoints.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "pose_classifier_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of both nodes (e.g. one per drone or camera)."
        ),
        DeclareLaunchArgument(
            "start_classifier",
            default_value="true",
            choices=["true", "false"],
            description="Also start the classifier (pose_classifier.launch.py); false runs "
            "the policy alone on an existing viewpoints stream.",
        ),
        DeclareLaunchArgument(
            "policy_params_file",
            default_value=PathJoinSubstitution([share, "config", "side_profile_policy.yaml"]),
            description="Parameter file of the policy node (node name key side_profile_policy).",
        ),
        DeclareLaunchArgument(
            "viewpoints_topic",
            default_value="viewpoints",
            description="ViewpointArray topic the policy reads; relative names resolve in "
            "the namespace, where the classifier publishes `viewpoints`.",
        ),
        DeclareLaunchArgument(
            "cmd_vel_topic",
            default_value="cmd_vel",
            description="geometry_msgs/Twist output (body frame, REP-103): linear.x forward and "
            "linear.y left in m/s, angular.z yaw rate in rad/s.",
        ),
        DeclareLaunchArgument(
            "vigilance_topic",
            default_value="vigilance",
            description="Optional std_msgs/Float32 input: animal vigilance 0..1 (retreat above "
            "disturbance.vigilance_threshold).",
        ),
        DeclareLaunchArgument(
            "policy_state_topic",
            default_value="policy_state",
            description="pose_classifier_ros/PolicyState output, one per viewpoint frame; the classifier "
            "reads the same topic as its focus (the target's label is refreshed every inference cycle).",
        ),
        DeclareLaunchArgument(
            "capture_topic",
            default_value="capture",
            description="pose_classifier_ros/CaptureEvent output (reliable, transient local).",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="Use /clock (set true when playing a bag with `pose-classifier play`).",
        ),
        DeclareLaunchArgument(
            "log_level",
            default_value="info",
            choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of both nodes.",
        ),
    ]

    # A plain path (not a substitution) lets `--show-args` list the classifier's arguments too.
    classifier_launch = os.path.join(get_package_share_directory(PACKAGE), "launch", "pose_classifier.launch.py")
    classifier = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(classifier_launch),
        condition=IfCondition(LaunchConfiguration("start_classifier")),
    )

    policy = Node(
        package=PACKAGE,
        executable="side_profile_policy_node",
        name="side_profile_policy",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("policy_params_file"),
            {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
        ],
        remappings=[
            ("viewpoints", LaunchConfiguration("viewpoints_topic")),
            ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
            ("vigilance", LaunchConfiguration("vigilance_topic")),
            ("policy_state", LaunchConfiguration("policy_state_topic")),
            ("capture", LaunchConfiguration("capture_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*args, classifier, policy])
