#!/usr/bin/env python3
"""Season throughput: N sample flights through sequential `replay` vs `batch --engine local --workers 1`
vs `--workers 2` (and any --workers list), all in one run on the same inputs and model.

Every mode writes the same per-input outputs (report dir, best views, no output bag). Printed per mode:
wall time, crops, crops/s over the wall time, replay seconds per crop (model load excluded: the processing
path's own cost), model loads and their total seconds, and the per-input overhead of the engine:
(wall x workers - sum of per-input replay seconds) / inputs (process start-up, imports, model loads, commits).

Targets (issue 23): batch's replay seconds per crop at most 10% above sequential replay's at the same thread
count (workers 1 vs replay, both --threads), and one model load per worker, not per input.

    .venv/bin/python bench/batch_benchmark.py                        # 8 flights, ViT-S (random weights)
    .venv/bin/python bench/batch_benchmark.py --quick                # 2 tiny flights, test-tiny: checks it runs
    .venv/bin/python bench/batch_benchmark.py --flights 8 --threads 8 --workers 1 2 4 --json batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMING = re.compile(r"timing: model load ([\d.]+) s, replay ([\d.]+) s, (\d+) crops")


def make_inputs(root: Path, args) -> tuple[Path, Path]:
    """root/flights/f<i>/flight bags, a manifest and a random-weight checkpoint of --size."""
    import torch

    from pose_classifier_ros.bags import sample_bag as sb
    from pose_classifier_ros.model.backbone import BACKBONE_SPECS, build_backbone
    from pose_classifier_ros.model.checkpoint import save_checkpoint
    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

    torch.manual_seed(0)
    dim = BACKBONE_SPECS[args.size].embed_dim
    model = ViewpointModel(build_backbone(args.size, pretrained=False), build_head("mlp", dim)).eval()
    checkpoint = root / f"{args.size}.pth"
    save_checkpoint(checkpoint, model, ModelConfig(backbone=args.size))
    lines = ["path,site"]
    for i in range(args.flights):
        cfg = sb.FlightConfig(width=args.width, height=args.height, frames=args.frames, seed=i)
        sb.write_flight_bag(root / "flights" / f"f{i}", cfg, progress=False)
        lines.append(f"flights/f{i}/flight,{'AB'[i % 2]}")
    manifest = root / "season.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, checkpoint


def _env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def sequential_replay(root: Path, manifest: Path, checkpoint: Path, args) -> dict:
    """`pose-classifier replay` once per flight, one after the other (a process each, as by hand)."""
    flights = [root / line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    out = root / "replay"
    loads = replays = crops = 0.0
    started = time.perf_counter()
    for i, flight in enumerate(flights):
        report = out / f"f{i}"
        cmd = [sys.executable, "-m", "pose_classifier_ros.cli", "replay", str(flight), "--checkpoint", str(checkpoint)]
        cmd += ["--backend", args.backend, "--no-out", "--no-progress", "--report-dir", str(report)]
        cmd += ["--best-views", str(report / "best_views")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(args.threads), cwd=str(REPO))
        match = TIMING.search(proc.stdout)
        if proc.returncode != 0 or match is None:
            raise SystemExit(f"replay of {flight} failed:\n{proc.stdout}\n{proc.stderr}")
        loads += float(match[1])
        replays += float(match[2])
        crops += int(match[3])
    wall = time.perf_counter() - started
    return _row("replay (sequential)", 1, args.threads, wall, int(crops), replays, len(flights), loads)


def batch(root: Path, manifest: Path, checkpoint: Path, workers: int, args) -> dict:
    out = root / f"batch_w{workers}"
    threads = max(1, args.threads // workers)
    cmd = [sys.executable, "-m", "pose_classifier_ros.cli", "batch", str(manifest), "--out", str(out)]
    cmd += ["--checkpoint", str(checkpoint), "--backend", args.backend, "--no-progress"]
    cmd += ["--workers", str(workers), "--threads-per-worker", str(threads)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), cwd=str(REPO))
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"batch --workers {workers} failed:\n{proc.stdout}\n{proc.stderr}")
    summaries = [json.loads(p.read_text())["summary"] for p in sorted(out.glob("*/_SUCCESS.json"))]
    crops = sum(s["crops"] for s in summaries)
    replays = sum(s["seconds"] for s in summaries)
    loads = [s["load_seconds"] for s in summaries if s["load_seconds"] > 0]
    row = _row(f"batch --workers {workers}", workers, threads, wall, crops, replays, len(summaries), sum(loads))
    row["model_loads"] = len(loads)
    return row


def _row(mode, workers, threads, wall, crops, replay_s, inputs, load_s) -> dict:
    return {
        "mode": mode,
        "workers": workers,
        "threads_per_worker": threads,
        "inputs": inputs,
        "wall_s": wall,
        "crops": crops,
        "crops_per_s": crops / wall if wall > 0 else None,
        "replay_ms_per_crop": 1e3 * replay_s / crops if crops else None,
        "model_loads": inputs,
        "model_load_s": load_s,
        "overhead_s_per_input": (wall * workers - replay_s) / inputs if inputs else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flights", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30, help="frames per flight")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--size", default="small", help="backbone (random weights): small, base, test-tiny")
    parser.add_argument("--backend", default="eager")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per mode, split by workers")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="2 flights x 4 frames, 192x128, test-tiny")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    if args.quick:
        args.flights, args.frames, args.width, args.height, args.size = 2, 4, 192, 128, "test-tiny"
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(
            f"{args.flights} flights x {args.frames} frames {args.width}x{args.height}, {args.size}, {args.threads} threads"
        )
        manifest, checkpoint = make_inputs(root, args)
        rows = [sequential_replay(root, manifest, checkpoint, args)]
        rows += [batch(root, manifest, checkpoint, w, args) for w in args.workers]
    head = f"{'mode':<22}{'wall s':>8}{'crops':>7}{'crops/s':>9}{'ms/crop':>9}{'loads':>6}{'load s':>8}{'ovh s/in':>9}"
    print(head)
    for r in rows:
        print(
            f"{r['mode']:<22}{r['wall_s']:>8.1f}{r['crops']:>7}{r['crops_per_s']:>9.1f}{r['replay_ms_per_crop']:>9.2f}"
            f"{r['model_loads']:>6}{r['model_load_s']:>8.2f}{r['overhead_s_per_input']:>9.2f}"
        )
    base = rows[0]["replay_ms_per_crop"]
    one = next((r for r in rows if r["workers"] == 1 and r["mode"].startswith("batch")), None)
    if one is not None and base:
        ratio = one["replay_ms_per_crop"] / base
        verdict = "ok" if ratio <= 1.10 else "ABOVE the 10% target"
        print(f"batch --workers 1 vs replay, per crop at {args.threads} threads: {ratio:.3f}x ({verdict})")
    for r in rows[1:]:
        print(f"{r['mode']}: {r['model_loads']} model load(s) for {r['inputs']} inputs, {r['workers']} worker(s)")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"settings": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
