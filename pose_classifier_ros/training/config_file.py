"""``-c/--config FILE.yaml`` for the training CLIs: a YAML mapping of option defaults that explicit flags
still override (timm style). ``pose-classifier train`` and ``evaluate`` both take it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def add_config_option(parser: argparse.ArgumentParser, help: str = "YAML file of option defaults") -> None:
    """Add ``-c/--config FILE.yaml`` to `parser`; at parse time the file's keys become the parser's defaults.

    Call it before or after the other options: the file is read when the command line is parsed.
    """
    parser.add_argument("-c", "--config", default=None, metavar="FILE.yaml", help=help)
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("-c", "--config", default=None)
        known, _ = pre.parse_known_args(args)
        if known.config:
            parser.set_defaults(**load_config_defaults(parser, known.config))
        return original(args, namespace)

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def load_config_defaults(parser: argparse.ArgumentParser, path: str | os.PathLike) -> dict[str, Any]:
    """Keys of a YAML mapping (option names with '-' or '_') as parser defaults; unknown keys are an error."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        parser.error(f"cannot read config {path}: {exc}")
    if not isinstance(data, dict):
        parser.error(f"config {path} must be a YAML mapping of option: value")
    dests = {a.dest for a in parser._actions}
    out, unknown = {}, []
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest in dests:
            out[dest] = value
        else:
            unknown.append(str(key))
    if unknown:
        parser.error(f"config {path}: unknown option(s) {', '.join(unknown)}")
    return out


__all__ = ["add_config_option", "load_config_defaults"]
