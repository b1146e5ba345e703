"""The season manifest: one row per input, CSV or YAML.

CSV: a header row, then one row per input (lines starting with ``#`` are comments)::

    path,tracks,site,session,date,species,ground_truth,image_topic,stride
    flights/2024-07-01/a,,OPC,am,2024-07-01,zebra,gt/a.csv,,
    flights/2024-07-01/b,,OPC,pm,2024-07-01,giraffe,,/camera/image_raw/compressed,
    videos/DJI_0068.MP4,videos/DJI_0068.xml,Mpala,am,2024-07-02,zebra,,,2

YAML: a list of mappings, or a mapping with ``inputs:`` (that list) and optional ``defaults:`` (values
every row gets unless it sets them)::

    defaults: {site: OPC}
    inputs:
      - {path: flights/a, species: zebra, ground_truth: gt/a.csv}

Columns:
  path               the input: a rosbag2 directory or .mcap / .db3 file, or a video file; required
  name               the output folder DIR/<name>/ (default: from the path, made unique with parent folders)
  tracks, tracks_format
                     a video's track file (CVAT for video 1.1 XML, MOT, detections CSV) and its format (cvat,
                     mot, csv; empty: from the file name); a video row without tracks fails
  <replay option>    a `replay` option's name (ground_truth or ground-truth, image_topic, params, schedule,
                     ...): overrides the command line for this input; empty = the command line's value
  anything else      metadata (site, session, date, species, altitude, ...) the season report groups by

Relative paths (path, tracks and path-valued options) are relative to the manifest's folder.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.visualization.best_views import safe_dir_name

_logger = logging.getLogger(__name__)

INPUT_COLUMNS = ("path", "name", "tracks", "tracks_format")
_INPUT_SUFFIXES = (".mcap", ".db3", ".mp4", ".mov", ".avi", ".mkv")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (unreadable, no path column, no rows)."""


@dataclass
class InputSpec:
    """One manifest row. path: the input, absolute; name: its output folder DIR/<name>/ (unique in the
    manifest); options: replay option overrides {dest: typed value}; metadata: the other columns (str);
    tracks / tracks_format: a video's track file and format (None for a bag); row: 1-based data row;
    error: what is wrong with this row (a bad override value), None when it is usable."""

    name: str
    path: Path
    row: int
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tracks: Path | None = None
    tracks_format: str | None = None
    error: str | None = None


@dataclass
class Manifest:
    """The rows in manifest order; metadata_columns: the metadata column names in first-seen order."""

    path: Path
    inputs: list[InputSpec]
    metadata_columns: list[str]


def _raw_rows(path: Path) -> list[dict[str, Any]]:
    """{column: value} per data row, YAML defaults applied; ManifestError when unreadable."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from None
        defaults: Mapping[str, Any] = {}
        if isinstance(data, Mapping):
            defaults = data.get("defaults") or {}
            data = data.get("inputs")
        if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
            raise ManifestError(f"{path}: expected a list of rows (mappings), or a mapping with 'inputs:'")
        if not isinstance(defaults, Mapping):
            raise ManifestError(f"{path}: 'defaults:' must be a mapping")
        return [{**defaults, **row} for row in data]
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _resolve(value: Any, base: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def option_actions(parser: argparse.ArgumentParser, names: Iterable[str]) -> dict[str, argparse.Action]:
    """The parser's actions of the option dests a manifest may override, by dest."""
    wanted = set(names)
    return {a.dest: a for a in parser._actions if a.dest in wanted and a.option_strings}


def _convert(action: argparse.Action, value: Any, base: Path) -> Any:
    """A manifest cell -> the option's typed value (ValueError says why not)."""
    if action.nargs == 0:  # store_true / store_false
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in _TRUE | _FALSE:
            flag = value if isinstance(value, bool) else text in _TRUE
            return flag if action.const is True else not flag
        raise ValueError(f"expected true or false, got {value!r}")
    if action.type is Path:
        return _resolve(value, base)
    converted = action.type(value) if callable(action.type) else str(value)
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return converted


def _default_names(paths: list[Path]) -> list[str]:
    """Folder names from the paths: the last component (input suffixes dropped), then as many parent folders
    as it takes to tell them apart ("a/flight", "b/flight" -> "a_flight", "b_flight")."""

    def parts(p: Path) -> list[str]:
        ps = list(p.parts)
        if ps and Path(ps[-1]).suffix.lower() in _INPUT_SUFFIXES:
            ps[-1] = Path(ps[-1]).stem
        return [x for x in ps if x not in ("/", "")] or ["input"]

    split = [parts(p) for p in paths]
    depth = [1] * len(paths)
    for _ in range(max((len(s) for s in split), default=1)):
        names = ["_".join(s[-d:]) for s, d in zip(split, depth)]
        paths_of: dict[str, set] = {}
        for name, p in zip(names, paths):
            paths_of.setdefault(name, set()).add(p)
        clashes = {n for n, ps in paths_of.items() if len(ps) > 1}  # the same path twice: _unique's suffix
        if not clashes:
            break
        depth = [d + 1 if n in clashes and d < len(s) else d for s, d, n in zip(split, depth, names)]
    return ["_".join(s[-d:]) for s, d in zip(split, depth)]


def _unique(names: list[str]) -> list[str]:
    """safe folder names, a -2, -3 suffix on repeats (the same input listed twice, clashing name cells)."""
    out, used = [], set()
    for name in names:
        base = safe_dir_name(name)
        candidate, k = base, 1
        while candidate in used or candidate in ("season", "logs") or candidate.startswith("."):
            k += 1
            candidate = f"{base}-{k}"
        if candidate != base:
            _logger.warning("input name %r is taken; using %r", base, candidate)
        used.add(candidate)
        out.append(candidate)
    return out


def read_manifest(path: str | Path, actions: Mapping[str, argparse.Action] | None = None) -> Manifest:
    """Read a CSV or YAML manifest. actions: option dest -> argparse action of the replay options a row may
    override (option_actions); a column matches by dest ("ground_truth") or option name ("ground-truth").
    A bad override value marks that row (InputSpec.error); a missing path column is a ManifestError."""
    path = Path(path)
    base = Path(os.path.abspath(path)).parent
    actions = dict(actions or {})
    rows = _raw_rows(path)
    if not rows:
        raise ManifestError(f"{path}: no inputs listed")
    if not all("path" in r for r in rows):
        raise ManifestError(f"{path}: every row needs a 'path' column (columns: {', '.join(rows[0])})")
    specs: list[InputSpec] = []
    metadata_columns: list[str] = []
    for index, raw in enumerate(rows, start=1):
        spec = InputSpec(name="", path=_resolve(raw["path"], base) if str(raw["path"]).strip() else Path(""), row=index)
        errors = [] if str(raw["path"]).strip() else ["empty path"]
        for column, value in raw.items():
            key = str(column).strip().replace("-", "_")
            if key in INPUT_COLUMNS or value is None or str(value).strip() == "":
                continue
            if key in actions:
                try:
                    spec.options[key] = _convert(actions[key], value, base)
                except (ValueError, TypeError) as exc:
                    errors.append(f"column {column!r}: {exc}")
            else:
                spec.metadata[str(column).strip()] = str(value).strip()
                if str(column).strip() not in metadata_columns:
                    metadata_columns.append(str(column).strip())
        if str(raw.get("tracks") or "").strip():
            spec.tracks = _resolve(raw["tracks"], base)
            spec.tracks_format = str(raw.get("tracks_format") or "").strip() or None
        spec.error = "; ".join(errors) or None
        spec.name = str(raw.get("name") or "").strip()
        specs.append(spec)
    derived = _default_names([s.path for s in specs])
    for spec, name in zip(specs, _unique([s.name or d for s, d in zip(specs, derived)])):
        spec.name = name
    return Manifest(path=path, inputs=specs, metadata_columns=metadata_columns)


__all__ = ("INPUT_COLUMNS", "InputSpec", "Manifest", "ManifestError", "option_actions", "read_manifest")
