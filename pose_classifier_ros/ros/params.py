"""ROS side of the parameter schema: declare parameters with descriptors, read them once, resolve paths.

The schemas themselves are rclpy-free (pose_classifier_ros.parameters, stream/node_config.py,
navigation/policy_config.py); this module only turns them into ParameterDescriptors and reads the values
back into the schema's config (``ParameterSchema.build``), as the offline tools read the YAML.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter as RosParameter

from pose_classifier_ros.parameters import Parameter, ParameterSchema, params_files_from_args, unapplied_sections
from pose_classifier_ros.stream.node_config import NodeConfig, config_from_values, node_schema


def descriptor(param: Parameter) -> ParameterDescriptor:
    """ParameterDescriptor of one schema entry: description, range, choices, read-only."""
    text = param.description
    if param.choices:
        text += f" One of: {', '.join(param.choices)}."
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.low is not None and isinstance(param.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    elif param.low is not None and isinstance(param.default, int) and not isinstance(param.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=1)]
    if param.choices:
        desc.additional_constraints = f"one of {', '.join(param.choices)}"
    if isinstance(param.default, list):
        desc.type = ParameterType.PARAMETER_STRING_ARRAY  # the only list type in the tables
    return desc


def declare_parameters(node, schema: ParameterSchema | None = None) -> None:
    """Declare every parameter of `schema` (default: the classifier node's) with its descriptor."""
    for p in (schema or node_schema()).parameters:
        if not isinstance(p.default, list):
            node.declare_parameter(p.name, p.default, descriptor(p))
            continue
        # rclpy infers no type from an empty list (and the YAML parser drops `key: []`), so a string-array
        # parameter is declared by type and given its typed default when nothing overrides it.
        node.declare_parameter(p.name, RosParameter.Type.STRING_ARRAY, descriptor(p))
        try:
            node.get_parameter(p.name)
        except ParameterUninitializedException:
            node.set_parameters([RosParameter(p.name, RosParameter.Type.STRING_ARRAY, list(p.default))])


def check_params_files(schema: ParameterSchema, argv: list[str] | None = None, node_fqn: str = "") -> list[str]:
    """Check the node's section of every ``--params-file`` on the command line with the offline tools' rules.

    rclpy silently ignores YAML keys that match no declared parameter; a misspelt key would then do
    nothing. Raises ParameterError naming the key and the file, exactly as replay does for that file.
    Returns warnings (for the node's logger) for files whose sections name this node but that ROS does not
    apply to `node_fqn` (e.g. "pose_classifier:" for /drone1/pose_classifier: root namespace only).
    """
    warnings = []
    for path in params_files_from_args(sys.argv if argv is None else argv):
        if Path(path).is_file():
            try:
                schema.load_file(path)
            except ValueError as exc:
                if "has no '" not in str(exc):  # a file holding only other nodes' sections is fine
                    raise
            keys = unapplied_sections(path, schema.node_name, node_fqn) if node_fqn else []
            if keys:
                warnings.append(
                    f"parameters file {path}: section {', '.join(repr(k) for k in keys)} does not apply to "
                    f"{node_fqn} (ROS reads a name without wildcards as a root-namespace node), so none of its "
                    f"values are set; name the section '/**/{schema.node_name}' (any namespace) or '{node_fqn}'"
                )
    return warnings


def parameter_values(node, schema: ParameterSchema) -> dict:
    """``{name: value}`` of every parameter of `schema`, read once from `node` (`.value`)."""
    return {p.name: node.get_parameter(p.name).value for p in schema.parameters}


def read_config(node) -> NodeConfig:
    """The classifier node's NodeConfig from its declared parameters; ParameterError on invalid values."""
    schema = node_schema()
    for warning in check_params_files(schema, node_fqn=node.get_fully_qualified_name()):
        node.get_logger().warning(warning)
    return config_from_values(parameter_values(node, schema), source=f"parameters of {node.get_fully_qualified_name()}")


def resolve_path(spec: str, base: str | os.PathLike | None = None) -> Path:
    """Absolute path of `spec`: absolute, relative to `base` (default: cwd), `~`/`$VAR`, or package://pkg/rel.

    Raises FileNotFoundError naming the package when a package:// package is not installed. Existence
    of the file itself is not checked here (the checkpoint loader reports it with this path).
    """
    spec = str(spec).strip()
    if spec.startswith("package://"):
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        package, _, rel = spec[len("package://") :].partition("/")
        try:
            share = get_package_share_directory(package)
        except (PackageNotFoundError, ValueError, LookupError):
            raise FileNotFoundError(
                f"{spec}: package {package!r} is not installed (not in AMENT_PREFIX_PATH="
                f"{os.environ.get('AMENT_PREFIX_PATH', '')})"
            ) from None
        return Path(os.path.normpath(Path(share) / rel))
    path = Path(os.path.expandvars(os.path.expanduser(spec)))
    if not path.is_absolute():
        path = Path(base) / path if base is not None else Path.cwd() / path
    return Path(os.path.normpath(path))  # symlinks kept: the log shows the path the user can recognise
