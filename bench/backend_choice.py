#!/usr/bin/env python3
"""What ``backend: auto`` chooses on this machine: every candidate's crops/s and agreement, one run.

Runs the classifier's own selection (pose_classifier_ros.model.backend_selection) on a ViT model:
random weights with the benchmark's seeded head (no real weights offline), or --checkpoint. The
choice cache goes to a fresh temporary directory unless --cache-dir is given, so every run measures.
--calibration frames takes the calibration crops from a textured 1080p frame with boxes of 200-800 px
(bench/benchmark.py's workload) instead of the synthetic crops the node uses before its first frame.

    .venv/bin/python bench/backend_choice.py                      # ViT-S, synthetic crops
    .venv/bin/python bench/backend_choice.py --size test-tiny --calibration frames --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from pose_classifier_ros.model import backend_selection
from pose_classifier_ros.model.backends import auto_candidates, cpu_model_name, onnxruntime_version
from pose_classifier_ros.model.classifier import ViewpointClassifier
from pose_classifier_ros.model.preprocess import CropConfig, crop_batch
from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model


def _frame_crops(config: ModelConfig, n: int) -> torch.Tensor:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark import make_boxes, make_frame

    crops, _ = crop_batch(make_frame(301), make_boxes(n, 401), CropConfig(), config)
    return crops


def _print_table(choice: backend_selection.BackendChoice) -> None:
    print(f"{'backend':10s} {'crops/s':>8s} {'agree %':>8s} {'max |dp|':>9s}  verdict")
    for name in dict.fromkeys([*choice.crops_per_s, *choice.rejected]):
        cps = choice.crops_per_s.get(name)
        verdict = "CHOSEN" if name == choice.backend else choice.rejected.get(name, "agrees, slower")
        print(
            f"{name:10s} {f'{cps:.1f}' if cps is not None else '-':>8s} "
            f"{choice.agreement.get(name, float('nan')):8.1f} {choice.max_abs_dp.get(name, float('nan')):9.4f}  "
            f"{verdict}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", choices=["test-tiny", "small", "base", "large"])
    parser.add_argument("--checkpoint", type=Path, help="a real checkpoint instead of random weights")
    parser.add_argument("--calibration", choices=["synthetic", "frames"], default="synthetic")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, help="choice and ONNX cache (default: a fresh temporary one)")
    parser.add_argument(
        "--workload-crops",
        type=int,
        nargs="+",
        default=[4, 32],
        help="batch sizes to time the candidates on, one choice each (the node: schedule.max_crops 4 in "
        "scheduled mode, model.batch_size 32 in every_frame)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the choices and their figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pose_classifier_ros.model.backend_selection").setLevel(logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.checkpoint is not None:
        from pose_classifier_ros.model.checkpoint import build_model_from_checkpoint

        model, config = build_model_from_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)  # the benchmark's model: random weights, seeded head
        config = ModelConfig(backbone=args.size)
        model = build_model(config, pretrained=False).eval()
    calibration = _frame_crops(config, backend_selection.CALIBRATION_CROPS) if args.calibration == "frames" else None
    print(
        f"{cpu_model_name()}, {torch.get_num_threads()} torch threads, device {args.device}; torch "
        f"{torch.__version__}, onnxruntime {onnxruntime_version()}; candidates {', '.join(auto_candidates(args.device))}",
        file=sys.stderr,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="backend_choice_") as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        for workload in args.workload_crops:
            t0 = time.perf_counter()
            clf = ViewpointClassifier(
                model,
                config,
                device=args.device,
                backend="auto",
                batch_size=max(args.workload_crops),
                backend_cache_dir=cache_dir,
                calibration_crops=calibration,
                workload_crops=workload,
            )
            wall = time.perf_counter() - t0
            choice = clf.backend_choice
            print(f"\nbackbone {config.backbone}, calibration: {choice.calibration}")
            _print_table(choice)
            print(
                f"auto chose {choice.backend} for batches of {workload}; "
                + ("read from the cache" if choice.cached else f"measured in {choice.measure_s:.1f} s")
                + f" ({wall:.1f} s with the model's hash and runner builds)"
            )
            results.append({"workload_crops": workload, "choice": choice.to_dict(), "wall_s": wall})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"size": config.backbone, "runs": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
