"""Example: the side-profile policy flying a multirotor around an animal to a re-ID side view.

    ros2 launch pose_classifier_ros side_profile_orbit.launch.py namespace:=uav1 \
        viewpoints_topic:=/uav1/viewpoints cmd_vel_topic:=/uav1/fcu/cmd_vel_body vigilance_topic:=/uav1/vigilance

    # a platform whose controller circles the locked target by itself (the yaw rate is the orbit rate):
    ros2 launch pose_classifier_ros side_profile_orbit.launch.py motion_mode:=yaw

Runs only the policy node (start the classifier with pose_classifier.launch.py, or use
side_profile_navigation.launch.py for both). The node reads `params_file` first; the arguments below
then override the parameters that differ most between airframes and missions:

- motion_mode (orient.mode): orbit = body-frame linear.x/linear.y/angular.z velocity setpoints (the policy
  circles the target itself); yaw = yaw rate only, for controllers that orbit the target themselves.
- orbit_speed (orient.orbit_speed, m/s), approach_speed (approach.speed, m/s): keep them inside the
  airframe's velocity limits; the closed-loop figures in docs/node_side_profile_policy.md used 3 and 2 m/s.
- target_pixels (capture.target_pixels): box longer side at capture (re-ID: 500 px).
- flank (orient.flank): nearest, left or right (some re-ID galleries hold one flank only).

cmd_vel is a geometry_msgs/Twist in the body frame (REP-103: x forward, y left, yaw counter-clockwise);
bridge it to the autopilot's body-velocity setpoint. vigilance (std_msgs/Float32, 0..1) is optional:
above disturbance.vigilance_threshold the policy backs off and holds (RETREAT).
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "pose_classifier_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the policy node."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "side_profile_policy.yaml"]),
            description="Policy parameter file, read before the overrides below.",
        ),
        DeclareLaunchArgument(
            "motion_mode",
            default_value="orbit",
            choices=["orbit", "yaw"],
            description="orient.mode: orbit (lateral + yaw setpoints) or yaw (yaw rate only, for "
            "platforms that orbit the target by themselves).",
        ),
        DeclareLaunchArgument(
            "flank",
            default_value="nearest",
            choices=["nearest", "left", "right"],
            description="orient.flank: which of the animal's flanks to reach.",
        ),
        DeclareLaunchArgument("orbit_speed", default_value="3.0", description="orient.orbit_speed, m/s."),
        DeclareLaunchArgument("approach_speed", default_value="2.0", description="approach.speed, m/s."),
        DeclareLaunchArgument(
            "target_pixels", default_value="500.0", description="capture.target_pixels: box longer side at capture, px."
        ),
        DeclareLaunchArgument(
            "viewpoints_topic",
            default_value="viewpoints",
            description="ViewpointArray input (from pose_classifier_node).",
        ),
        DeclareLaunchArgument(
            "vigilance_topic",
            default_value="vigilance",
            description="Optional std_msgs/Float32 animal vigilance input, 0..1.",
        ),
        DeclareLaunchArgument(
            "cmd_vel_topic", default_value="cmd_vel", description="geometry_msgs/Twist body-frame velocity setpoints."
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false"], description="Use /clock."
        ),
    ]

    def arg(name, kind):
        return ParameterValue(LaunchConfiguration(name), value_type=kind)

    policy = Node(
        package=PACKAGE,
        executable="side_profile_policy_node",
        name="side_profile_policy",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "orient.mode": arg("motion_mode", str),
                "orient.flank": arg("flank", str),
                "orient.orbit_speed": arg("orbit_speed", float),
                "approach.speed": arg("approach_speed", float),
                "capture.target_pixels": arg("target_pixels", float),
                "use_sim_time": arg("use_sim_time", bool),
            },
        ],
        remappings=[
            ("viewpoints", LaunchConfiguration("viewpoints_topic")),
            ("vigilance", LaunchConfiguration("vigilance_topic")),
            ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
        ],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*args, policy])
