"""Inputs for the season (batch) tests: small generated sample flights, a test-tiny checkpoint, manifests,
and the `pose-classifier batch` command as a child process."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from helpers.paths import REPO

SITES = ("OPC", "OPC", "Mpala", "Mpala")
SPECIES = ("zebra", "giraffe", "zebra", "giraffe")


def tiny_checkpoint(path: Path) -> Path:
    """A seeded test-tiny backbone + MLP head, saved in our checkpoint format."""
    import torch

    from pose_classifier_ros.model.backbone import build_backbone
    from pose_classifier_ros.model.checkpoint import save_checkpoint
    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

    torch.manual_seed(0)
    model = ViewpointModel(build_backbone("test-tiny", pretrained=False), build_head("mlp", 64)).eval()
    save_checkpoint(path, model, ModelConfig(backbone="test-tiny"))
    return path


def make_flights(root: Path, n: int, frames: int = 6) -> list[Path]:
    """root/f<i>/flight (bag) + root/f<i>/ground_truth.csv: n sample flights, seeds 0..n-1. All bags are
    named "flight", so batch has to tell them apart by their parent folders."""
    from pose_classifier_ros.bags import sample_bag as sb

    out = []
    for i in range(n):
        folder = root / f"f{i}"
        sb.write_flight_bag(folder, sb.FlightConfig(width=192, height=128, frames=frames, seed=i), progress=False)
        out.append(folder / "flight")
    return out


def corrupt_copy(bag: Path, dest: Path) -> Path:
    """A copy of `bag` whose MCAP file is cut in half (a transfer that died)."""
    shutil.copytree(bag, dest)
    (data,) = [p for p in dest.iterdir() if p.suffix == ".mcap"]
    with data.open("r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    return dest


def write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def batch_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.update(extra or {})
    return env


def batch_command(manifest: Path, out: Path, checkpoint: Path, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pose_classifier_ros.cli",
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--backend",
        "eager",
        "--no-progress",
        *map(str, extra),
    ]


def kill_group(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGKILL the process group of `proc` (started with start_new_session=True) and reap `proc`. The group
    is killed even when `proc` itself has ended: the batch's pool workers may not have."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout)


def run_batch(manifest: Path, out: Path, checkpoint: Path, *extra, env: dict | None = None, timeout: float = 900):
    """Run `pose-classifier batch` to the end, like subprocess.run(capture_output=True, text=True). It runs in
    its own session, and on any exception (a timeout included) its whole group is killed, so that no
    spawn-pool worker outlives the test."""
    proc = subprocess.Popen(
        batch_command(manifest, out, checkpoint, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or batch_env(),
        cwd=str(REPO),
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
