"""One input in a worker process: the replay path (replay.replay_run.run_replay) into a partial folder, then
its marker and the atomic commit to DIR/<name>/ (season.markers).

The classifier is loaded once per worker and reused by every input with the same model settings
(replay_run.classifier_key); the pipeline and voting state are built fresh per input by run_replay.
Torch threads are set before torch is imported (configure_threads): this module imports no torch itself, so
a worker's first import decides OMP's thread pool.

Per input (a bag, or a video with its track file), DIR/<name>/ holds what `replay --report-dir DIR/<name>
--best-views DIR/<name>/best_views` writes (metrics.json, report.txt, figures, contact_sheet.png,
detections.csv and .parquet: one row per published detection, best_views/), plus replay.log (this input's
log lines) and _SUCCESS.json; with --write-bags also the output bag replayed/.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.season.markers import (
    FAILED,
    SUCCESS,
    Marker,
    commit,
    new_partial,
    now_iso,
    worker_id,
    write_json,
)

_logger = logging.getLogger(__name__)

LOG_FILE = "replay.log"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class InputTask:
    """What a worker needs for one input (plain values: it is pickled to pool workers and SLURM tasks).
    options: ReplayOptions keyword arguments except the input and the output paths; write_bag: also write the
    output bag DIR/<name>/replayed; job: the engine's id for this run (SLURM array task, local pid); tracks /
    tracks_format: a video's track file (None for a bag)."""

    name: str
    path: str
    out_dir: str
    options: dict[str, Any]
    input_hash: str
    config_hash: str
    metadata: dict[str, str] = field(default_factory=dict)
    write_bag: bool = False
    job: str | None = None
    tracks: str | None = None
    tracks_format: str | None = None


@dataclass
class _Worker:
    threads: int | None = None
    classifier: Any = None
    key: tuple | None = None
    pending_load_s: float = 0.0  # a load done before the first input (pool initializer), charged to it
    loads: int = 0


_WORKER = _Worker()


def configure_threads(threads: int | None) -> None:
    """Set this process's compute threads: the OpenMP/MKL variables (read when torch is first imported) and
    torch's intra-op pool when torch is already loaded. None leaves everything as it is."""
    if not threads:
        return
    _WORKER.threads = int(threads)
    for var in THREAD_VARIABLES:
        os.environ[var] = str(int(threads))
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def _replay_options(task: InputTask, **outputs):
    """ReplayOptions of the task's input (outputs: report_dir, best_views, out, ... where it writes)."""
    from pose_classifier_ros.replay.replay_run import ReplayOptions

    return ReplayOptions(
        input=Path(task.path),
        tracks=Path(task.tracks) if task.tracks else None,
        tracks_format=task.tracks_format,
        name=task.name,
        **outputs,
        **task.options,
    )


def init_worker(threads: int | None, preload: InputTask | None = None) -> None:
    """Pool initializer: threads first, then (optionally) the classifier for `preload`'s options, so the model
    load is paid once at worker start-up (backend auto, when it has no cached choice, measures on that input's
    first crops)."""
    _worker_logging()
    configure_threads(threads)
    if preload is not None:
        try:
            _WORKER.pending_load_s += _ensure_classifier(_replay_options(preload))
        except Exception as exc:
            _logger.warning("could not preload the model: %s", exc)


def _worker_logging() -> None:
    """Warnings to stderr, every INFO line into the current input's replay.log (run_input); drops handlers a
    forked worker inherited from the driver (its batch.log is the driver's alone)."""
    logging.getLogger("pose_classifier_ros").handlers.clear()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)


def _ensure_classifier(options) -> float:
    """Load the classifier unless the worker holds one for the same settings; returns seconds spent."""
    from pose_classifier_ros.replay.replay_run import classifier_key, load_classifier, load_settings

    settings = load_settings(options)
    key = classifier_key(options, settings)
    if _WORKER.classifier is not None and _WORKER.key == key:
        return 0.0
    started = time.perf_counter()
    _WORKER.classifier = None  # free the old model first
    _WORKER.classifier = load_classifier(options, settings, num_threads=_WORKER.threads)
    _WORKER.key = key
    _WORKER.loads += 1
    seconds = time.perf_counter() - started
    _logger.info("model loaded in %.2f s (%s)", seconds, options.checkpoint)
    return seconds


def _relocate(partial: Path, final: Path) -> None:
    """metrics.json / report.txt name the output bag by its path while it was written (in the partial
    folder): point them at its final place."""
    for file in ("metrics.json", "report.txt"):
        path = partial / file
        if path.is_file():
            path.write_text(path.read_text().replace(str(partial), str(final)))


def run_input(task: InputTask) -> dict[str, Any]:
    """Run one input and commit DIR/<name>/ with _SUCCESS.json or _FAILED.json; never raises for a bad input.
    Returns {"name", "status": "done" | "failed", "summary" | "error", "worker"}."""
    from pose_classifier_ros.replay.replay_run import run_replay

    out_dir = Path(task.out_dir)
    final = out_dir / task.name
    partial = new_partial(out_dir, task.name)
    handler = logging.FileHandler(partial / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    marker = Marker(
        status="failed",
        name=task.name,
        path=task.path,
        input_hash=task.input_hash,
        config_hash=task.config_hash,
        worker=worker_id(),
        job=task.job,
    )
    started = time.perf_counter()
    try:
        _logger.info("input %s: %s", task.name, task.path)
        options = _replay_options(
            task,
            report_dir=partial,
            best_views=partial / "best_views",
            out=partial / "replayed" if task.write_bag else None,
            no_out=not task.write_bag,
            no_progress=True,
        )
        load_s, _WORKER.pending_load_s = _WORKER.pending_load_s, 0.0
        load_s += _ensure_classifier(options)
        summary = run_replay(options, classifier=_WORKER.classifier)
        summary.load_seconds = load_s
        _relocate(partial, final)
        marker.status = "done"
        marker.summary = dict(summary.to_dict(), wall_seconds=time.perf_counter() - started, threads=_WORKER.threads)
        marker.summary = {k: _rel(v, partial) for k, v in marker.summary.items()}
    except Exception as exc:
        _logger.error("input %s failed: %s", task.name, exc)
        marker.status = "failed"
        marker.error = str(exc) or type(exc).__name__
        marker.error_type = type(exc).__name__
        marker.traceback = traceback.format_exc(limit=20)
    finally:
        root.removeHandler(handler)
        handler.close()
    marker.finished = now_iso()
    write_json(partial / (SUCCESS if marker.status == "done" else FAILED), marker.to_dict())
    commit(partial, final)
    return {"name": task.name, **marker.to_dict()}


def _rel(value: Any, partial: Path) -> Any:
    """Paths inside the partial folder -> relative to DIR/<name>/ (where they are after the commit)."""
    if isinstance(value, str) and value.startswith(str(partial)):
        return os.path.relpath(value, partial)
    if isinstance(value, list):
        return [_rel(v, partial) for v in value]
    return value


def slurm_threads() -> int | None:
    """CPUs SLURM gave this task (SLURM_CPUS_PER_TASK), else the CPUs this process may run on."""
    value = os.environ.get("SLURM_CPUS_PER_TASK")
    if value and value.isdigit():
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()


def run_chunk(tasks: list[InputTask]) -> list[dict[str, Any]]:
    """A SLURM array task: its inputs one after the other with one model (threads from SLURM first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_threads(slurm_threads())
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    outcomes = []
    for task in tasks:
        task.job = job or task.job
        outcomes.append(run_input(task))
        _logger.info("input %s: %s", task.name, outcomes[-1]["status"])
    return outcomes


__all__ = (
    "InputTask",
    "LOG_FILE",
    "configure_threads",
    "init_worker",
    "run_chunk",
    "run_input",
    "slurm_threads",
)
