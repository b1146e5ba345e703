"""Where the inputs run: a local process pool, or a SLURM job array through submitit. No scheduler of ours.

local: ``concurrent.futures.ProcessPoolExecutor`` (spawn) with N workers; each worker's initializer sets its
threads (cores // N) before torch loads and loads the model once. At most N inputs are in flight, so when a
worker dies (killed, out of memory) the pool breaks with only those inputs lost: they are recorded failed
("worker process died") and the rest go on in a fresh pool.

slurm: ``submitit.SlurmExecutor.map_array(run_chunk, chunks)``: one array task per chunk of inputs
(--chunk-size), logs in DIR/logs/ (submitit's %A_%a_0_log.out/.err). Submissions are recorded in
DIR/slurm_jobs.json, so a later run knows which inputs an unfinished job still holds (squeue) and, once a
job has ended, marks the inputs its tasks never finished (cancelled, timed out) as failed with the log path.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pose_classifier_ros.season.markers import (
    FAILED,
    SUCCESS,
    now_iso,
    read_marker,
    record_failure,
    write_json,
)
from pose_classifier_ros.season.runner import InputTask, init_worker, run_chunk, run_input

_logger = logging.getLogger(__name__)

SLURM_JOBS_FILE = "slurm_jobs.json"
LOGS_DIR = "logs"
Outcome = dict[str, Any]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """cores // workers, at least 1: N workers never oversubscribe the machine."""
    return max(1, (cores or available_cores()) // max(1, workers))


# ---------------------------------------------------------------------------------------------
# local
# ---------------------------------------------------------------------------------------------
@dataclass
class LocalEngine:
    """workers: processes; threads: torch threads each (default cores // workers); preload: the task whose
    model every worker loads at start-up (None: on the first input)."""

    workers: int = 1
    threads: int | None = None
    preload: InputTask | None = None

    def run(self, tasks: list[InputTask], on_outcome: Callable[[Outcome], None]) -> None:
        """Run every task; on_outcome gets each input's outcome (run_input's dict) as it finishes."""
        threads = self.threads or threads_per_worker(self.workers)
        pending = list(reversed(tasks))  # pop() takes them in manifest order
        context = _pool_context()
        while pending:
            _logger.info("starting %d worker(s), %d thread(s) each", min(self.workers, len(pending)), threads)
            with ProcessPoolExecutor(
                max_workers=min(self.workers, len(pending)),
                mp_context=context,
                initializer=init_worker,
                initargs=(threads, self.preload),
            ) as pool:
                self._drain(pool, pending, on_outcome)

    def _drain(self, pool: ProcessPoolExecutor, pending: list[InputTask], on_outcome) -> None:
        in_flight: dict[Any, InputTask] = {}
        while pending or in_flight:
            while pending and len(in_flight) < self.workers:
                task = pending.pop()
                in_flight[pool.submit(run_input, task)] = task
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                outcome, died = _outcome(future, in_flight.pop(future))
                broken |= died
                on_outcome(outcome)
            if broken:
                # A worker died: the pool stops all its workers, so every input in flight is lost with it
                # (at most `workers` of them); the rest go on in a fresh pool.
                wait(in_flight)
                for future, task in in_flight.items():
                    on_outcome(_outcome(future, task)[0])
                return


def _pool_context():
    """spawn: clean workers that import torch after their threads are set. A main script that runs main()
    without an ``if __name__ == "__main__"`` guard (an executable written by an older install) would run
    again in every spawned worker, so there the pool forks instead (the driver has run no torch op)."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(getattr(main, "__spec__", None), "name", None) is None and path:
        try:
            guarded = "__main__" in Path(path).read_text(errors="replace")
        except OSError:
            guarded = True
        if not guarded:
            _logger.info("%s has no __main__ guard: worker processes are forked", path)
            return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _outcome(future, task: InputTask) -> tuple[Outcome, bool]:
    """(the input's outcome, whether its worker died)."""
    try:
        return future.result(), False
    except BrokenProcessPool:
        return _failed(task, "worker process died (killed or out of memory) while this input ran", "WorkerDied"), True
    except Exception as exc:
        return _failed(task, f"worker error: {exc}", type(exc).__name__), False


def _failed(task: InputTask, error: str, error_type: str) -> Outcome:
    """Record a failure the worker could not (it is gone): DIR/<name>/_FAILED.json, unless the input was
    committed as done just before its worker died."""
    marker = read_marker(Path(task.out_dir) / task.name)
    if marker is not None and marker.matches(task.input_hash, task.config_hash) and marker.job == task.job:
        return {"name": task.name, **marker.to_dict()}
    record_failure(
        Path(task.out_dir),
        task.name,
        task.path,
        error,
        error_type=error_type,
        input_hash=task.input_hash,
        config_hash=task.config_hash,
        job=task.job,
    )
    return {"name": task.name, "status": "failed", "error": error, "error_type": error_type}


# ---------------------------------------------------------------------------------------------
# slurm
# ---------------------------------------------------------------------------------------------
@dataclass
class SlurmOptions:
    """sbatch settings. time_min: wall-time limit per array task, minutes; mem: sbatch --mem as given
    ("16G"); additional: extra sbatch flags {name: value} (--sbatch-arg); setup: shell lines before the
    task (module load ...); array_parallelism: tasks running at once (sbatch --array=...%N)."""

    partition: str | None = None
    time_min: int = 60
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    chunk_size: int = 1
    array_parallelism: int = 256
    job_name: str = "pose-season"
    setup: list[str] = field(default_factory=list)
    additional: dict[str, str] = field(default_factory=dict)


@dataclass
class Submission:
    """One submitted job array: job_id; chunks[k] = names run by array task k; submitted: epoch seconds."""

    job_id: str
    chunks: list[list[str]]
    submitted: float
    log_dir: str
    finalized: bool = False

    def names(self) -> list[str]:
        return [n for chunk in self.chunks for n in chunk]

    def task_of(self, name: str) -> str:
        k = next(i for i, chunk in enumerate(self.chunks) if name in chunk)
        return f"{self.job_id}_{k}" if len(self.chunks) > 1 else self.job_id

    def log_paths(self, name: str) -> str:
        task = self.task_of(name)
        return f"{self.log_dir}/{task}_0_log.out, {self.log_dir}/{task}_0_log.err"


def parse_time_minutes(value: str) -> int:
    """sbatch time formats -> whole minutes: "90", "1:30:00", "2-00:00:00", "2-12", "30:00" (MM:SS)."""
    text = str(value).strip()
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        hours, minutes, seconds = (parts + [0, 0, 0])[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts[:3]
    total = days * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    if total <= 0:
        raise ValueError(f"--time must be positive, got {value!r}")
    return total


def slurm_available() -> str | None:
    """None when sbatch/squeue/srun are on PATH, else why not."""
    missing = [c for c in ("sbatch", "squeue", "srun") if shutil.which(c) is None]
    return f"SLURM commands not found: {', '.join(missing)}" if missing else None


def active_tasks(job_ids: list[str]) -> dict[str, str] | None:
    """{array task id ("123_4", or "123"): state} of the jobs still in squeue; None when squeue fails."""
    if not job_ids:
        return {}
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _logger.warning("squeue failed: %s", exc)
        return None
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every job has ended and left squeue
            return {}
        _logger.warning("squeue failed: %s", proc.stderr.strip())
        return None
    out = {}
    for line in proc.stdout.splitlines():
        task, _, state = line.strip().partition("|")
        if task:
            out[task] = state
    return out


def job_states(job_id: str) -> dict[str, str]:
    """{task id: final state} from sacct, {} where accounting is off."""
    try:
        proc = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    return dict(line.split("|", 1) for line in proc.stdout.splitlines() if "|" in line)


class SlurmEngine:
    """Submits, follows and finalizes job arrays for one batch output folder."""

    def __init__(self, out_dir: Path, options: SlurmOptions):
        self.out_dir = Path(out_dir)
        self.options = options
        self.log_dir = self.out_dir / LOGS_DIR

    # -- the record of submissions ---------------------------------------------------------
    def submissions(self) -> list[Submission]:
        return load_submissions(self.out_dir)

    def _save(self, submissions: list[Submission]) -> None:
        write_json(self.out_dir / SLURM_JOBS_FILE, {"jobs": [s.__dict__ for s in submissions]})

    def in_flight(self) -> dict[str, str]:
        """{input name: "JOB_TASK STATE"} held by tasks of recorded submissions still in squeue."""
        subs = [s for s in self.submissions() if not s.finalized]
        active = active_tasks([s.job_id for s in subs]) or {}
        out = {}
        for s in subs:
            for k, chunk in enumerate(s.chunks):
                task = f"{s.job_id}_{k}" if len(s.chunks) > 1 else s.job_id
                if task in active:
                    out.update({name: f"{task} {active[task]}" for name in chunk})
        return out

    # -- submit / wait / finalize ---------------------------------------------------------
    def submit(self, tasks: list[InputTask]) -> Submission:
        """One array task per chunk of --chunk-size inputs; returns the recorded Submission."""
        import submitit

        opts = self.options
        self.log_dir.mkdir(parents=True, exist_ok=True)
        executor = submitit.SlurmExecutor(folder=str(self.log_dir), max_num_timeout=0)
        params: dict[str, Any] = dict(
            job_name=opts.job_name,
            time=int(opts.time_min),
            array_parallelism=int(opts.array_parallelism),
            additional_parameters=dict(opts.additional),
        )
        if opts.mem:
            params["additional_parameters"]["mem"] = opts.mem
        for key in ("partition", "gpus_per_task", "cpus_per_task"):
            if getattr(opts, key) is not None:
                params[key] = getattr(opts, key)
        if opts.setup:
            params["setup"] = list(opts.setup)
        executor.update_parameters(**params)
        size = max(1, int(opts.chunk_size))
        chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        jobs = executor.map_array(run_chunk, chunks)
        job_id = str(jobs[0].job_id).split("_")[0]
        submission = Submission(job_id, [[t.name for t in c] for c in chunks], time.time(), str(self.log_dir))
        self._save(self.submissions() + [submission])
        return submission

    def wait(self, submission: Submission, on_progress: Callable[[list[str]], None], poll_s: float = 5.0) -> None:
        """Until no task of the job is in squeue; on_progress(names finished since the last call)."""
        reported: set[str] = set()
        while True:
            active = active_tasks([submission.job_id])
            new = [n for n in submission.names() if n not in reported and self._finished_by(n, submission)]
            if new:
                reported.update(new)
                on_progress(new)
            if active is not None and not active:
                break
            time.sleep(poll_s)
        new = [n for n in submission.names() if n not in reported and self._finished_by(n, submission)]
        if new:
            on_progress(new)

    def _finished_by(self, name: str, submission: Submission) -> bool:
        """The input's marker was written by a task of this job."""
        marker = read_marker(self.out_dir / name)
        return marker is not None and (marker.job or "").split("_")[0] == submission.job_id

    def _newer_marker(self, name: str, submission: Submission) -> bool:
        """A marker written after the submission (by this job or a later run)."""
        folder = self.out_dir / name
        return any(
            (folder / f).is_file() and (folder / f).stat().st_mtime > submission.submitted for f in (SUCCESS, FAILED)
        )

    def finalize(self) -> list[str]:
        """For every recorded job that has left squeue: inputs its tasks never finished get a _FAILED.json naming
        the task, its state and its logs (unless a later run has finished them or still holds them). Returns
        the names marked."""
        subs = self.submissions()
        open_subs = [s for s in subs if not s.finalized]
        if not open_subs:
            return []
        active = active_tasks([s.job_id for s in open_subs])
        if active is None:
            return []
        held = {n for s in open_subs for k, c in enumerate(s.chunks) for n in c if _task_id(s, k) in active}
        marked = []
        for s in open_subs:
            if any(_task_id(s, k) in active for k in range(len(s.chunks))):
                continue
            states = job_states(s.job_id)
            for name in s.names():
                if name in held or self._finished_by(name, s) or self._newer_marker(name, s):
                    continue
                task = s.task_of(name)
                state = states.get(task) or "state unknown: no SLURM accounting"
                marker = read_marker(self.out_dir / name)
                record_failure(
                    self.out_dir,
                    name,
                    marker.path if marker else "",
                    f"SLURM task {task} ended without finishing this input ({state}); logs: {s.log_paths(name)}",
                    error_type="SlurmTaskEnded",
                    job=task,
                )
                marked.append(name)
            s.finalized = True
        self._save(subs)
        return marked


def _task_id(s: Submission, k: int) -> str:
    return f"{s.job_id}_{k}" if len(s.chunks) > 1 else s.job_id


def load_submissions(out_dir: Path) -> list[Submission]:
    path = Path(out_dir) / SLURM_JOBS_FILE
    if not path.is_file():
        return []
    try:
        return [Submission(**j) for j in json.loads(path.read_text()).get("jobs", [])]
    except (OSError, ValueError, TypeError) as exc:
        _logger.warning("ignoring unreadable %s: %s", path, exc)
        return []


__all__ = (
    "LocalEngine",
    "SlurmEngine",
    "SlurmOptions",
    "Submission",
    "active_tasks",
    "available_cores",
    "now_iso",
    "parse_time_minutes",
    "slurm_available",
    "threads_per_worker",
)
