"""`pose-classifier batch MANIFEST --out DIR`: every input of a manifest through the replay path, on a local
process pool or a SLURM job array, resumable, merged into one season report (DIR/season/).

    pose-classifier batch season.csv --out season_out --checkpoint model.pth --workers 2
    pose-classifier batch season.csv --out /fs/scratch/season --checkpoint model.pth --engine slurm \\
        --partition gpu --gpus-per-task 1 --cpus-per-task 4 --time 2:00:00 --chunk-size 4 --wait

Rerunning the same command skips finished inputs (hashes match), retries failed ones and merges; --force
reruns everything; --merge-only only merges. Exit status 0 when every input is done, 1 otherwise (the failed
ones are listed), 2 for a bad command line or manifest. See docs/season.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pose_classifier_ros.replay.cli import add_processing_arguments
from pose_classifier_ros.season.manifest import ManifestError, option_actions, read_manifest

_logger = logging.getLogger(__name__)

LOG_FILE = "batch.log"


def _processing_dests() -> list[str]:
    parser = argparse.ArgumentParser(add_help=False)
    add_processing_arguments(parser)
    return [a.dest for a in parser._actions if a.option_strings]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="CSV or YAML: a 'path' column, metadata, per-input options")
    parser.add_argument("--out", type=Path, required=True, help="output folder: DIR/<input>/, DIR/season/")
    group = parser.add_argument_group("replay options (for every input; manifest columns of the same name override)")
    add_processing_arguments(group)
    run = parser.add_argument_group("the run")
    run.add_argument("--engine", choices=("local", "slurm"), default="local", help="where inputs run")
    run.add_argument("--force", action="store_true", help="rerun finished inputs too")
    run.add_argument("--merge-only", action="store_true", help="run nothing: merge what is finished")
    run.add_argument(
        "--write-bags", action="store_true", help="also write each input's output bag DIR/<input>/replayed"
    )
    run.add_argument(
        "--group-by",
        default=None,
        help="metadata columns the season metrics group by, comma-separated (default: every metadata column)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar (batch.log is always written)")
    local = parser.add_argument_group("--engine local")
    local.add_argument("--workers", type=int, default=1, help="worker processes (each loads the model once)")
    local.add_argument(
        "--threads-per-worker", type=int, default=None, help="torch threads per worker (default: cores // workers)"
    )
    slurm = parser.add_argument_group("--engine slurm (a job array through submitit; logs in DIR/logs/)")
    slurm.add_argument("--chunk-size", type=int, default=1, help="inputs per array task (one model load each)")
    slurm.add_argument("--partition", default=None, help="sbatch --partition")
    slurm.add_argument("--time", default="1:00:00", help="wall-time limit per array task (sbatch formats)")
    slurm.add_argument("--gpus-per-task", type=int, default=None, help="sbatch --gpus-per-task (implies --device cuda)")
    slurm.add_argument("--cpus-per-task", type=int, default=None, help="sbatch --cpus-per-task (= torch threads)")
    slurm.add_argument("--mem", default=None, help="sbatch --mem per task, e.g. 16G")
    slurm.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch flag, repeatable (account=abc123, qos=debug, constraint=v100)",
    )
    slurm.add_argument(
        "--slurm-setup",
        action="append",
        default=[],
        metavar="CMD",
        help="a shell line before each task, repeatable ('module load cuda')",
    )
    slurm.add_argument("--array-parallelism", type=int, default=256, help="array tasks running at once")
    slurm.add_argument("--job-name", default="pose-season", help="sbatch --job-name")
    slurm.add_argument("--wait", action="store_true", help="wait for the job array, then merge")
    slurm.add_argument("--poll-seconds", type=float, default=10.0, help="--wait: squeue polling period")


class _Progress:
    """One overall bar (inputs done, crops/s, ETA) on a terminal; a plain line per input in batch.log."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.started = time.monotonic()
        self.crops = 0
        self.failed: list[str] = []
        self.bar = tqdm(total=total, desc="season", unit="input", disable=not enabled, dynamic_ncols=True)

    def outcome(self, outcome: dict[str, Any]) -> None:
        name = outcome["name"]
        if outcome.get("status") == "done":
            s = outcome.get("summary") or {}
            self.crops += int(s.get("crops") or 0)
            acc = s.get("accuracy")
            _logger.info(
                "done %s: %s frames, %s crops in %.1f s (%.1f crops/s)%s",
                name,
                s.get("frames"),
                s.get("crops"),
                float(s.get("seconds") or 0.0),
                float(s.get("crops_per_second") or 0.0),
                f", accuracy {acc:.3f}" if acc is not None else "",
            )
        else:
            self.failed.append(name)
            _logger.warning("failed %s: %s", name, outcome.get("error"))
        rate = self.crops / max(time.monotonic() - self.started, 1e-6)
        self.bar.set_postfix(crops_per_s=f"{rate:.1f}", failed=len(self.failed), refresh=False)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


def _log_to_file(out_dir: Path) -> logging.Handler:
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("pose_classifier_ros")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _parse_sbatch_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--sbatch-arg expects KEY=VALUE (e.g. account=abc123), got {item!r}")
        out[key.strip().lstrip("-")] = value.strip()
    return out


def _check_command_line(args: argparse.Namespace, base: dict[str, Any]) -> None:
    """What every input would fail on is an error once, up front (ValueError / FileNotFoundError)."""
    from pose_classifier_ros.replay.replay_run import ReplayOptions, load_settings

    if not args.merge_only and not args.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {str(args.checkpoint)!r} does not exist")
    if args.params is not None:
        load_settings(ReplayOptions(input=Path("."), **base))
    if args.workers < 1 or args.chunk_size < 1:
        raise ValueError("--workers and --chunk-size must be >= 1")


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.season.engines import parse_time_minutes

    args.out = Path(os.path.abspath(args.out))  # SLURM tasks and markers see the same absolute paths
    handler = _log_to_file(args.out)
    try:
        dests = _processing_dests()
        base = {d: getattr(args, d) for d in dests}
        if args.gpus_per_task and args.device is None and args.engine == "slurm":
            base["device"] = "cuda"
            _logger.info("--gpus-per-task given: --device cuda")
        parser = argparse.ArgumentParser(add_help=False)
        add_processing_arguments(parser)
        manifest = read_manifest(args.manifest, option_actions(parser, dests))
        _check_command_line(args, base)
        additional = _parse_sbatch_args(args.sbatch_arg)
        time_min = parse_time_minutes(args.time)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        _logger.error("%s", exc)
        logging.getLogger("pose_classifier_ros").removeHandler(handler)
        return 2
    try:
        return _run(args, manifest, base, additional, time_min)
    finally:
        logging.getLogger("pose_classifier_ros").removeHandler(handler)
        handler.close()


def _run(args, manifest, base: dict[str, Any], additional: dict[str, str], time_min: int) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from pose_classifier_ros.season.engines import SlurmEngine, SlurmOptions, slurm_available
    from pose_classifier_ros.season.plan import plan_inputs

    started = time.monotonic()
    out = args.out
    slurm_opts = SlurmOptions(
        partition=args.partition,
        time_min=time_min,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        chunk_size=args.chunk_size,
        array_parallelism=args.array_parallelism,
        job_name=args.job_name,
        setup=list(args.slurm_setup),
        additional=additional,
    )
    slurm = SlurmEngine(out, slurm_opts)
    in_flight: dict[str, str] = {}
    if slurm.submissions():  # an earlier --engine slurm run: what is still queued, what ended unfinished
        if slurm_available() is None:
            for name in slurm.finalize():
                _logger.warning("failed %s: its SLURM task ended without finishing it", name)
            in_flight = slurm.in_flight()
        else:
            _logger.warning("%s has SLURM submissions but SLURM is not reachable here", out)
    if args.engine == "slurm" and not args.merge_only and slurm_available() is not None:
        _logger.error("--engine slurm: %s (run on a cluster login node)", slurm_available())
        return 2
    job = f"local:{os.getpid()}" if args.engine == "local" else None
    _logger.info(
        "batch of %d input(s) from %s into %s (engine %s)", len(manifest.inputs), args.manifest, out, args.engine
    )
    planned = plan_inputs(
        manifest.inputs,
        base,
        out,
        force=args.force,
        write_bag=args.write_bags,
        in_flight=in_flight,
        job=job,
        record=not args.merge_only,
    )
    for p in planned:
        _logger.info(
            "%s %s: %s",
            {"run": "run", "skip": "skipped", "failed": "failed", "in_flight": "running"}[p.action],
            p.spec.name,
            p.reason,
        )
    hashes = {p.spec.name: (p.task.input_hash, p.task.config_hash) for p in planned if p.task is not None}
    tasks = [p.task for p in planned if p.action == "run"]
    queued = 0
    if tasks and not args.merge_only:
        progress = _Progress(len(tasks), enabled=not args.no_progress and sys.stderr.isatty())
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            if args.engine == "local":
                queued = _run_local(args, tasks, progress)
            else:
                queued = _run_slurm(args, slurm, tasks, progress)
        progress.close()
        if args.engine == "slurm" and args.wait:
            for name in slurm.finalize():
                _logger.warning("failed %s: its SLURM task ended without finishing it", name)
        in_flight = slurm.in_flight() if args.engine == "slurm" and not args.wait else in_flight
    return _merge(args, manifest, hashes, in_flight, time.monotonic() - started, queued)


def _run_local(args, tasks, progress: _Progress) -> int:
    from pose_classifier_ros.season.engines import LocalEngine, threads_per_worker

    workers = min(args.workers, len(tasks))
    threads = args.threads_per_worker or threads_per_worker(args.workers)
    _logger.info("local pool: %d worker(s) x %d thread(s)", workers, threads)
    engine = LocalEngine(workers=workers, threads=threads, preload=tasks[0])
    engine.run(tasks, progress.outcome)
    return 0


def _run_slurm(args, slurm, tasks, progress: _Progress) -> int:
    submission = slurm.submit(tasks)
    job = submission.job_id
    lines = [
        f"submitted SLURM job array {job}: {len(submission.chunks)} task(s) for {len(tasks)} input(s)",
        f"  follow: squeue -j {job}    afterwards: sacct -j {job}",
        f"  logs:   {slurm.log_dir}/{job}_<task>_0_log.out and .err",
        "  merge:  rerun this command (finished inputs are skipped) or add --merge-only",
    ]
    for line in lines:
        _logger.info("%s", line)
    print("\n".join(lines), flush=True)
    if not args.wait:
        return len(tasks)

    def finished(names: list[str]) -> None:
        from pose_classifier_ros.season.markers import read_marker

        for name in names:
            marker = read_marker(Path(args.out) / name)
            progress.outcome({"name": name, **(marker.to_dict() if marker else {"status": "failed"})})

    slurm.wait(submission, finished, poll_s=args.poll_seconds)
    return 0


def _merge(args, manifest, hashes, in_flight: dict[str, str], wall_s: float, queued: int) -> int:
    from pose_classifier_ros.evaluation.groups import parse_columns
    from pose_classifier_ros.season.season_report import input_states, write_season_report

    states = input_states(args.out, manifest.inputs, hashes, in_flight)
    factors = parse_columns(args.group_by) if args.group_by is not None else None
    unknown = [f for f in factors or [] if any(c not in manifest.metadata_columns for c in f.split("+"))]
    if unknown:
        _logger.warning("--group-by: no metadata column %s; ignored", ", ".join(unknown))
        factors = [f for f in factors if f not in unknown]
    paths = write_season_report(args.out, states, manifest.metadata_columns, factors, wall_seconds=wall_s)
    counts = {k: sum(s.status == k for s in states) for k in ("done", "failed", "outdated", "running", "pending")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    _logger.info("season report: %s (%s)", Path(args.out) / "season", summary)
    print(f"{len(states)} input(s): {summary}; season report: {paths[0].parent}")
    failed = [s for s in states if s.status == "failed"]
    if failed:
        print("failed inputs:")
        for s in failed:
            print(f"  {s.spec.name} ({s.spec.path}): {s.error}")
    if queued:
        print(f"{queued} input(s) queued on SLURM: rerun this command (or --merge-only) when the job has ended")
        return 0 if not failed else 1
    return 0 if counts["done"] == len(states) else 1
