"""Rules of the test suite itself: shared code comes from helpers/ or ros_helpers/, never from another test
module, and the tier guard (helpers/process_guard.py, wired in conftest.py) really refuses processes in
tests without a process marker, so the fast tier (`scripts/run_tests.sh --fast`) starts none."""

from __future__ import annotations

import ast
import multiprocessing
import os
import re
import subprocess
import sys

import pytest
from helpers.paths import REPO
from helpers.process_guard import PROCESS_MARKERS, ProcessStartRefused

TEST_DIR = REPO / "test"


def _imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            if node.level or not node.module:  # `from . import test_x`
                names |= {alias.name for alias in node.names}
    return names


def test_no_test_module_imports_another_test_module_or_conftest():
    offenders = []
    for path in sorted(TEST_DIR.rglob("*.py")):
        for name in _imported_modules(path):
            top = name.split(".")[-1] if name.startswith("test.") else name.split(".")[0]
            if top.startswith("test_") or top == "conftest":
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "move shared code to test/helpers/ (or ros_helpers/, fixtures to conftest.py):\n" + "\n".join(
        offenders
    )


def test_fast_tier_deselects_every_process_marker():
    script = (REPO / "scripts" / "run_tests.sh").read_text()
    (expression,) = re.findall(r'^FAST_TIER="(.*)"$', script, re.M)
    assert expression == " and ".join(f"not {marker}" for marker in PROCESS_MARKERS)
    assert "run_tests.sh --fast" in (REPO / "Makefile").read_text()


@pytest.mark.filterwarnings("ignore::helpers.process_guard.ProcessStartWarning")  # the refusals are the point
def test_an_unmarked_test_cannot_start_a_process():
    with pytest.raises(ProcessStartRefused, match="test_an_unmarked_test_cannot_start_a_process tried to start"):
        subprocess.run(["true"], check=False)
    with pytest.raises(ProcessStartRefused, match=r"os\.fork"):
        os.fork()
    with pytest.raises(ProcessStartRefused):
        multiprocessing.get_context("fork").Process(target=print).start()
    with pytest.raises(ProcessStartRefused):
        multiprocessing.get_context("spawn").Process(target=print).start()
    rclpy = pytest.importorskip("rclpy")
    with pytest.raises(ProcessStartRefused, match="an rclpy context"):
        rclpy.init()


@pytest.mark.process
def test_a_marked_test_may_start_a_process():
    assert subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout == "42\n"


INNER_TESTS = """
import subprocess

import pytest


def test_unmarked_uses_ros_env(ros_env):
    pass


@pytest.mark.process
def test_process_marked_uses_ros_env(ros_env):
    pass


def test_unmarked_uses_processes(processes):
    pass


def test_unmarked_starts_a_subprocess():
    subprocess.run(["true"])


@pytest.mark.ros
def test_ros_marked_uses_ros_env(ros_env):
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
"""


def test_conftest_wires_the_guard_into_every_test(pytester):
    """The real conftest.py in a separate pytest run: fixture users without their marker fail before
    set-up; an unmarked test's subprocess is refused by *its own* guard (the message names the inner
    test; this test's guard would name this test)."""
    pytester.makeconftest((TEST_DIR / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    ros: ROS\n    process: process\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_unmarked_uses_ros_env uses the `ros_env` fixture*mark it @pytest.mark.ros",
            "*test_process_marked_uses_ros_env uses the `ros_env` fixture*mark it @pytest.mark.ros",
            "*test_unmarked_uses_processes uses the `processes` fixture*@pytest.mark.ros or @pytest.mark.process",
            "*test_inner.py::test_unmarked_starts_a_subprocess tried to start a subprocess without a marker*",
        ]
    )
