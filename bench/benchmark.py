#!/usr/bin/env python3
"""Inference speed: raw frame + boxes -> labels, ours (crop_batch + backends) against the reference.

Reference ("baseline"): per box a PIL crop, torchvision Resize(256)/CenterCrop(224)/ToTensor/
Normalize, then the fp32 eager model on the stacked batch. Ours: ViewpointClassifier.predict_frame
with each backend. Workloads: 1920x1080 frames with 1, 8 and 32 animals (boxes 200-800 px, seeded).
Random-weight models (no real weights offline) with a seeded head; label agreement is measured
against fp32 eager on the same inputs. Prints a table, ratios last; --json writes every figure.

    .venv/bin/python bench/benchmark.py --quick
    .venv/bin/python bench/benchmark.py --sizes small base --backends auto eager int8 onnx-int8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import psutil
import torch

from pose_classifier_ros.model.backend_selection import agreement as probs_agreement
from pose_classifier_ros.model.backend_selection import time_calls
from pose_classifier_ros.model.backends import cpu_model_name
from pose_classifier_ros.model.classifier import (
    CPU_BACKENDS,
    CUDA_BACKENDS,
    ViewpointClassifier,
    cpu_has_fast_bf16,
    resolve_backend,
)
from pose_classifier_ros.model.device import DeviceError, resolve_device
from pose_classifier_ros.model.preprocess import CropConfig, crop_batch, reference_crops, reference_preprocess
from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

WIDTH, HEIGHT = 1920, 1080
ANIMALS = (1, 8, 32)


def make_frame(seed: int) -> np.ndarray:
    """Textured 1920x1080 RGB frame (gradients, stripes, blobs, noise): realistic resize cost."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    img = np.stack(
        [xx / WIDTH * 255, 127 + 90 * np.sin(xx / 9.0) * np.cos(yy / 13.0), ((xx // 64 + yy // 64) % 2) * 160 + 40],
        axis=-1,
    )
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return img.clip(0, 255).astype(np.uint8)


def make_boxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wh = rng.uniform(200, 800, (n, 2))
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


class PeakRss:
    """Peak resident set size (MiB) of this process while the block runs, sampled every 5 ms."""

    def __enter__(self):
        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.peak_mib = self.peak / 2**20


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def reference_frame(model, config, frame, boxes, device, timings):
    """The baseline: PIL crops + torchvision transforms per crop, fp32 model -> labels."""
    t0 = time.perf_counter()
    crops, valid = reference_crops(frame, boxes, CropConfig())
    batch = reference_preprocess(crops, config).to(device)
    sync(device)
    t1 = time.perf_counter()
    with torch.inference_mode():
        feats = model.backbone(batch)
        sync(device)
        t2 = time.perf_counter()
        labels = model.head(feats).argmax(1).cpu().numpy()
    sync(device)
    t3 = time.perf_counter()
    timings["preprocess"] += (t1 - t0) * 1e3
    timings["backbone"] += (t2 - t1) * 1e3
    timings["head"] += (t3 - t2) * 1e3
    return labels


def time_runs(fn, warmup, repeats):
    """Per-call latencies in ms after `warmup` untimed calls; and the peak RSS during the timed calls."""
    for _ in range(warmup):
        fn()
    with PeakRss() as mem:
        lat = time_calls(fn, 0, repeats)
    return lat, mem.peak_mib


def matmul_gflops(dtype=torch.float32, device="cpu", n=1024, iters=8) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e9


def model_gflop_per_crop(model, size) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def agreement(clf, eager, frames_boxes):
    """(label agreement %, max |prob diff|) of clf against fp32 eager over the given frames."""
    ref = np.concatenate([eager.predict_frame(frame, boxes).probs for frame, boxes in frames_boxes])
    got = np.concatenate([clf.predict_frame(frame, boxes).probs for frame, boxes in frames_boxes])
    return probs_agreement(ref, got)


def bench_size(size, args, device, cache_dir):
    torch.manual_seed(0)
    config = ModelConfig(backbone=size)
    model = build_model(config, pretrained=False).eval().to(device)
    gflop = model_gflop_per_crop(model, config.crop_size)
    out = {"size": size, "gflop_per_crop": gflop, "rows": [], "preprocess_32": {}}
    frames = {n: (make_frame(100 + n), make_boxes(n, 200 + n)) for n in ANIMALS}

    # Preprocessing alone, 32 crops: reference (PIL + torchvision per crop) vs crop_batch.
    frame32, boxes32 = frames[32]
    ref_lat, _ = time_runs(
        lambda: reference_preprocess(reference_crops(frame32, boxes32)[0], config), 2, max(5, args.repeats * 3)
    )
    ours_lat, _ = time_runs(
        lambda: crop_batch(frame32, boxes32, CropConfig(), config, device=device), 2, max(5, args.repeats * 3)
    )
    out["preprocess_32"] = {"reference_ms": float(np.median(ref_lat)), "ours_ms": float(np.median(ours_lat))}
    # Again on one thread: on a loaded machine every small multi-threaded torch op of the reference
    # can wait a scheduler slice for its second OpenMP thread, which inflates the ratio above.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref1, _ = time_runs(
            lambda: reference_preprocess(reference_crops(frame32, boxes32)[0], config), 2, max(5, args.repeats * 3)
        )
        ours1, _ = time_runs(
            lambda: crop_batch(frame32, boxes32, CropConfig(), config, device=device), 2, max(5, args.repeats * 3)
        )
    finally:
        torch.set_num_threads(threads)
    out["preprocess_32_1thread"] = {"reference_ms": float(np.median(ref1)), "ours_ms": float(np.median(ours1))}

    eager = ViewpointClassifier(model, config, device=device, backend="eager")
    agree_set = [(make_frame(300 + i), make_boxes(args.agreement_crops // 4, 400 + i)) for i in range(4)]

    def add_row(name, runner_for_n, acc):
        for n in ANIMALS:
            frame, boxes = frames[n]
            timings = {"preprocess": 0.0, "backbone": 0.0, "head": 0.0}
            lat, peak = time_runs(lambda f=frame, b=boxes, t=timings: runner_for_n(f, b, t), args.warmup, args.repeats)
            calls = args.warmup + args.repeats
            total = sum(timings.values()) or 1.0
            out["rows"].append(
                {
                    "backend": name,
                    "animals": n,
                    "crops_per_s": n / (np.median(lat) / 1e3),
                    "median_ms": float(np.median(lat)),
                    "p95_ms": float(np.percentile(lat, 95)),
                    "peak_rss_mib": peak,
                    "share": {k: v / total for k, v in timings.items()},
                    "per_frame_ms": {k: v / calls for k, v in timings.items()},
                    "agreement_pct": acc[0],
                    "max_prob_diff": acc[1],
                }
            )
            print(f"  {size:5s} {name:18s} {n:3d} animals: {np.median(lat):9.1f} ms/frame", file=sys.stderr)

    add_row("baseline (PIL+fp32)", lambda f, b, t: reference_frame(model, config, f, b, device, t), (100.0, 0.0))
    for backend in args.backends:
        if backend == "eager":
            clf = eager
        else:  # auto measures its candidates here (fresh cache directory: nothing cached from earlier runs)
            clf = ViewpointClassifier(
                model, config, device=device, backend=backend, onnx_cache_dir=cache_dir, backend_cache_dir=cache_dir
            )
        if clf.backend_choice is not None:
            out["auto"] = clf.backend_choice.to_dict()
            print(f"  {size:5s} {clf.backend_choice.summary()}", file=sys.stderr)
        acc = (100.0, 0.0) if clf.backend == "eager" else agreement(clf, eager, agree_set)

        def run(f, b, t, clf=clf):
            pred = clf.predict_frame(f, b)
            for k, v in pred.timings_ms.items():
                t[k] += v
            return pred.probs.argmax(1)

        name = f"{clf.backend} (auto)" if backend == "auto" else clf.backend
        add_row(name, run, acc)
    return out


def print_report(results, machine):
    print(
        f"\nMachine: {machine['cpu']}, {machine['threads']} torch threads, device {machine['device']}; "
        f"torch {torch.__version__}; fp32 matmul {machine['fp32_gflops']:.0f} GFLOP/s"
        + (f", bf16 {machine['bf16_gflops']:.0f} GFLOP/s" if machine.get("bf16_gflops") else "")
    )
    for res in results:
        if res.get("auto"):
            a = res["auto"]
            figures = ", ".join(
                f"{k} {v:.1f}" + (" (rejected)" if k in a["rejected"] else "") for k, v in a["crops_per_s"].items()
            )
            print(f"auto ({res['size']}): {a['backend']}; its measurement in crops/s: {figures}")
        limit = machine["fp32_gflops"] / res["gflop_per_crop"]
        print(
            f"\nbackbone {res['size']}: {res['gflop_per_crop']:.2f} GFLOP per 224 px crop -> fp32 machine "
            f"limit {limit:.1f} crops/s at {machine['fp32_gflops']:.0f} GFLOP/s"
        )
        hdr = (
            f"{'backend':20s} {'animals':>7s} {'crops/s':>8s} {'median ms':>10s} {'p95 ms':>9s} "
            f"{'peak RSS MiB':>12s} {'prep/bb/head %':>15s} {'agree %':>8s} {'max dP':>7s}"
        )
        print(hdr)
        print("-" * len(hdr))
        for r in res["rows"]:
            s = r["share"]
            split = f"{100 * s['preprocess']:.0f}/{100 * s['backbone']:.0f}/{100 * s['head']:.1f}"
            print(
                f"{r['backend']:20s} {r['animals']:7d} {r['crops_per_s']:8.2f} {r['median_ms']:10.1f} "
                f"{r['p95_ms']:9.1f} {r['peak_rss_mib']:12.0f} {split:>15s} {r['agreement_pct']:8.1f} "
                f"{r['max_prob_diff']:7.4f}"
            )
    print("\nRatios ours / baseline (same run; > 1 = faster):")
    for res in results:
        p = res["preprocess_32"]
        p1 = res["preprocess_32_1thread"]
        print(
            f"  [{res['size']}] preprocessing, 32 crops: {p['reference_ms']:.1f} ms -> {p['ours_ms']:.1f} ms = "
            f"{p['reference_ms'] / p['ours_ms']:.2f}x ({machine['threads']} threads); 1 thread: "
            f"{p1['reference_ms']:.1f} -> {p1['ours_ms']:.1f} ms = {p1['reference_ms'] / p1['ours_ms']:.2f}x"
        )
        base = {r["animals"]: r["median_ms"] for r in res["rows"] if r["backend"].startswith("baseline")}
        by_backend: dict[str, dict] = {}
        for r in res["rows"]:
            if not r["backend"].startswith("baseline"):
                by_backend.setdefault(r["backend"], {})[r["animals"]] = r
        for name, rows in by_backend.items():
            r32 = rows.get(32)
            if r32 is None:
                continue
            tag = "end-to-end, default backend" if name.endswith("(auto)") else "end-to-end"
            print(
                f"  [{res['size']}] {tag} {name}, 32 animals: {base[32] / r32['median_ms']:.2f}x "
                f"(1 animal {base[1] / rows[1]['median_ms']:.2f}x, 8: {base[8] / rows[8]['median_ms']:.2f}x), "
                f"label agreement {r32['agreement_pct']:.1f}%"
            )
        best = max(by_backend.items(), key=lambda kv: base[32] / kv[1][32]["median_ms"])
        print(
            f"  [{res['size']}] best backend: {best[0]} {base[32] / best[1][32]['median_ms']:.2f}x end-to-end "
            f"(32 animals), agreement {best[1][32]['agreement_pct']:.1f}%"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and agreement crops")
    parser.add_argument("--sizes", nargs="+", default=["small"], choices=["test-tiny", "small", "base", "large"])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        help=f"default: auto + every CPU backend ({', '.join(CPU_BACKENDS)}; bf16 only "
        f"where the CPU has native bf16) or CUDA backend ({', '.join(CUDA_BACKENDS)})",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed frames per workload (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--agreement-crops", type=int, default=None, help="default 128, quick 32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", metavar="OUT", help="write all figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.agreement_crops = args.agreement_crops or (32 if args.quick else 128)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    try:
        resolve_device(device)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.backends is None:
        if torch.device(device).type == "cuda":
            args.backends = ["auto", "eager", "bf16"]
        else:
            args.backends = ["auto", "eager", "int8", "onnx", "onnx-int8"] + (["bf16"] if cpu_has_fast_bf16() else [])
    try:
        for b in args.backends:
            resolve_backend(b, device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    machine = {
        "cpu": f"{cpu_model_name()} ({os.cpu_count()} cores)",
        "threads": torch.get_num_threads(),
        "device": device,
        "fp32_gflops": matmul_gflops(torch.float32, device),
        "bf16_gflops": matmul_gflops(torch.bfloat16, device) if cpu_has_fast_bf16() or device != "cpu" else None,
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as cache_dir:
        for size in args.sizes:
            results.append(bench_size(size, args, device, cache_dir))
    print_report(results, machine)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "results": results, "args": vars(args)}, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
