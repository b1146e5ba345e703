"""side_profile_policy_node as a real process: live ViewpointArray stream in, cmd_vel/state/capture out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers.paths import REPO, VENV
from helpers.waiting import wait_for

NODE_EXE = VENV / "lib" / "pose_classifier_ros" / "side_profile_policy_node"
# The module runs the same main() as the installed executable; used so these tests do not depend on the
# install step (the launch tests below do, and check the executable).
NODE_CMD = [sys.executable, "-m", "pose_classifier_ros.ros.side_profile_policy_node"]
PARAMS = REPO / "config" / "side_profile_policy.yaml"

# Plays a scripted flight: 4 frames front-left, then left views with a growing box (capture by size).
PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from pose_classifier_ros.msg import Viewpoint, ViewpointArray

    def frame(i, label, size):
        msg = ViewpointArray(image_width=1000, image_height=500)
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i // 10, (i % 10) * 100_000_000
        msg.header.frame_id = "cam"
        vp = Viewpoint(track_id="elk-1", detection_score=0.9, smoothed_label_name=label, is_stable=True,
                       num_votes=5)
        vp.bbox.center.position.x, vp.bbox.center.position.y = 500.0, 250.0
        vp.bbox.size_x = vp.bbox.size_y = float(size)
        msg.viewpoints = [vp]
        return msg

    script = [("front-left", 20)] * 4 + [("left", 20 + 6 * k) for k in range(8)] + [("left", 70)] * 3
    rclpy.init()
    node = rclpy.create_node("viewpoint_player")
    pub = node.create_publisher(ViewpointArray, sys.argv[1], 10)
    alert = None
    if len(sys.argv) > 2:  # also report a fully alert animal on this std_msgs/Float32 topic
        from std_msgs.msg import Float32
        alert = node.create_publisher(Float32, sys.argv[2], 10)
    while pub.get_subscription_count() < 1 or (alert is not None and alert.get_subscription_count() < 1):
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the node's reader finish matching before the first sample
    for i, (label, size) in enumerate(script):
        if alert is not None:
            alert.publish(Float32(data=1.0))
            time.sleep(0.02)
        pub.publish(frame(i, label, size))
        time.sleep(0.05)
    print("published", len(script), flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
""")

# Records cmd_vel, policy_state and capture into a JSON file; writes `ready` once all three are matched.
RECORDER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
    from pose_classifier_ros.msg import CaptureEvent, PolicyState

    out, ns, want_states = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rec = {"cmd_vel": [], "states": [], "captures": []}
    rclpy.init()
    node = rclpy.create_node("policy_recorder")
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    subs = [
        node.create_subscription(Twist, ns + "/cmd_vel",
                                 lambda m: rec["cmd_vel"].append([m.angular.z, m.linear.x, m.linear.y]), 50),
        node.create_subscription(PolicyState, ns + "/policy_state", lambda m: rec["states"].append(
            {"state": m.state, "name": m.state_name, "track": m.target_track_id, "viewpoint": m.target_viewpoint,
             "votes": m.side_votes, "yaw": m.yaw_rate, "speed": m.forward_speed, "reason": m.reason,
             "lateral": m.lateral_speed, "flank": m.flank, "fresh": m.label_fresh, "size_px": m.target_size_px,
             "stamp": [m.header.stamp.sec, m.header.stamp.nanosec], "frame_id": m.header.frame_id}), 50),
        node.create_subscription(CaptureEvent, ns + "/capture", lambda m: rec["captures"].append(
            {"track": m.track_id, "viewpoint": m.viewpoint, "ratio": m.target_size_ratio, "reason": m.reason,
             "flank": m.flank, "size_px": m.target_size_px,
             "frames": m.frames_to_capture, "stamp": [m.header.stamp.sec, m.header.stamp.nanosec]}), latched),
    ]
    ready = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if not ready and all(s.get_publisher_count() >= 1 for s in subs):
            ready = True
            (out.parent / (out.name + ".ready")).write_text("1")
        if len(rec["states"]) >= want_states and (rec["captures"] or "--no-capture" in sys.argv):
            break
    time.sleep(0.2)
    rclpy.spin_once(node, timeout_sec=0.05)
    out.write_text(json.dumps(rec))
    node.destroy_node()
    rclpy.shutdown()
""")


def _write(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(code)
    return str(path)


def test_params_file_matches_declared_defaults():
    from pose_classifier_ros.navigation.policy import policy_schema

    values = yaml.safe_load(PARAMS.read_text())["/**/side_profile_policy"]["ros__parameters"]

    def lookup(dotted):
        node = values
        for part in dotted.split("."):
            node = node[part]
        return node

    for p in policy_schema().parameters:
        value = lookup(p.name)
        assert type(value) is type(p.default) and value == p.default, p.name


@pytest.mark.ros
@pytest.mark.slow
def test_live_stream_orients_approaches_and_captures(ros_env, processes, tmp_path):
    ns = "/drone1"
    # Yaw-only mode, capture at 10 % of the frame's shorter side (the scripted boxes stay small).
    node = processes.start(
        [
            *NODE_CMD,
            "--ros-args",
            "-r",
            f"__ns:={ns}",
            "--params-file",
            str(PARAMS),
            "-p",
            "approach.speed:=0.8",
            "-p",
            "orient.mode:=yaw",
            "-p",
            "capture.target_pixels:=0.0",
            "-p",
            "capture.size_ratio:=0.1",
        ],
        ros_env,
        "policy_node",
    )
    record = tmp_path / "record.json"
    script_frames = 15
    recorder = processes.python(
        [_write(tmp_path, "recorder.py", RECORDER), str(record), ns, str(script_frames)], ros_env, "recorder"
    )
    wait_for(
        lambda: (tmp_path / "record.json.ready").exists() or recorder.poll() is not None,
        60,
        message="recorder matched to the policy node's publishers",
    )
    assert recorder.poll() is None, processes.output(recorder)
    player = processes.python([_write(tmp_path, "player.py", PUBLISHER), f"{ns}/viewpoints"], ros_env, "player")
    wait_for(lambda: record.exists() or recorder.poll() not in (None, 0), 60, message="recorded policy outputs")
    rec = json.loads(record.read_text())
    log = processes.output(node)
    assert player.wait(30) == 0, processes.output(player)

    states = rec["states"]
    assert len(states) == script_frames, log
    names = [s["name"] for s in states]
    # K=5 of W=7: the 5th left view (frame 8) starts APPROACH; sizes 20+6k reach 50 px (ratio 0.1) at k=5.
    assert names == ["ORIENT"] * 8 + ["APPROACH"] * 1 + ["CAPTURE"] * 6, names
    assert all(s["track"] == "elk-1" and s["frame_id"] == "cam" for s in states)
    assert states[0]["stamp"] == [100, 0] and states[12]["stamp"] == [101, 200_000_000]  # header copied
    # front-left (h = +45): the left flank is 45 deg counter-clockwise round the animal: positive yaw (REP-103).
    assert all(s["yaw"] > 0 and s["flank"] == "left" and s["fresh"] for s in states[:4])
    assert states[0]["size_px"] == pytest.approx(20.0) and all(s["lateral"] == 0.0 for s in states)
    assert states[8]["speed"] == pytest.approx(0.8) and "side views" in states[8]["reason"]
    # cmd_vel mirrors the state: yaw right while orienting on front-left, forward in APPROACH, zero at capture.
    cmd = rec["cmd_vel"]
    assert len(cmd) >= script_frames
    assert all(yaw == pytest.approx(0.3) and fwd == 0.0 and lat == 0.0 for yaw, fwd, lat in cmd[:4])
    assert cmd[8] == pytest.approx([0.0, 0.8, 0.0])
    assert all(c == [0.0, 0.0, 0.0] for c in cmd[9:])
    assert rec["captures"] == [
        {
            "track": "elk-1",
            "viewpoint": "left",
            "ratio": pytest.approx(0.1),
            "reason": "size_ratio",
            "flank": "left",
            "size_px": pytest.approx(50.0),
            "frames": 9,
            "stamp": [100, 900_000_000],
        }
    ]
    assert "APPROACH -> CAPTURE" in log and "captured track elk-1" in log

    # A late subscriber still gets the capture (transient local).
    late = tmp_path / "late.json"
    processes.python([_write(tmp_path, "late.py", RECORDER), str(late), ns, "0"], ros_env, "late")
    wait_for(late.exists, 60, message="late subscriber's capture")
    assert [c["track"] for c in json.loads(late.read_text())["captures"]] == ["elk-1"]

    # A runtime change that breaks the configuration is refused with the reason.
    result = subprocess.run(
        [
            str(VENV / "bin" / "ros2"),
            "param",
            "set",
            "--no-daemon",
            "--spin-time",
            "5",
            f"{ns}/side_profile_policy",
            "approach.min_side_votes",
            "9",
        ],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "approach.min_side_votes: must be <= approach.window" in result.stdout + result.stderr
    assert processes.stop(node) == 0, log


@pytest.mark.ros
@pytest.mark.parametrize(
    "override, message",
    [
        ("approach.min_side_votes:=9", "approach.min_side_votes: must be <= approach.window (7), got 9"),
        ("capture.size_ratio:=1.5", "capture.size_ratio"),
        ("orient.scan_direction:=up", "orient.scan_direction: must be one of left, right, got 'up'"),
    ],
)
def test_invalid_parameters_exit_non_zero_with_a_clear_error(ros_env, override, message):
    result = subprocess.run(
        [*NODE_CMD, "--ros-args", "--params-file", str(PARAMS), "-p", override],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output and "Traceback" not in output, output


@pytest.mark.ros
def test_launch_show_args_lists_policy_and_classifier_arguments(ros_env):
    result = subprocess.run(
        [
            str(VENV / "bin" / "ros2"),
            "launch",
            "pose_classifier_ros",
            "side_profile_navigation.launch.py",
            "--show-args",
        ],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for arg in ("namespace", "start_classifier", "policy_params_file", "viewpoints_topic", "cmd_vel_topic"):
        assert f"'{arg}'" in output, output
    if (VENV / "share" / "pose_classifier_ros" / "launch" / "pose_classifier.launch.py").exists():
        for arg in ("checkpoint", "image_topic", "detections_topic"):
            assert f"'{arg}'" in output, output


@pytest.mark.ros
def test_launch_policy_alone_remaps_topics(ros_env, processes, tmp_path):
    assert os.access(NODE_EXE, os.X_OK), f"{NODE_EXE} is not executable: run scripts/setup.sh"
    launch = processes.start(
        [
            str(VENV / "bin" / "ros2"),
            "launch",
            "pose_classifier_ros",
            "side_profile_navigation.launch.py",
            "start_classifier:=false",
            "namespace:=uav",
            "viewpoints_topic:=/classifier/viewpoints",
            "cmd_vel_topic:=/uav/fcu/cmd_vel",
        ],
        ros_env,
        "launch",
    )
    ros2 = str(VENV / "bin" / "ros2")

    def topics():
        out = subprocess.run(
            [ros2, "topic", "list", "--no-daemon", "-t"], env=ros_env, capture_output=True, text=True, timeout=60
        ).stdout
        return out if "/uav/fcu/cmd_vel" in out else None

    out = wait_for(topics, 90, interval=1.0, message="the launched policy node's topics")
    assert "/classifier/viewpoints [pose_classifier_ros/msg/ViewpointArray]" in out, out
    assert "/uav/policy_state [pose_classifier_ros/msg/PolicyState]" in out, out
    assert "/uav/capture [pose_classifier_ros/msg/CaptureEvent]" in out, out
    assert launch.poll() is None, processes.output(launch)


@pytest.mark.ros
@pytest.mark.slow
def test_launch_classifier_and_policy_together(ros_env, processes, tmp_path):
    """Full bring-up with a test-tiny checkpoint: the policy subscribes to the classifier's viewpoints, the
    classifier to the policy's state (its focus), both remapped by policy_state_topic."""
    classifier_exe = VENV / "lib" / "pose_classifier_ros" / "pose_classifier_node"
    assert os.access(NODE_EXE, os.X_OK) and os.access(classifier_exe, os.X_OK), "run scripts/setup.sh"
    from pose_classifier_ros.model.checkpoint import save_checkpoint
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

    config = ModelConfig(backbone="test-tiny")
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", build_model(config, pretrained=False), config)
    ros2 = str(VENV / "bin" / "ros2")
    launch = processes.start(
        [
            ros2,
            "launch",
            "pose_classifier_ros",
            "side_profile_navigation.launch.py",
            "namespace:=uav",
            f"checkpoint:={checkpoint}",
            "device:=cpu",
            "image_topic:=/camera/image_raw",
            "detections_topic:=/detector/detections",
            "policy_state_topic:=/uav/navigation/state",
        ],
        ros_env,
        "launch_full",
    )

    def wired(topic="/uav/viewpoints"):
        out = subprocess.run(
            [ros2, "topic", "info", "--no-daemon", "-v", topic],
            env=ros_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        # Counts can appear before the node names are discovered: wait for both.
        complete = (
            "Publisher count: 1" in out
            and "Subscription count: 1" in out
            and "pose_classifier" in out
            and "side_profile_policy" in out
        )
        return out if complete else None

    out = wait_for(wired, 120, interval=2.0, message="classifier publisher and policy subscriber on /uav/viewpoints")
    assert "pose_classifier" in out and "side_profile_policy" in out, out
    out = wait_for(
        lambda: wired("/uav/navigation/state"),
        60,
        interval=2.0,
        message="policy publisher and classifier subscriber (focus) on /uav/navigation/state",
    )
    assert "PolicyState" in out, out
    assert launch.poll() is None, processes.output(launch)


@pytest.mark.ros
def test_orbit_example_launch_overrides_the_params_file(ros_env, processes):
    assert os.access(NODE_EXE, os.X_OK), f"{NODE_EXE} is not executable: run scripts/setup.sh"
    ros2 = str(VENV / "bin" / "ros2")
    launch = processes.start(
        [
            ros2,
            "launch",
            "pose_classifier_ros",
            "side_profile_orbit.launch.py",
            "namespace:=uav2",
            "motion_mode:=yaw",
            "target_pixels:=320.0",
            "vigilance_topic:=/uav2/alert",
        ],
        ros_env,
        "orbit_launch",
    )

    def param(name):
        out = subprocess.run(
            [ros2, "param", "get", "--no-daemon", "/uav2/side_profile_policy", name],
            env=ros_env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return out.strip() if "value is" in out else None

    assert (
        wait_for(lambda: param("orient.mode"), 90, interval=1.0, message="the example's policy node")
        == "String value is: yaw"
    ), processes.output(launch)
    # Each `ros2 param get` discovers the node anew; on a loaded machine one may miss it: retry.
    assert wait_for(lambda: param("capture.target_pixels"), 60, interval=1.0) == "Double value is: 320.0"
    assert wait_for(lambda: param("orient.orbit_speed"), 60, interval=1.0) == "Double value is: 3.0"
    assert wait_for(lambda: param("disturbance.hold_s"), 60, interval=1.0) == "Double value is: 5.0"  # params file

    def topics():
        out = subprocess.run(
            [ros2, "topic", "list", "--no-daemon", "-t"], env=ros_env, capture_output=True, text=True, timeout=60
        ).stdout
        return "/uav2/alert [std_msgs/msg/Float32]" in out and "/uav2/cmd_vel [geometry_msgs/msg/Twist]" in out

    wait_for(topics, 60, interval=1.0, message="the remapped vigilance and cmd_vel topics")
    assert launch.poll() is None, processes.output(launch)


def _play_to_policy_node(processes, ros_env, tmp_path, ns, node_name, outputs, ready_message, player, *player_args):
    """Start the policy node in `ns` (log `node_name`) and a recorder of its first `outputs` outputs; once the
    recorder has matched, run the `player` script with `player_args`; wait for the recording and the player's
    clean end. Returns the node process and the recording's path."""
    node = processes.start(
        [*NODE_CMD, "--ros-args", "-r", f"__ns:={ns}", "--params-file", str(PARAMS)], ros_env, node_name
    )
    record = tmp_path / "record.json"
    recorder = processes.python(
        [_write(tmp_path, "recorder.py", RECORDER), str(record), ns, str(outputs), "--no-capture"], ros_env, "recorder"
    )
    wait_for(
        lambda: (tmp_path / "record.json.ready").exists() or recorder.poll() is not None, 60, message=ready_message
    )
    player = processes.python([_write(tmp_path, "player.py", player), *player_args], ros_env, "player")
    wait_for(lambda: record.exists() or recorder.poll() not in (None, 0), 60, message="recorded policy outputs")
    assert player.wait(30) == 0, processes.output(player)
    return node, record


@pytest.mark.ros
def test_vigilance_input_makes_the_node_retreat(ros_env, processes, tmp_path):
    ns = "/drone3"
    node, record = _play_to_policy_node(
        processes,
        ros_env,
        tmp_path,
        ns,
        "policy_node",
        15,
        "recorder matched to the policy node's publishers",
        PUBLISHER,
        f"{ns}/viewpoints",
        f"{ns}/vigilance",
    )
    rec, log = json.loads(record.read_text()), processes.output(node)
    # Vigilance 1.0 > 0.5 from the first frame: lock on, then back off at disturbance.retreat_speed (1 m/s) for
    # disturbance.retreat_s (2 s of frame stamps: longer than this 1.5 s flight), never orbiting.
    assert [s["name"] for s in rec["states"]] == ["RETREAT"] * 15, log
    assert "vigilance 1.00 > 0.5" in rec["states"][0]["reason"]
    assert all(c == pytest.approx([0.0, -1.0, 0.0]) for c in rec["cmd_vel"][:15])
    assert rec["captures"] == [] and "-> RETREAT" in log
    assert processes.stop(node) == 0, log


# Plays viewpoints whose stamps are reordered once (0.05 s back) and then jump back 60 s (a bag loop).
JUMPING_PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from pose_classifier_ros.msg import Viewpoint, ViewpointArray

    stamps = [100.0, 100.1, 100.2, 100.15, 40.0, 40.1]
    rclpy.init()
    node = rclpy.create_node("viewpoint_player")
    pub = node.create_publisher(ViewpointArray, sys.argv[1], 10)
    while pub.get_subscription_count() < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)
    for t in stamps:
        msg = ViewpointArray(image_width=1000, image_height=500)
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), round((t - int(t)) * 1e9)
        vp = Viewpoint(track_id="elk-1", detection_score=0.9, smoothed_label_name="front-left", is_stable=True,
                       num_votes=5)
        vp.bbox.center.position.x, vp.bbox.center.position.y = 500.0, 250.0
        vp.bbox.size_x = vp.bbox.size_y = 20.0
        msg.viewpoints = [vp]
        pub.publish(msg)
        time.sleep(0.05)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
""")


@pytest.mark.ros
def test_clock_reset_resets_the_policy_and_a_reordered_message_is_skipped(ros_env, processes, tmp_path):
    ns = "/jumps"
    node, record = _play_to_policy_node(
        processes, ros_env, tmp_path, ns, "node", 5, "recorder", JUMPING_PUBLISHER, f"{ns}/viewpoints"
    )
    log = processes.output(node)
    # One policy step per message except the reordered one (100.15 after 100.2: the policy is past it).
    stamps = [s["stamp"] for s in json.loads(record.read_text())["states"]]
    assert stamps == [[100, 0], [100, 100_000_000], [100, 200_000_000], [40, 0], [40, 100_000_000]], (stamps, log)
    resets = [line for line in log.splitlines() if "went back" in line]
    assert len(resets) == 1 and "viewpoint stamps went back 60.200 s (bag loop or clock reset)" in resets[0], log
    assert processes.stop(node) == 0
