"""Shared fixtures (an isolated ROS 2 environment per test, managed child processes, small checkpoints) and
the tier guard: a test that starts a process must carry @pytest.mark.ros or @pytest.mark.process
(helpers/process_guard.py), so that `make test-fast` (`-m "not ros and not process"`) starts none.

Shared code that is not a fixture lives in helpers/ (ROS-free) and ros_helpers/ (ROS processes); test
modules import it from there, never from conftest.py or another test module."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import season_inputs
from helpers.paths import REPO, VENV
from helpers.process_guard import fixture_problem, process_markers, refuse_processes

pytest_plugins = ["pytester"]  # test_suite_rules.py runs this conftest in a separate pytest session

# Domain ids 1..100 are valid on Linux for Fast DDS' default port mapping. Spread by pid so
# parallel test runs on one machine do not hear each other.
_domain_counter = [os.getpid() % 50]


def pytest_sessionstart(session):
    """Load matplotlib's font list once, before any test and outside the tier guard.

    Building the list runs `fc-list`, a process the guard refuses inside an unmarked test; and
    `_private_cache_home` below moves XDG_CACHE_HOME, where matplotlib keeps that list. Pinning
    MPLCONFIGDIR to matplotlib's usual directory lets every test and child process reuse it.
    """
    try:
        import matplotlib
    except ImportError:
        return
    os.environ.setdefault("MPLCONFIGDIR", matplotlib.get_cachedir())
    import matplotlib.font_manager  # builds or reads the font list


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
        # Signal the whole group even when the leader has already ended: `ros2 launch` nodes share its
        # process group and outlive a leader that died abruptly.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
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


@pytest.fixture(scope="module")
def colour_checkpoint(tmp_path_factory):
    """A test-tiny checkpoint whose label is the colour of the crop (ros_helpers/colour_model)."""
    from ros_helpers.colour_model import save_colour_checkpoint

    return save_colour_checkpoint(tmp_path_factory.mktemp("ckpt") / "colour_test_tiny.pt")


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A test-tiny checkpoint in our format (random head, seed 0) at tmp_path/tiny.pth."""
    return season_inputs.tiny_checkpoint(tmp_path / "tiny.pth")


# ---------------------------------------------------------------------------------------------
# Tier guard (helpers/process_guard.py), in every run, not only the fast tier.
# ---------------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test that requests `ros_env` / `processes` without the matching marker fails before set-up."""
    problem = fixture_problem(item)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Set-up, call and teardown of a test without a process marker cannot start a process."""
    if process_markers(item):
        return (yield)
    with refuse_processes(item.nodeid):
        return (yield)
