"""The layout is the architecture: every room's imports against the boundary table (pose_classifier_ros/layout.py),
on the source (lazy imports included) and, for rclpy, at run time; the docs show the same table."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
from helpers.paths import REPO

from pose_classifier_ros.layout import BY_NAME, EVERYTHING, GENERATED, ROOMS, TABLE_BEGIN, TABLE_END, markdown_table

PACKAGE = REPO / "pose_classifier_ros"
ROS_ONLY = ("rclpy", "rcl_interfaces", "launch", "launch_ros", "ament_index_python")


def _imports(path: Path, package: tuple[str, ...] | None = None) -> list[tuple[int, str]]:
    """(line, absolute name) of everything a source file imports, anywhere in it (function bodies too).

    ``import a.b`` gives "a.b"; ``from a.b import c`` gives "a.b.c" (c may be a module or a name in a.b);
    relative imports are resolved against `package` (default: the file's own, from its path).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = path.relative_to(REPO).parts[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _room_of(path: Path) -> str:
    """The room a source file belongs to: its subpackage, or its own name at the top level."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _target(name: str) -> str:
    """What an import of ours reaches, relative to the package: "stream.voting.TrackVoter", "msg.Viewpoint";
    a name that is no room ("VIEWPOINTS" from the bare package) is the package's ``__init__``."""
    rel = name.removeprefix("pose_classifier_ros.")
    first = rel.split(".")[0]
    return rel if first in BY_NAME or first in GENERATED else "__init__"


def _allowed(room: str, target: str) -> bool:
    may = BY_NAME[room].may_import
    if target.split(".")[0] == room or may == (EVERYTHING,):
        return True
    return any(target == entry or target.startswith(entry + ".") for entry in may)


def test_every_source_file_is_in_a_room_of_the_table_and_every_room_exists():
    assert len(BY_NAME) == len(ROOMS), "two rooms with one name"
    homeless = sorted({str(p.relative_to(REPO)) for p in _sources() if _room_of(p) not in BY_NAME})
    assert not homeless, f"not in pose_classifier_ros/layout.py: {homeless}"
    for room in ROOMS:
        where = PACKAGE / room.path
        assert (where / "__init__.py").is_file() if room.is_package else where.is_file(), room.path


def test_subpackages_have_a_docstring():
    for room in ROOMS:
        if room.is_package:
            assert ast.get_docstring(ast.parse((PACKAGE / room.path / "__init__.py").read_text())), room.path


def test_the_table_names_real_rooms_and_modules_and_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for room in ROOMS:
        if room.may_import == (EVERYTHING,):
            graph[room.name] = set(BY_NAME) - {room.name}
            continue
        assert EVERYTHING not in room.may_import, f"{room.name}: EVERYTHING stands alone"
        for entry in room.may_import:
            first, *rest = entry.split(".")
            assert first in BY_NAME and first != room.name, f"{room.name}: {entry!r} is not another room"
            if rest:  # one module of a subpackage
                module = PACKAGE / first / Path(*rest)
                assert module.with_suffix(".py").is_file() or module.is_dir(), f"{room.name}: no module {entry}"
        graph[room.name] = {entry.split(".")[0] for entry in room.may_import}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"the allowed imports form a cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("room", [room.name for room in ROOMS])
def test_every_import_follows_the_table(room):
    offenders = []
    for path in _sources():
        if _room_of(path) != room:
            continue
        for line, name in _imports(path):
            if name.split(".")[0] != "pose_classifier_ros":
                continue
            target = _target(name)
            if not _allowed(room, target):
                offenders.append(f"{path.relative_to(REPO)}:{line}: {target}")
    allowed = ", ".join(BY_NAME[room].may_import) or "nothing"
    assert not offenders, f"{room} may import {allowed}; these import more: {offenders}"


def test_the_check_sees_lazy_relative_and_bare_package_imports(tmp_path):
    """The AST walk is what every test above relies on: it must see imports inside functions."""
    src = tmp_path / "probe.py"  # as if it were navigation/probe.py
    src.write_text(
        "from ..labels import VIEWPOINTS\n"
        "def f():\n    from pose_classifier_ros.training import train\n"
        "    import pose_classifier_ros.ros.qos\n    from pose_classifier_ros import VIEWPOINTS, msg\n"
    )
    targets = [_target(name) for _, name in _imports(src, ("pose_classifier_ros", "navigation"))]
    assert targets == ["labels.VIEWPOINTS", "training.train", "ros.qos", "__init__", "msg"]
    assert [_allowed("navigation", t) for t in targets] == [True, False, False, False, False]
    assert _allowed("navigation", "stream.voting.TrackVoter") and not _allowed("navigation", "stream.pipeline")
    assert _allowed("ros", "msg") and _allowed("report", "evaluation.text") and not _allowed("report", "evaluation")


def test_docs_show_the_table():
    doc = (REPO / "docs" / "architecture.md").read_text()
    start, end = doc.find(TABLE_BEGIN), doc.find(TABLE_END)
    assert 0 <= start < end, "docs/architecture.md lost the layout table markers"
    shown = doc[start : end + len(TABLE_END)] + "\n"
    assert shown == markdown_table(), (
        "docs/architecture.md and pose_classifier_ros/layout.py disagree: run `python scripts/layout_table.py --write`"
    )


def test_nothing_outside_ros_imports_rclpy():
    offenders = []
    for path in _sources():
        if _room_of(path) == "ros":
            continue
        bad = {name for _, name in _imports(path) if name.split(".")[0] in ROS_ONLY}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.process
def test_core_modules_load_without_rclpy():
    """Run-time check of the same rule: importing every core module pulls in no rclpy."""
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in _sources()
        if _room_of(p) != "ros" and p.name != "__main__.py"
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
