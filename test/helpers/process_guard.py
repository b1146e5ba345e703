"""The test tiers' guard: a test that starts a process (or an rclpy context) must say so with a marker.

`make test-fast` runs `pytest -m "not ros and not process"`, so a process-starting test without its marker
would silently slow the fast tier down or make it depend on ROS. Two checks keep the markers honest, in
every run (conftest.py wires them in):

- `fixture_problem(item)`, before set-up: a test that requests `ros_env` needs `@pytest.mark.ros`; one that
  requests `processes` needs `ros` or `process`.
- `refuse_processes()`, around set-up, call and teardown of every test without such a marker: the ways
  Python starts a process (`subprocess.Popen`, `os.fork`/`forkpty`/`posix_spawn`/`system`, the fork-exec
  behind `multiprocessing`) and `rclpy`'s `Context.init` (every rclpy node needs one) raise
  `ProcessStartRefused` naming the marker to add. It is a PermissionError (an OSError), so library code
  that copes with a missing program (matplotlib asking `fc-list` for system fonts) carries on without
  the process; each refusal is also a `ProcessStartWarning` in pytest's warnings summary.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings

# marker -> what it means; the order is the advice given when a marker is missing.
PROCESS_MARKERS = {
    "ros": "starts ROS 2 processes (nodes, launch, the ros2 CLI, rclpy scripts) or an rclpy context",
    "process": "starts another child process (the pose-classifier CLI, python -c ...)",
}
# fixture -> the markers that allow it
FIXTURE_MARKERS = {"ros_env": ("ros",), "processes": ("ros", "process")}


class ProcessStartRefused(PermissionError):
    """A test without a process marker tried to start a process or an rclpy context."""


class ProcessStartWarning(UserWarning):
    """A refused process start (also when the code that tried caught the error)."""


def process_markers(item) -> set[str]:
    """The process markers on a test item (its own, its class's or its module's `pytestmark`)."""
    return {name for name in PROCESS_MARKERS if item.get_closest_marker(name) is not None}


def fixture_problem(item) -> str | None:
    """Why `item` may not use its fixtures as marked, or None."""
    markers = process_markers(item)
    for fixture, allowed in FIXTURE_MARKERS.items():
        if fixture in getattr(item, "fixturenames", ()) and not markers & set(allowed):
            marks = " or ".join(f"@pytest.mark.{m}" for m in allowed)
            return f"{item.nodeid} uses the `{fixture}` fixture, so it starts processes: mark it {marks}"
    return None


def _refuser(what: str, nodeid: str):
    def refuse(*args, **kwargs):
        message = (
            f"{nodeid} tried to start {what} without a marker: mark it @pytest.mark.ros (ROS processes or an "
            "rclpy context) or @pytest.mark.process (any other process). Unmarked tests form the fast tier "
            "(make test-fast), which starts no process."
        )
        warnings.warn(message, ProcessStartWarning, stacklevel=2)
        raise ProcessStartRefused(message)

    return refuse


def _targets() -> list[tuple[object, str, str]]:
    """(owner, attribute, description) of everything that starts a process from Python."""
    targets = [(subprocess.Popen, "_execute_child", "a subprocess")]
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            targets.append((os, name, f"a process (os.{name})"))
    with contextlib.suppress(ImportError):
        import _posixsubprocess  # multiprocessing's spawn/forkserver start workers through it

        targets.append((_posixsubprocess, "fork_exec", "a process (fork_exec)"))
    context = _rclpy_context()
    if context is not None:
        targets.append((context, "init", "an rclpy context"))
    return targets


def _rclpy_context():
    """rclpy's Context class if rclpy is installed (imported once; loads no DDS), else None."""
    if "rclpy.context" not in sys.modules:
        try:
            import rclpy.context  # noqa: F401
        except ImportError:
            return None
    return sys.modules["rclpy.context"].Context


@contextlib.contextmanager
def refuse_processes(nodeid: str):
    """Within the block, starting a process or an rclpy context raises ProcessStartRefused."""
    saved = []
    for owner, name, what in _targets():
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, _refuser(what, nodeid))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
