"""One parameter schema for every node and tool: names, types, defaults, ranges, meanings. No rclpy.

A node's configuration is a tree of typed dataclasses whose attribute paths are its parameter names
(``cfg.voting.window`` is the parameter ``voting.window``, ``voting: {window: 7}`` in the YAML). The
dataclass field defaults are the one statement of each default; a table of ``ParameterDoc`` adds what a
field cannot say (meaning, range, choices), and ``ParameterSchema.from_config`` joins the two into the
node's ``ParameterSchema``. The ROS adapters declare each ``Parameter`` with a descriptor; the offline
tools (replay, policy evaluation, the simulator) read the same ROS 2 YAML files. Both build the config
with ``ParameterSchema.build``, so an unknown key, a wrong type, an out-of-range value or an inconsistent
pair gives the same ``ParameterError`` everywhere, naming the YAML path (and the file).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Parameters every rclpy node has (or that launch adds); never "unknown".
ROS_BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
# ROS QoS overrides (`qos_overrides./topic.subscription.reliability: reliable`) are rclpy's, never "unknown".
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)

# A check across parameters: checked values {name: value} -> problems ("voting.min_votes: must be <= ...").
CrossCheck = Callable[[dict[str, Any]], list[str]]


def at_most(bound: str, *names: str) -> CrossCheck:
    """The cross check "each of `names` is <= parameter `bound`" (e.g. votes needed <= the vote window)."""

    def check(v: dict[str, Any]) -> list[str]:
        return [f"{name}: must be <= {bound} ({v[bound]}), got {v[name]}" for name in names if v[name] > v[bound]]

    return check


class ParameterError(ValueError):
    """Invalid parameters; the message names each bad key (and the file, when one was read).

    problems: one line per bad key, without the source ("voting.window: must be in [1, 10000], got 0").
    """

    def __init__(self, message: str, problems: Iterable[str] = ()):
        super().__init__(message)
        self.problems = list(problems) or [message]


@dataclass(frozen=True)
class Parameter:
    """One parameter: dotted name, default (its Python type is the parameter's type), meaning, limits.

    low/high: inclusive range (None: no range); choices: allowed string values; read_only: cannot be
    changed while the node runs. A list default means a list of strings (a ROS string array).
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this parameter ("must be in [1, 10000], got 0"), or None."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # YAML writes 1 for 1.0; ROS would reject it, we accept the obvious intent
        if expected is list:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                return f"expected a list of strings (quote numeric ones), got {value!r}"
        elif type(value) is not expected:
            return f"expected {expected.__name__}, got {type(value).__name__} {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        if self.low is not None and not (self.low <= value <= self.high):
            return f"must be in [{self.low}, {self.high}], got {value!r}"
        return None


@dataclass(frozen=True)
class ParameterDoc:
    """What a config field cannot say about its parameter: meaning and limits (see ``Parameter``).

    name: the field's attribute path (= the parameter name); the default and type come from the field.
    """

    name: str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False


class ParameterSchema:
    """The parameters of one node (``node_name``), in YAML order, and the config they build.

    config_type: the node's config dataclass (attribute path = parameter name), or None for a bare
    schema; cross_checks: the checks across parameters, run by ``build`` on the checked values.
    """

    def __init__(
        self,
        node_name: str,
        parameters: Iterable[Parameter],
        config_type: type | None = None,
        cross_checks: Iterable[CrossCheck] = (),
    ):
        self.node_name = node_name
        self.parameters: tuple[Parameter, ...] = tuple(parameters)
        self.by_name = {p.name: p for p in self.parameters}
        if len(self.by_name) != len(self.parameters):
            raise ValueError(f"{node_name}: duplicate parameter names")
        self.config_type = config_type
        self.cross_checks = tuple(cross_checks)

    @classmethod
    def from_config(
        cls,
        node_name: str,
        config_type: type,
        docs: Iterable[ParameterDoc],
        fixed: Iterable[str] = (),
        cross_checks: Iterable[CrossCheck] = (),
    ) -> ParameterSchema:
        """The schema of `config_type`: one Parameter per doc, its default taken from the dataclass field.

        fixed: leaf fields that are not parameters (they keep their default). Every other leaf field
        needs a doc and every doc a field; ValueError otherwise (a table out of step with the dataclass).
        """
        defaults = config_defaults(config_type)
        docs = tuple(docs)
        fixed = set(fixed)
        named = {d.name for d in docs}
        stray = sorted(named - set(defaults)) + sorted(fixed - set(defaults))
        undocumented = sorted(set(defaults) - named - fixed)
        if stray or undocumented:
            raise ValueError(
                f"{node_name}: parameter table and {config_type.__name__} disagree: "
                f"no such field {stray}, no parameter for field {undocumented}"
            )
        parameters = []
        for d in docs:
            default = defaults[d.name]
            if isinstance(default, tuple):
                default = list(default)  # a ROS string array
            parameters.append(Parameter(d.name, default, d.description, d.low, d.high, d.choices, d.read_only))
        return cls(node_name, parameters, config_type, cross_checks)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def problems(self, values: dict[str, Any]) -> list[str]:
        """One line per unknown key, wrong type or out-of-range value of `values`."""
        problems = []
        for key in values:
            if key in self.by_name or key in ROS_BUILTIN_PARAMETERS or key.startswith(ROS_BUILTIN_PREFIXES):
                continue
            close = difflib.get_close_matches(key, self.by_name, n=1)
            problems.append(f"unknown parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        for key, value in values.items():
            param = self.by_name.get(key)
            problem = param.problem(value) if param is not None else None
            if problem:
                problems.append(f"{key}: {problem}")
        return problems

    def check(self, values: dict[str, Any], source: str = "") -> dict[str, Any]:
        """Defaults updated with `values`, after checking every key; ParameterError lists all problems.

        source: where the values came from (a file path, "parameters of /pose_classifier"), put first in
        the message.
        """
        problems = self.problems(values)
        if problems:
            raise self.error(problems, source)
        return self._merged(values)

    def _merged(self, values: dict[str, Any]) -> dict[str, Any]:
        merged = self.defaults()
        for key, value in values.items():
            if key in self.by_name:
                default = self.by_name[key].default
                merged[key] = float(value) if isinstance(default, float) else value
        return merged

    def error(self, problems: list[str], source: str = "") -> ParameterError:
        where = f"{source}: " if source else ""
        return ParameterError(f"{where}invalid parameters for {self.node_name}: " + "; ".join(problems), problems)

    def build(self, values: dict[str, Any], source: str = "", extra_checks: Iterable[CrossCheck] = ()) -> Any:
        """The config (``config_type``) from ``{parameter name: value}``; missing names keep their defaults.

        ParameterError names every unknown key, wrong type, out-of-range value and failed cross check
        at once (the cross checks see the valid values, defaults for the invalid ones), prefixed by
        `source`. extra_checks: checks of this caller only (the node requires a checkpoint, replay not).
        """
        if self.config_type is None:
            raise TypeError(f"{self.node_name}: this schema has no config type")
        problems = self.problems(values)
        merged = self._merged({k: v for k, v in values.items() if k in self.by_name and not self.by_name[k].problem(v)})
        for check in (*self.cross_checks, *extra_checks):
            problems += check(merged)
        if problems:
            raise self.error(problems, source)
        try:
            return config_from_flat(self.config_type, merged)
        except (TypeError, ValueError) as exc:  # a dataclass's own check that the tables do not state
            raise self.error([str(exc)], source) from None

    def validate(self, config: Any) -> None:
        """ParameterError when a config built in code (not from parameters) breaks this schema's rules."""
        values = config_values(config)
        problems = self.problems({k: v for k, v in values.items() if k in self.by_name})
        merged = self._merged({k: v for k, v in values.items() if k in self.by_name})
        for check in self.cross_checks:
            problems += check(merged)
        if problems:
            raise self.error(problems, type(config).__name__)

    def load_file(self, path: str | Path) -> dict[str, Any]:
        """Checked values (defaults filled in) of this node's section of a ROS 2 parameters YAML file."""
        return self.check(read_params_file(path, self.node_name), source=str(path))

    def build_file(self, path: str | Path, extra_checks: Iterable[CrossCheck] = ()) -> Any:
        """The config from this node's section of a ROS 2 parameters YAML file (the node's own checks)."""
        return self.build(read_params_file(path, self.node_name), source=str(path), extra_checks=extra_checks)


# --- config dataclass trees: attribute path = parameter name ---------------------------------------------
def _groups_and_leaves(config_type: type) -> Iterable[tuple[str, Any, bool]]:
    """(field name, default, is a nested config) of each field of a config dataclass, without instantiating it."""
    for f in dataclasses.fields(config_type):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{config_type.__name__}.{f.name} has no default: every parameter needs one")
        yield f.name, default, dataclasses.is_dataclass(default)


def config_defaults(config_type: type, prefix: str = "") -> dict[str, Any]:
    """``{attribute path: default}`` of every leaf field of a (nested) config dataclass."""
    out: dict[str, Any] = {}
    for name, default, nested in _groups_and_leaves(config_type):
        if nested:
            out.update(config_values(default, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = default
    return out


def config_values(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{attribute path: value}`` of every leaf field of a (nested) config dataclass instance."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_values(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def config_from_flat(config_type: type, values: dict[str, Any]) -> Any:
    """A `config_type` tree from ``{attribute path: value}``; paths not given keep the field's default.

    A list becomes a tuple where the field's default is a tuple. ValueError on a path that names no
    field; the dataclasses' own checks (``__post_init__``) raise as they do.
    """
    unknown = sorted(set(values) - set(config_defaults(config_type)))
    if unknown:
        raise ValueError(f"{config_type.__name__} has no field {', '.join(unknown)}")
    return _build(config_type, values, "")


def _build(config_type: type, values: dict[str, Any], prefix: str) -> Any:
    kwargs = {}
    for name, default, nested in _groups_and_leaves(config_type):
        path = f"{prefix}{name}"
        if nested:
            if any(k.startswith(path + ".") for k in values):
                kwargs[name] = _build(type(default), values, path + ".")
        elif path in values:
            value = values[path]
            kwargs[name] = tuple(value) if isinstance(default, tuple) else value
    return config_type(**kwargs)


def replace_values(config: Any, values: dict[str, Any]) -> Any:
    """A copy of `config` with ``{attribute path: value}`` changed (``{"orient.mode": "yaw"}``); checks rerun."""
    return config_from_flat(type(config), {**config_values(config), **values})


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


def section_applies(key: str, node_fqn: str) -> bool:
    """True when ROS applies a parameters-file section named `key` to the node `node_fqn` ("/ns/name").

    rcl's rule: a key without a leading "/" is absolute ("pose_classifier" is "/pose_classifier", the root
    namespace only); "/*" matches one name token and "/**" any number of them ("/**/pose_classifier": any
    namespace; "/**": every node)."""
    key = key if key.startswith("/") else "/" + key
    pattern = re.escape(key).replace(r"/\*\*", r"(?:/[^/]+)*").replace(r"/\*", r"/[^/]+")
    return re.fullmatch(pattern, node_fqn) is not None


def unapplied_sections(path: str | Path, node_name: str, node_fqn: str) -> list[str]:
    """Keys of the file's sections named for `node_name` (in any namespace) that ROS does not apply to
    `node_fqn`, when no section applies to it at all: the file then silently configures nothing.
    Unreadable files give [] (the offline check reports them)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    keys = [str(k) for k in doc] if isinstance(doc, dict) else []
    if any(section_applies(k, node_fqn) for k in keys):
        return []
    return [k for k in keys if k.lstrip("/").split("/")[-1] == node_name]


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
    "CrossCheck",
    "at_most",
    "Parameter",
    "ParameterDoc",
    "ParameterError",
    "ParameterSchema",
    "config_defaults",
    "config_from_flat",
    "config_values",
    "flatten",
    "node_sections",
    "params_files_from_args",
    "read_params_file",
    "replace_values",
    "section_applies",
    "unapplied_sections",
]
