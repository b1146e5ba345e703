"""Shared fixtures: an isolated ROS 2 environment per test and managed child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
# Domain ids 1..100 are valid on Linux for Fast DDS' default port mapping. Spread by pid so
# parallel test runs on one machine do not hear each other.
_domain_counter = [os.getpid() % 50]


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory):
    """Caches the code writes by default (backend "auto"'s choice, ONNX exports) go to a per-run
    directory, inherited by child processes, never to the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def ros_env() -> dict:
    """Environment for ROS child processes: own domain id, DDS on localhost only."""
    _domain_counter[0] = _domain_counter[0] % 100 + 1
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(_domain_counter[0]),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        AMENT_PREFIX_PATH=str(VENV),
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
    )
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


class ProcessGroup:
    """Starts child processes in their own sessions and guarantees they (and their children) end."""

    def __init__(self, tmp_path: Path):
        self._tmp = tmp_path
        self._procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], env: dict, name: str) -> subprocess.Popen:
        log = self._tmp / f"{name}.log"
        proc = subprocess.Popen(
            args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO)
        )
        proc.log_path = log  # type: ignore[attr-defined]
        self._procs.append((proc, log))
        return proc

    def python(self, code_or_module: list[str], env: dict, name: str) -> subprocess.Popen:
        return self.start([sys.executable, *code_or_module], env, name)

    @staticmethod
    def output(proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop(self, proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 10.0) -> int:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def stop_all(self):
        for proc, _ in reversed(self._procs):
            self.stop(proc)


@pytest.fixture
def processes(tmp_path):
    """Start child processes with `processes.start(args, env, name)`; all are stopped at teardown."""
    group = ProcessGroup(tmp_path)
    yield group
    group.stop_all()


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until truthy; fail the test with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


@pytest.fixture(scope="module")
def colour_checkpoint(tmp_path_factory):
    """A test-tiny checkpoint whose label is the colour of the crop (ros_helpers/colour_model)."""
    from ros_helpers.colour_model import save_colour_checkpoint

    return save_colour_checkpoint(tmp_path_factory.mktemp("ckpt") / "colour_test_tiny.pt")
