"""`pose-classifier batch --engine slurm` on a real one-node SLURM (scripts/slurm_local.sh: the Debian packages,
installed when absent, munged + slurmctld + slurmd from a config in a temporary folder, stopped by their pids).

Where SLURM cannot start here (not root, no package, apt fails) the test is skipped with the reason: it is
never mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from helpers.paths import REPO
from helpers.season_inputs import (
    batch_command,
    batch_env,
    kill_group,
    make_flights,
    read_csv,
    run_batch,
    tiny_checkpoint,
    write_manifest,
)

from pose_classifier_ros.season.markers import FAILED, PARTIAL_DIR, SUCCESS

pytestmark = [pytest.mark.slow, pytest.mark.process]

SCRIPT = REPO / "scripts" / "slurm_local.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster; its daemons are stopped at the end."""
    folder = tmp_path_factory.mktemp("slurm")
    proc = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr
    try:
        yield {"SLURM_CONF": proc.stdout.strip().splitlines()[-1]}
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
        for daemon in ("munged", "slurmctld", "slurmd"):
            assert not (folder / f"{daemon}.pid").exists()


def _squeue(env, job):
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%T", "-j", job], capture_output=True, text=True, env=env, timeout=60
    )
    return dict(line.split("|") for line in out.stdout.split()) if out.returncode == 0 else {}


def test_slurm_job_array_merges_and_a_killed_task_is_picked_up_by_the_rerun(slurm, tmp_path):
    env = batch_env(slurm)
    # The first flight is the longest, so that its task is caught mid-input (see the SIGKILL below).
    flights = [*make_flights(tmp_path / "long", 1, frames=150), *make_flights(tmp_path / "in", 3)[1:]]
    rows = [{"path": f, "site": s} for f, s in zip(flights, ("OPC", "OPC", "Mpala"))]
    manifest = write_manifest(tmp_path / "season.csv", rows)
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pth")
    out = tmp_path / "out"
    names = ["f0_flight", "f1_flight", "f2_flight"]
    slurm_args = [
        "--engine",
        "slurm",
        "--wait",
        "--poll-seconds",
        "1",
        "--cpus-per-task",
        "1",
        "--mem",
        "1G",
        "--time",
        "10",
        "--array-parallelism",
        "1",
        "--sbatch-arg",
        "comment=season-test",
    ]
    proc = subprocess.Popen(
        batch_command(manifest, out, checkpoint, *slurm_args),
        env=env,
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "slurm_jobs.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        job = json.loads((out / "slurm_jobs.json").read_text())["jobs"][0]["job_id"]
        # Kill the first array task mid-input, as the OOM killer or a dying node would: SIGKILL its worker
        # process once the input's partial folder (<input>@<host>@<pid>) exists, before it commits.
        # Not `scancel --signal=KILL`: SLURM turns that into SIGCONT, SIGTERM (which submitit ignores) and
        # SIGKILL only KillWait (5 s) later, by when a fast machine has finished this input (about 2 s).
        while not (partials := list(out.glob(f"{PARTIAL_DIR}/f0_flight@*"))):
            assert time.monotonic() < deadline, "array task 0 never started its input"
            time.sleep(0.01)
        os.kill(int(partials[0].name.rsplit("@", 1)[1]), signal.SIGKILL)
        assert not (out / "f0_flight").exists()
        output, _ = proc.communicate(timeout=600)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, output
    assert f"submitted SLURM job array {job}: 3 task(s)" in output and f"squeue -j {job}" in output
    assert not (out / "f0_flight" / SUCCESS).exists()
    failed = json.loads((out / "f0_flight" / FAILED).read_text())
    assert f"SLURM task {job}_0 ended without finishing" in failed["error"] and f"{job}_0_0_log.err" in failed["error"]
    for name, task in (("f1_flight", 1), ("f2_flight", 2)):
        marker = json.loads((out / name / SUCCESS).read_text())
        assert marker["job"] == f"{job}_{task}" and marker["summary"]["crops"] > 0
    sbatch = (out / "logs" / f"{job}_submission.sh").read_text()
    for flag in ("--comment=season-test", "--mem=1G", "--cpus-per-task=1", "--array=0-2%1", "--time=10"):
        assert flag in sbatch, flag
    assert (out / "logs" / f"{job}_1_0_log.out").exists()
    assert [r["status"] for r in read_csv(out / "season" / "inputs.csv")] == ["failed", "done", "done"]
    assert _squeue(env, job) == {}

    # rerun the same command: the two finished inputs are skipped, the killed one runs in a new job array
    before = {n: (out / n / SUCCESS).stat().st_mtime_ns for n in names[1:]}
    proc = run_batch(manifest, out, checkpoint, *slurm_args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "submitted SLURM job array" in proc.stdout and ": 1 task(s) for 1 input(s)" in proc.stdout
    assert {n: (out / n / SUCCESS).stat().st_mtime_ns for n in names[1:]} == before
    log = (out / "batch.log").read_text()
    assert "skipped f1_flight: finished, hashes match" in log and "run f0_flight: failed before" in log
    rows = read_csv(out / "season" / "inputs.csv")
    assert [r["status"] for r in rows] == ["done"] * 3
    season = json.loads((out / "season" / "metrics.json").read_text())
    assert season["season"]["done"] == 3 and season["season"]["crops"] == sum(int(r["crops"]) for r in rows)
    per_input = [json.loads((out / n / "metrics.json").read_text())["per_frame"]["num_samples"] for n in names]
    assert season["per_frame"]["report"]["num_samples"] == sum(per_input)
    assert set(season["per_frame"]["groups"]["site"]) == {"OPC", "Mpala"}
