"""One parameter schema for every node and tool: names, types, defaults, ranges, meanings. No rclpy.

A ``ParameterSchema`` is the single source of truth for one node's parameters. The ROS adapters turn
each ``Parameter`` into a declared parameter with a descriptor; the offline tools (replay, policy
evaluation, the simulator) read the same ROS 2 YAML files through ``ParameterSchema.load_file``. Both
go through ``ParameterSchema.check``, so an unknown key, a wrong type or an out-of-range value gives
the same ``ParameterError`` everywhere, naming the key and the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Parameters every rclpy node has (or that launch adds); never "unknown".
ROS_BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
# ROS QoS overrides (`qos_overrides./topic.subscription.reliability: reliable`) are rclpy's, never "unknown".
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)


class ParameterError(ValueError):
    """Invalid parameters; the message names each bad key (and the file, when one was read)."""


@dataclass(frozen=True)
class Parameter:
    """One parameter: dotted name, default (its Python type is the parameter's type), meaning, limits.

    low/high: inclusive range (None: no range); choices: allowed string values; read_only: cannot be
    changed while the node runs.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this parameter, or None."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # YAML writes 1 for 1.0; ROS would reject it, we accept the obvious intent
        if expected is list:
            if not isinstance(value, (list, tuple)):
                return f"has type {type(value).__name__}, expected a list"
        elif type(value) is not expected:
            return f"has type {type(value).__name__}, expected {expected.__name__}"
        if self.choices and value not in self.choices:
            return f"={value!r} is not one of {', '.join(self.choices)}"
        if self.low is not None and not (self.low <= value <= self.high):
            return f"={value!r} is outside [{self.low}, {self.high}]"
        return None


class ParameterSchema:
    """The parameters of one node (``node_name``), in YAML order."""

    def __init__(self, node_name: str, parameters: Iterable[Parameter]):
        self.node_name = node_name
        self.parameters: tuple[Parameter, ...] = tuple(parameters)
        self.by_name = {p.name: p for p in self.parameters}
        if len(self.by_name) != len(self.parameters):
            raise ValueError(f"{node_name}: duplicate parameter names")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def check(self, values: dict[str, Any], source: str = "") -> dict[str, Any]:
        """Defaults updated with `values`, after checking every key; ParameterError lists all problems.

        source: where the values came from (a file path, "parameters of /pose_classifier"), put first in
        the message.
        """
        errors = []
        for key in values:
            if key in self.by_name or key in ROS_BUILTIN_PARAMETERS or key.startswith(ROS_BUILTIN_PREFIXES):
                continue
            close = difflib.get_close_matches(key, self.by_name, n=1)
            errors.append(f"unknown parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        for key, value in values.items():
            param = self.by_name.get(key)
            problem = param.problem(value) if param is not None else None
            if problem:
                errors.append(f"{key}{problem}" if problem.startswith("=") else f"{key} {problem}")
        if errors:
            where = f"{source}: " if source else ""
            raise ParameterError(f"{where}invalid parameters for {self.node_name}: " + "; ".join(errors))
        merged = self.defaults()
        for key, value in values.items():
            if key in self.by_name:
                default = self.by_name[key].default
                merged[key] = float(value) if isinstance(default, float) else value
        return merged

    def load_file(self, path: str | Path) -> dict[str, Any]:
        """Checked values (defaults filled in) of this node's section of a ROS 2 parameters YAML file."""
        return self.check(read_params_file(path, self.node_name), source=str(path))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (ROS parameter names from nested YAML)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def node_sections(doc: Any, node_name: str) -> list[dict]:
    """The ``ros__parameters`` sections of a parameters document that apply to `node_name` (any namespace)."""
    sections = []
    if not isinstance(doc, dict):
        return sections
    for key, section in doc.items():
        key = str(key)
        applies = key in ("/**", "**") or key.lstrip("/").split("/")[-1] == node_name
        if applies and isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            sections.append(section["ros__parameters"])
    return sections


def read_params_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """Flat, unchecked values for `node_name` from a ROS 2 parameters YAML file (wildcard sections first)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f"cannot read parameters file {str(path)!r}: {exc}") from None
    sections = node_sections(doc, node_name)
    if not sections:
        raise ParameterError(f"parameters file {str(path)!r} has no '{node_name}: ros__parameters:' section")
    values: dict[str, Any] = {}
    for section in sections:
        values.update(flatten(section))
    return values


def params_files_from_args(args: Iterable[str]) -> list[str]:
    """The files named by ``--params-file PATH`` in a command line (a node's ROS arguments)."""
    args = list(args)
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--params-file"]


__all__ = [
    "Parameter",
    "ParameterError",
    "ParameterSchema",
    "flatten",
    "node_sections",
    "params_files_from_args",
    "read_params_file",
]
