"""`ros2` command-line calls for tests."""

from __future__ import annotations

import subprocess
import sys
import time

from helpers.paths import REPO, VENV
from helpers.waiting import wait_for
from ros_helpers import HELPERS

ROS2 = str(VENV / "bin" / "ros2")


def ros2_node_call(env: dict, command: list[str], timeout: float = 60) -> str:
    """Output of a `ros2 ... --no-daemon` call on a node, retried while the fresh CLI process has not yet
    discovered the node (with --no-daemon each call discovers the graph from scratch, and under load its 2 s
    of discovery sometimes miss the node) until `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([ROS2, *command], env=env, capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        if "Node not found" not in text or time.monotonic() > deadline:
            return text


def lifecycle(env: dict, node: str, verb: str, *args: str, timeout: float = 60) -> str:
    """Output of `ros2 lifecycle VERB --no-daemon NODE ARGS` (retried until the node is discovered)."""
    return ros2_node_call(env, ["lifecycle", verb, "--no-daemon", "--spin-time", "2", node, *args], timeout)


def param(env: dict, node: str, verb: str, *args: str, timeout: float = 60) -> str:
    """Output of `ros2 param VERB --no-daemon NODE ARGS` (retried until the node is discovered)."""
    command = ["param", verb, "--no-daemon", "--spin-time", "2", node, *args, "--timeout", "5"]
    return ros2_node_call(env, command, timeout)


def wait_state(env: dict, node: str, state: str, timeout: float = 60) -> None:
    """Poll `ros2 lifecycle get NODE` until it reports `state` (e.g. "unconfigured"); fail after `timeout` s."""
    wait_for(
        lambda: lifecycle(env, node, "get").startswith(state), timeout, interval=0.5, message=f"{node} in state {state}"
    )


CLASSIFIER_NODE = [sys.executable, "-m", "pose_classifier_ros.ros.pose_classifier_node"]
CLASSIFIER_PARAMS = REPO / "config" / "pose_classifier.yaml"


def classifier_node_args(ns: str, checkpoint, *params: str, node: list[str] | None = None) -> list[str]:
    """Command line of pose_classifier_node (or `node`, e.g. a test wrapper script run with python) in namespace
    `ns` with the shipped YAML, `checkpoint`, the exact eager backend on one thread, and `params`
    ("name:=value") on top."""
    args = [*(node or CLASSIFIER_NODE), "--ros-args", "-r", f"__ns:={ns}", "--params-file", str(CLASSIFIER_PARAMS)]
    for p in (f"model.checkpoint:={checkpoint}", "model.backend:=eager", "model.num_threads:=1", *params):
        args += ["-p", p]
    return args


def reliable_images(ns: str) -> tuple[str, str]:
    """Parameters giving the node in `ns` a reliable image reader of depth 20: a test that counts every frame
    must not lose one in DDS on a loaded machine."""
    return (
        f"qos_overrides.{ns}/image.subscription.reliability:=reliable",
        f"qos_overrides.{ns}/image.subscription.depth:=20",
    )


def start_stream(processes, env: dict, script: str, out, ns: str, *args: str, message: str = "the stream's recording"):
    """Start the stream script `script` (ros_helpers/, e.g. "schedule_stream.py") recording to `out` against the
    node in `ns`, with `args`, as the process "stream"; wait (240 s, else fail with `message`) until it has
    written `out` or ended. Returns the stream's process."""
    stream = processes.python([str(HELPERS / script), str(out), ns, *args], env, "stream")
    wait_for(lambda: out.exists() or stream.poll() is not None, 240, message=message)
    return stream
