"""`pose-classifier batch --engine local` end to end: real sample flights, a test-tiny model, worker processes.

One corrupt and one missing input fail their rows only; a rerun skips what is finished (markers untouched,
the log says so) and retries what failed; --force reruns; a worker killed mid-input leaves no finished
marker, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.paths import REPO
from helpers.season_inputs import (
    SITES,
    SPECIES,
    batch_command,
    batch_env,
    corrupt_copy,
    kill_group,
    make_flights,
    read_csv,
    run_batch,
    tiny_checkpoint,
    write_manifest,
)

from pose_classifier_ros.metrics import classification_report
from pose_classifier_ros.season.markers import FAILED, PARTIAL_DIR, SUCCESS

pytestmark = [pytest.mark.slow, pytest.mark.process]


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    root = tmp_path_factory.mktemp("season_inputs")
    flights = make_flights(root, 4)
    corrupt = corrupt_copy(flights[0], root / "broken" / "flight")
    rows = [{"path": f, "site": SITES[i], "species": SPECIES[i], "session": f"s{i % 2}"} for i, f in enumerate(flights)]
    rows[0]["ground_truth"] = flights[0].parent / "ground_truth.csv"  # the others: the bag's own topic
    rows += [
        {"path": corrupt, "site": "OPC", "species": "zebra", "session": "s0"},
        {"path": root / "never_copied" / "flight", "site": "Mpala", "species": "zebra", "session": "s1"},
    ]
    return {
        "root": root,
        "flights": flights,
        "manifest": write_manifest(root / "season.csv", rows),
        "checkpoint": tiny_checkpoint(root / "tiny.pth"),
    }


NAMES = ["f0_flight", "f1_flight", "f2_flight", "f3_flight"]


def _marker(out, name, kind=SUCCESS):
    return json.loads((out / name / kind).read_text())


def _mtimes(out, names):
    return {n: (out / n / SUCCESS).stat().st_mtime_ns for n in names}


def test_local_batch_isolates_failures_merges_and_resumes(season, tmp_path):
    out = tmp_path / "out"
    proc = run_batch(season["manifest"], out, season["checkpoint"], "--workers", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed inputs:" in proc.stdout and "broken_flight" in proc.stdout and "never_copied_flight" in proc.stdout

    # every good input is done, in its own folder, with what replay writes plus the batch's own files
    for name in NAMES:
        marker = _marker(out, name)
        assert marker["status"] == "done" and marker["input_hash"].startswith("sha256:")
        for file in ("metrics.json", "report.txt", "detections.parquet", "replay.log", "best_views/sightings.csv"):
            assert (out / name / file).stat().st_size > 0, (name, file)
    assert "truncated" in _marker(out, "broken_flight", FAILED)["error"]
    assert "does not exist" in _marker(out, "never_copied_flight", FAILED)["error"]
    assert not (out / "broken_flight" / SUCCESS).exists()
    # the model is loaded once per worker, not once per input
    loads = [_marker(out, n)["summary"]["load_seconds"] for n in NAMES]
    assert 1 <= sum(v > 0 for v in loads) <= 2 and len({_marker(out, n)["worker"] for n in NAMES}) <= 2

    # the season table: one row per input, statuses and counts from the markers
    rows = {r["name"]: r for r in read_csv(out / "season" / "inputs.csv")}
    assert list(rows) == NAMES + ["broken_flight", "never_copied_flight"]
    assert [rows[n]["status"] for n in rows] == ["done"] * 4 + ["failed"] * 2
    assert rows["f1_flight"]["site"] == "OPC" and rows["f2_flight"]["species"] == "zebra"
    assert all(int(rows[n]["crops"]) > 0 and float(rows[n]["crops_per_s"]) > 0 for n in NAMES)
    assert "truncated" in rows["broken_flight"]["error"]

    # merged metrics = the metrics of every detection of every flight (read back from the Parquet tables)
    season_metrics = json.loads((out / "season" / "metrics.json").read_text())
    tables = [pq.read_table(out / n / "detections.parquet").to_pylist() for n in NAMES]
    known = [r for t in tables for r in t if r["true"] and r["label"]]
    expected = classification_report([r["true"] for r in known], [r["label"] for r in known])
    assert season_metrics["per_frame"]["report"] == expected
    assert season_metrics["season"]["crops"] == sum(int(rows[n]["crops"]) for n in NAMES)
    by_site = season_metrics["per_frame"]["groups"]["site"]
    assert set(by_site) == {"OPC", "Mpala"}
    opc = [r for t, n in zip(tables, NAMES) for r in t if rows[n]["site"] == "OPC" and r["true"] and r["label"]]
    assert by_site["OPC"]["support"] == len(opc) and by_site["OPC"]["accuracy_ci"]["n"] == len(opc)
    assert set(season_metrics["per_frame"]["groups"]) == {"site", "species", "session"}
    report = (out / "season" / "report.txt").read_text()
    assert "By site" in report and "broken_flight" in report

    # one sightings table and contact sheet for the season
    sightings = read_csv(out / "season" / "sightings.csv")
    per_input = sum(len(read_csv(out / n / "best_views" / "sightings.csv")) for n in NAMES)
    assert len(sightings) == per_input > 0
    assert {s["input"] for s in sightings} == set(NAMES)
    files = [s["best_file"] for s in sightings if s["best_file"]]
    assert files and all((out / f).is_file() for f in files)
    for image in ("contact_sheet.png", "throughput.png"):
        assert (out / "season" / image).stat().st_size > 0
    log = (out / "batch.log").read_text()
    assert "done f0_flight" in log and "failed broken_flight" in log

    # rerun: finished inputs are skipped (markers untouched), the failed ones are tried again
    before = _mtimes(out, NAMES)
    proc = run_batch(season["manifest"], out, season["checkpoint"], "--workers", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _mtimes(out, NAMES) == before
    log = (out / "batch.log").read_text()
    assert all(f"skipped {n}: finished, hashes match" in log for n in NAMES)
    assert "run broken_flight: failed before" in log

    # --force reruns everything; --merge-only runs nothing
    proc = run_batch(season["manifest"], out, season["checkpoint"], "--workers", "2", "--force")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    after = _mtimes(out, NAMES)
    assert all(after[n] > before[n] for n in NAMES)
    proc = run_batch(season["manifest"], out, season["checkpoint"], "--merge-only")
    assert proc.returncode == 1 and _mtimes(out, NAMES) == after
    assert "4 done, 2 failed" in proc.stdout


def _wait_for_partial(out, deadline):
    while time.monotonic() < deadline:
        found = [p for p in (out / PARTIAL_DIR).glob("*@*@*")] if (out / PARTIAL_DIR).is_dir() else []
        if found:
            return found[0]
        time.sleep(0.02)
    pytest.fail("no input started")


def test_killed_worker_leaves_no_finished_marker(season, tmp_path):
    rows = [{"path": f, "site": SITES[i]} for i, f in enumerate(season["flights"])]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        batch_command(manifest, out, season["checkpoint"], "--workers", "1"),
        env=batch_env(),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # freeze the worker mid-input: its partial folder must still be there, uncommitted
            partial = _wait_for_partial(out, deadline)
            name, _, pid = partial.name.split("@")
            pid = int(pid)
            os.kill(pid, signal.SIGSTOP)
            if partial.exists() and not (out / name / SUCCESS).exists():
                break
            os.kill(pid, signal.SIGCONT)  # it had just finished: catch the next input
        os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, output
    assert not (out / name / SUCCESS).exists()
    failed = _marker(out, name, FAILED)
    assert failed["error_type"] == "WorkerDied" and "worker process died" in failed["error"]
    others = [n for n in NAMES if n != name]
    assert all((out / n / SUCCESS).exists() for n in others), output  # the batch went on in a fresh pool
    statuses = {r["name"]: r["status"] for r in read_csv(out / "season" / "inputs.csv")}
    assert statuses[name] == "failed" and all(statuses[n] == "done" for n in others)

    proc = run_batch(manifest, out, season["checkpoint"], "--workers", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _marker(out, name)["status"] == "done"
    assert not list((out / PARTIAL_DIR).iterdir())  # the killed worker's partial folder is gone
    assert np.all([r["status"] == "done" for r in read_csv(out / "season" / "inputs.csv")])


def test_a_manifest_mixing_bags_and_videos(season, tmp_path):
    """Video rows take tracks / tracks_format and per-row video options (stride) through the same run_replay
    as bags; a video row without its track file fails alone; every input's folder has the same table."""
    from pose_classifier_ros.synthetic.flight import FlightConfig
    from pose_classifier_ros.video.sample_video import write_flight_video

    videos = tmp_path / "videos"
    sample = write_flight_video(videos, FlightConfig(width=192, height=128, frames=8, seed=7), progress=False)
    rows = [
        {"path": season["flights"][1], "name": "bag", "species": "giraffe"},
        {"path": sample.video, "name": "cvat", "tracks": sample.cvat, "species": "zebra", "stride": "2"},
        {
            "path": sample.video,
            "name": "mot",
            "tracks": sample.mot,
            "tracks_format": "mot",
            "ground_truth": sample.ground_truth,
            "species": "zebra",
        },  # fmt: skip
        {"path": sample.video, "name": "no_tracks", "species": "zebra"},
    ]
    out = tmp_path / "out"
    proc = run_batch(write_manifest(tmp_path / "mixed.csv", rows), out, season["checkpoint"], "--workers", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the video row without tracks
    status = {r["name"]: r for r in read_csv(out / "season" / "inputs.csv")}
    assert [status[n]["status"] for n in ("bag", "cvat", "mot", "no_tracks")] == ["done"] * 3 + ["failed"]
    assert "--tracks" in status["no_tracks"]["error"]
    tables = {n: pq.read_table(out / n / "detections.parquet").to_pylist() for n in ("bag", "cvat", "mot")}
    assert {r["input"] for r in tables["cvat"]} == {"cvat"}
    assert {r["frame_index"] % 2 for r in tables["cvat"]} == {0}  # stride 2 from the manifest
    assert len(tables["mot"]) == sample.tracks.num_boxes and all(r["true"] for r in tables["mot"])
    assert len(tables["cvat"]) == sum(len(sample.tracks.detections(k)) for k in range(0, 8, 2))
    assert all((out / n / "detections.csv").stat().st_size > 0 for n in tables)
    assert _marker(out, "cvat")["summary"]["kind"] == "video" and _marker(out, "bag")["summary"]["kind"] == "bag"
    season_metrics = json.loads((out / "season" / "metrics.json").read_text())
    assert set(season_metrics["per_frame"]["groups"]["species"]) == {"giraffe", "zebra"}
