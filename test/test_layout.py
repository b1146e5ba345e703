"""The layout is the architecture: import boundaries between subpackages, checked on the source and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

PACKAGE = REPO / "pose_classifier_ros"
ROS_ONLY = ("rclpy", "rcl_interfaces", "launch", "launch_ros", "ament_index_python")


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a source file (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def _sources(subpackage: str = "") -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def test_subpackages_exist_with_a_docstring():
    for name in (
        "model",
        "stream",
        "visualization",
        "training",
        "evaluation",
        "bags",
        "navigation",
        "synthetic",
        "ros",
    ):
        init = PACKAGE / name / "__init__.py"
        assert init.is_file(), name
    for name in ("model", "stream", "visualization", "training", "evaluation", "bags", "navigation", "synthetic"):
        assert ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())), name


def test_nothing_outside_ros_imports_rclpy():
    offenders = []
    for path in _sources():
        if "ros" in path.relative_to(PACKAGE).parts[:1]:
            continue
        bad = {m for m in _imports(path) if m.split(".")[0] in ROS_ONLY}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    "subpackage, forbidden",
    [
        ("model", ("bags", "navigation", "ros", "stream", "training", "synthetic")),
        ("stream", ("bags", "navigation", "ros", "training", "visualization", "evaluation")),
        ("visualization", ("bags", "navigation", "ros", "training", "evaluation")),
        ("evaluation", ("bags", "navigation", "ros", "stream", "visualization")),
        ("synthetic", ("bags", "model", "navigation", "ros", "stream", "training")),
        ("navigation", ("ros", "training")),
        ("training", ("bags", "navigation", "ros")),
    ],
)
def test_subpackage_import_boundaries(subpackage, forbidden):
    prefixes = tuple(f"pose_classifier_ros.{name}" for name in forbidden)
    offenders = []
    for path in _sources(subpackage):
        bad = {m for m in _imports(path) if m == prefixes or m.startswith(prefixes)}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.process
def test_core_modules_load_without_rclpy():
    """Run-time check of the same rule: importing every core module pulls in no rclpy."""
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in _sources()
        if "ros" not in p.relative_to(PACKAGE).parts[:1] and p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rcl_interfaces'))\n"
        "print('LOADED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
