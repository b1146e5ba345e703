"""`large_images:=true` runs the node with the shipped Fast DDS large-image profile (and only then)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.paths import REPO, VENV
from helpers.waiting import wait_for
from ros_helpers.cli import ROS2
from ros_helpers.colour_model import save_colour_checkpoint

pytestmark = pytest.mark.ros  # every test here starts ROS processes

LAUNCH = REPO / "launch" / "pose_classifier.launch.py"
PROFILE = VENV / "share" / "pose_classifier_ros" / "config" / "fastdds_large_images.xml"


def _node_environ(launch_pid: int) -> dict[str, str] | None:
    """Environment of the pose_classifier_node process started by the launch (a descendant), or None."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if os.getsid(int(proc.name)) != os.getsid(launch_pid) or int(proc.name) == launch_pid:
                continue
            if not any(b"pose_classifier_node" in part for part in cmdline) or stat[0] == "Z":
                continue
            raw = (proc / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    return None


@pytest.mark.parametrize("large_images", ["true", "false"])
def test_large_images_sets_the_fastdds_profile_for_the_node(ros_env, processes, tmp_path, large_images):
    if not (VENV / "share" / "pose_classifier_ros" / "launch" / LAUNCH.name).exists():
        pytest.fail("launch file not installed: run `bash scripts/setup.sh`")
    env = dict(ros_env)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    checkpoint = save_colour_checkpoint(tmp_path / "colour.pt")
    launch = processes.start(
        [
            ROS2,
            "launch",
            "pose_classifier_ros",
            "pose_classifier.launch.py",
            f"checkpoint:={checkpoint}",
            "namespace:=big",
            "autostart:=false",
            f"large_images:={large_images}",
        ],
        env,
        "launch",
    )
    environ = wait_for(
        lambda: _node_environ(launch.pid) or launch.poll() is not None, 60, message="the launched node process"
    )
    assert isinstance(environ, dict), processes.output(launch)
    if large_images == "true":
        profile = Path(environ["FASTDDS_DEFAULT_PROFILES_FILE"])
        assert profile.resolve() == PROFILE.resolve() and profile.is_file()
        assert "<segment_size>" in profile.read_text()
    else:
        assert "FASTDDS_DEFAULT_PROFILES_FILE" not in environ
    assert processes.stop(launch) == 0, processes.output(launch)
