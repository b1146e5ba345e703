"""Done / failed markers with hashes, and the atomic commit of one input's output folder.

Every input's outputs are written into ``DIR/.partial/<name>@<host>@<pid>/`` and renamed to ``DIR/<name>/``
only when complete, with its marker inside:

  _SUCCESS.json  {"format", "status": "done", "name", "path", "input_hash", "config_hash", "summary": {...},
                  "worker", "job", "finished"}
  _FAILED.json   the same with "status": "failed", "error", "error_type", "traceback" (and no summary)

So a worker killed mid-input leaves only a .partial folder (cleared when the input runs again), never a
DIR/<name>/ that looks finished. An input is skipped when its _SUCCESS.json carries the input and config
hashes the current run computes.

input hash: per file (a directory is walked, sorted): relative path, size and the SHA-256 of its first and
last MiB (the whole file when under 2 MiB). No mtimes: copying a season to a cluster's file system keeps
its markers valid. Head + tail catch re-recorded or edited bags and videos (the MCAP summary and footer,
SQLite's change counter and MP4's moov atom live there) at a cost of 2 MiB read per file, whatever its size.
config hash: the effective replay options, the full SHA-256 of the checkpoint, --params YAML and backbone
weights, and MARKER_FORMAT (bumped when batch's outputs change meaning).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER_FORMAT = "pose_classifier_ros/batch-marker/v1"
SUCCESS, FAILED = "_SUCCESS.json", "_FAILED.json"
PARTIAL_DIR, TRASH_DIR = ".partial", ".trash"
HEAD_TAIL_BYTES = 1 << 20
_CHUNK = 1 << 20
_content_cache: dict[tuple[str, int, int], str] = {}


def _sha256_file(path: Path, head_tail: bool) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        if head_tail and size > 2 * HEAD_TAIL_BYTES:
            h.update(fh.read(HEAD_TAIL_BYTES))
            fh.seek(size - HEAD_TAIL_BYTES)
            h.update(fh.read(HEAD_TAIL_BYTES))
        else:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
    return h.hexdigest()


def input_hash(paths: Iterable[Path | None]) -> str:
    """ "sha256:<hex>" over the files of `paths` (files or directories; None entries are skipped): relative
    path, size, head+tail SHA-256 each. FileNotFoundError names a missing path."""
    h = hashlib.sha256()
    for root in paths:
        if root is None:
            continue
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"input {str(root)!r} does not exist")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        h.update(f"root:{root.name}:{len(files)}\n".encode())
        for f in files:
            rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
            h.update(f"{rel}:{f.stat().st_size}:{_sha256_file(f, head_tail=True)}\n".encode())
    return "sha256:" + h.hexdigest()


def content_hash(path: Path | None) -> str | None:
    """Full SHA-256 of a file (checkpoint, params YAML), cached per (path, size, mtime) in this process."""
    if path is None:
        return None
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _content_cache:
        _content_cache[key] = "sha256:" + _sha256_file(path, head_tail=False)
    return _content_cache[key]


def config_hash(options: Mapping[str, Any], files: Mapping[str, Path | None]) -> str:
    """ "sha256:<hex>" of the options (JSON, sorted; Paths as strings) and the content hashes of `files`
    ({option: path}: checkpoint, params, backbone_weights). FileNotFoundError for a missing file."""
    doc = {
        "format": MARKER_FORMAT,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(options.items()) if k not in files},
        "files": {k: content_hash(v) for k, v in sorted(files.items())},
    }
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Marker:
    """A marker file's content (see the module docstring)."""

    status: str  # "done" | "failed"
    name: str
    path: str
    input_hash: str | None = None
    config_hash: str | None = None
    summary: dict | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    worker: str | None = None
    job: str | None = None
    finished: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": MARKER_FORMAT, **self.__dict__}

    def matches(self, input_h: str | None, config_h: str | None) -> bool:
        return self.status == "done" and self.input_hash == input_h and self.config_hash == config_h


def read_marker(folder: Path) -> Marker | None:
    """The marker in DIR/<name>/ (_SUCCESS.json before _FAILED.json), None when there is none or it is
    unreadable (treated as not finished)."""
    for file in (SUCCESS, FAILED):
        path = Path(folder) / file
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                data.pop("format", None)
                return Marker(**data)
            except (OSError, ValueError, TypeError):
                return None
    return None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_json(path: Path, data: Any) -> Path:
    """Write JSON through a temporary file and a rename (no half-written file on a kill)."""
    from pose_classifier_ros.report import to_jsonable

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def new_partial(out_dir: Path, name: str) -> Path:
    """A fresh DIR/.partial/<name>@<host>@<pid>/ after removing this input's earlier partial folders (left by
    a killed worker; one input is never run by two workers at once)."""
    root = Path(out_dir) / PARTIAL_DIR
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"{name}@*"):
        if old.name.split("@")[0] == name:  # "@" is never in a name (manifest.safe folder names)
            shutil.rmtree(old, ignore_errors=True)
    partial = root / f"{name}@{socket.gethostname()}@{os.getpid()}"
    partial.mkdir()
    return partial


def commit(partial: Path, final: Path) -> Path:
    """Rename the finished `partial` folder to `final`, replacing an older one: the old folder is first renamed
    into DIR/.trash (so at every instant `final` is either the old complete folder, absent, or the new one)."""
    final = Path(final)
    if final.exists():
        trash = final.parent / TRASH_DIR
        trash.mkdir(exist_ok=True)
        old = trash / f"{final.name}.{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, final)
    return final


def record_failure(out_dir: Path, name: str, path: str, error: str, **fields: Any) -> Path:
    """Write DIR/<name>/_FAILED.json (through a partial folder and commit) for an input that failed outside a
    worker's own handling: a missing input, a dead worker, a cancelled SLURM task."""
    partial = new_partial(out_dir, name)
    marker = Marker(status="failed", name=name, path=str(path), error=error, finished=now_iso(), **fields)
    write_json(partial / FAILED, marker.to_dict())
    return commit(partial, Path(out_dir) / name)


__all__ = (
    "FAILED",
    "MARKER_FORMAT",
    "Marker",
    "PARTIAL_DIR",
    "SUCCESS",
    "commit",
    "config_hash",
    "content_hash",
    "input_hash",
    "new_partial",
    "now_iso",
    "read_marker",
    "record_failure",
    "worker_id",
)
