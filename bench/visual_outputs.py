"""Cost and size of the visual outputs per frame: annotation marker, debug image (raw / JPEG), best views.

    .venv/bin/python bench/visual_outputs.py [--width 1920 --height 1080 --animals 8 --repeat 10]

Prints median milliseconds per frame of each step and the message sizes (CDR bytes), with `--animals` boxes
on the real drone frame of ../shared/real-samples resized to the size asked (a smooth gradient when it is
absent; JPEG sizes depend on the content). Run it on an idle machine; figures vary with the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _frame_result(width: int, height: int, animals: int, stamp_ns: int):
    from pose_classifier_ros.stream.pipeline_types import FrameResult, ViewpointResult
    from pose_classifier_ros.stream.voting import SmoothedLabel

    rng = np.random.default_rng(0)
    side = min(width, height) // 5
    results = []
    for i in range(animals):
        x = int(rng.integers(0, width - side))
        y = int(rng.integers(side // 2, height - side))
        label = i % 8
        probs = np.full(8, 0.02, np.float32)
        probs[label] = 0.86
        results.append(
            ViewpointResult(
                f"iou-{i}",
                np.array([x, y, x + side, y + side * 0.8], np.float32),
                0.9,
                label,
                probs,
                SmoothedLabel(label, 1.0, 3, True),
            )
        )
    return FrameResult(stamp_ns, width, height, results)


def _frame(width: int, height: int) -> tuple[np.ndarray, str]:
    from pathlib import Path

    from PIL import Image

    real = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "mixed_herd6.jpg"
    if real.exists():
        image = Image.open(real).convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image), "real drone frame"
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to((x + y) / 2, (height, width, 3)).astype(np.uint8), "gradient frame"


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--animals", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    from pose_classifier_ros.bags.bagio import make_typestore
    from pose_classifier_ros.visualization.annotations import annotation_types
    from pose_classifier_ros.visualization.best_views import BestViewTracker
    from pose_classifier_ros.visualization.frame_visuals import FrameVisuals, VisualsConfig

    store = make_typestore()
    types = annotation_types(store)
    frame, source = _frame(args.width, args.height)
    result = _frame_result(args.width, args.height, args.animals, 10**9)
    header = types.Header(stamp=types.Time(sec=1, nanosec=0), frame_id="cam")
    visuals = FrameVisuals(VisualsConfig(), types)
    marker = visuals.annotation(result, header)
    rgb = visuals.debug_rgb(frame, result)
    jpeg = visuals.debug_jpeg(rgb)
    tracker = BestViewTracker()
    stamp = [10**9]

    def best_views():
        stamp[0] += 10**8
        result.stamp_ns = stamp[0]
        tracker.update(frame, result)

    print(f"{args.width}x{args.height}, {args.animals} animals, median of {args.repeat}:")
    print(
        f"  annotation marker build  {_median_ms(lambda: visuals.annotation(result, header), args.repeat):7.2f} ms"
        f"   {len(store.serialize_cdr(marker, 'visualization_msgs/msg/ImageMarker')):>9,} B"
    )
    print(
        f"  debug overlay draw       {_median_ms(lambda: visuals.debug_rgb(frame, result), args.repeat):7.2f} ms"
        f"   {rgb.nbytes:>9,} B raw rgb8"
    )
    print(
        f"  debug JPEG encode (q{visuals.cfg.jpeg_quality})   {_median_ms(lambda: visuals.debug_jpeg(rgb), args.repeat):7.2f} ms"
        f"   {len(jpeg):>9,} B ({source})"
    )
    print(f"  best views update        {_median_ms(best_views, args.repeat):7.2f} ms")


if __name__ == "__main__":
    main()
