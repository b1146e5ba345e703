"""Per-sample metadata (species, site, session, ...) and the groups evaluation reports on.

Metadata comes from, in increasing priority:
  extra CSV columns        image_path,pose,species,site  (``data.Sample.meta``)
  a metadata CSV           ``--metadata FILE.csv`` with an ``image_path`` (or ``file``) column joined
                           by the path relative to the data root, else by file name; for folder data sets
  path components          ``--group-from-path site=1``: component 1 (0-based) of the image path relative
                           to the data root (the folder, or the CSV's folder); negative counts from the
                           end (-1 = file name, -2 = its folder)
A factor is one column ("species") or a combination ("species+site"); its groups are the column's
values, "(missing)" for samples without one. Every factor's groups partition the whole set.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MISSING = "(missing)"
METADATA_KEY_COLUMNS = ("image_path", "file", "filename", "file_name")


class GroupError(ValueError):
    """Group options that cannot be applied (unknown column, bad path spec, bad metadata CSV)."""


def parse_columns(spec: str | Sequence[str] | None) -> list[str]:
    """ "species,site" (or a list of such strings) -> ["species", "site"] (blank entries dropped)."""
    if spec is None:
        return []
    parts = [spec] if isinstance(spec, str) else list(spec)
    return [c.strip() for part in parts for c in str(part).split(",") if c.strip()]


def parse_path_fields(spec: str | Sequence[str] | None) -> dict[str, int]:
    """ "site=1,session=2" -> {"site": 1, "session": 2}."""
    out: dict[str, int] = {}
    for item in parse_columns(spec):
        name, sep, index = item.partition("=")
        try:
            out[name.strip()] = int(index)
        except ValueError:
            raise GroupError(f"--group-from-path expects NAME=INDEX (e.g. site=1), got {item!r}") from None
        if not sep or not name.strip():
            raise GroupError(f"--group-from-path expects NAME=INDEX (e.g. site=1), got {item!r}")
    return out


def data_root(source: str | os.PathLike) -> Path:
    """The folder image paths are relative to: the data folder itself, or a CSV's folder."""
    src = Path(source).expanduser()
    return src if src.is_dir() else src.parent


def _relative(path: Path, root: Path) -> Path:
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return path


def read_metadata_csv(path: str | os.PathLike) -> tuple[str, list[dict[str, str]]]:
    """(key column, rows) of a metadata CSV; the key column is the first of METADATA_KEY_COLUMNS present."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except OSError as exc:
        raise GroupError(f"cannot read metadata CSV {path}: {exc}") from None
    key = next((c for c in METADATA_KEY_COLUMNS if c in columns), None)
    if key is None:
        raise GroupError(
            f"{path}: a metadata CSV needs one of the columns {', '.join(METADATA_KEY_COLUMNS)}; "
            f"got {','.join(columns) or '(empty file)'}"
        )
    return key, rows


def sample_metadata(
    samples: Sequence,
    root: str | os.PathLike | None = None,
    metadata_csv: str | os.PathLike | None = None,
    path_fields: Mapping[str, int] | None = None,
) -> list[dict[str, str]]:
    """One {column: value} dict per sample (``Sample.meta`` + metadata CSV + path components)."""
    root_path = Path(root) if root is not None else None
    rel = [_relative(Path(s.path), root_path) if root_path else Path(s.path) for s in samples]
    out = [dict(getattr(s, "meta", ()) or ()) for s in samples]
    if metadata_csv is not None:
        key, rows = read_metadata_csv(metadata_csv)
        by_path = {Path(r[key]).as_posix(): r for r in rows if r.get(key)}
        by_name: dict[str, dict[str, str] | None] = {}
        for r in rows:
            name = Path(r.get(key, "")).name
            by_name[name] = None if name in by_name else r  # None: ambiguous file name
        unmatched = 0
        for meta, p in zip(out, rel):
            row = by_path.get(p.as_posix()) or by_name.get(p.name)
            if row is None:
                unmatched += 1
                continue
            meta.update({k: v for k, v in row.items() if k != key})
        if unmatched:
            logger.warning(
                "%s: no metadata row for %d of %d images (their groups read %s)",
                metadata_csv,
                unmatched,
                len(out),
                MISSING,
            )
    for name, index in (path_fields or {}).items():
        for meta, p in zip(out, rel):
            parts = p.parts
            if not -len(parts) <= index < len(parts):
                raise GroupError(f"--group-from-path {name}={index}: {p} has only {len(parts)} components")
            meta[name] = parts[index]
    return out


def group_indices(metadata: Sequence[Mapping[str, str]], factors: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """{factor: {group value: (k,) int64 sample indices}} for factors like "species" or "species+site".

    Groups are sorted by value ("(missing)" last); a combined factor's value is "giraffe/OPC".
    Raises GroupError for a column no sample has.
    """
    known = {k for m in metadata for k in m}
    out: dict[str, dict[str, np.ndarray]] = {}
    for factor in factors:
        columns = [c for c in factor.split("+") if c]
        absent = [c for c in columns if c not in known]
        if absent:
            raise GroupError(
                f"no metadata column {', '.join(map(repr, absent))}; available: "
                f"{', '.join(sorted(known)) or 'none (add CSV columns, --metadata or --group-from-path)'}"
            )
        values = ["/".join(m.get(c) or MISSING for c in columns) for m in metadata]
        groups: dict[str, list[int]] = {}
        for i, v in enumerate(values):
            groups.setdefault(v, []).append(i)
        order = sorted(groups, key=lambda v: (MISSING in v, v))
        out[factor] = {v: np.asarray(groups[v], dtype=np.int64) for v in order}
    return out


def default_factors(columns: Sequence[str]) -> list[str]:
    """The columns one by one, plus their combination when there are two or more."""
    columns = list(dict.fromkeys(columns))
    return columns + (["+".join(columns)] if len(columns) > 1 else [])


__all__ = [
    "GroupError",
    "MISSING",
    "parse_columns",
    "parse_path_fields",
    "data_root",
    "read_metadata_csv",
    "sample_metadata",
    "group_indices",
    "default_factors",
]
