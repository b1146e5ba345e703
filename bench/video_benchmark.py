#!/usr/bin/env python3
"""Video decoding cost: frames/s and ms/frame of 1080p and 4K H.264, with and without RGB conversion.

Workloads: the synthetic flight rendered at 1920x1080 and 3840x2160 with film grain (real drone footage
is textured grass: a flat synthetic frame would encode to a tiny, fast-to-decode stream), encoded with
libx264 (veryfast, crf 18, B-frames, a keyframe every 30 frames; --codec libx265 for HEVC, which many
DJI cameras record); or your own file(s) with --video.
For each video:

  pyav_decode      plain PyAV loop (thread_type AUTO), no conversion: the decoder's own speed
  reader_decode    VideoReader (decode-ahead thread, numbering, stamps), frames not converted
  reader_rgb       VideoReader converting every frame to (H, W, 3) uint8 RGB
  reader_rgb_none  the same with the decoder unthreaded (thread_type NONE), for reference
  slow_consumer    reader_rgb feeding a consumer that takes --consumer-ms per frame (a model): the
                   consumer's wait per frame shows whether decoding kept ahead of it (0 = never waited)

Prints a table; --json writes every figure. Figures from a loaded machine are not final.

    .venv/bin/python bench/video_benchmark.py --quick
    .venv/bin/python bench/video_benchmark.py --frames 240 --frames-4k 120 --json video_bench.json
    .venv/bin/python bench/video_benchmark.py --video DJI_0068.MP4 --frames 300
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pose_classifier_ros.synthetic.flight import FlightConfig, generate_flight
from pose_classifier_ros.video.decode import DecodeOptions, VideoReader
from pose_classifier_ros.video.encode import VideoEncoder
from pose_classifier_ros.video.probe import probe_video
from pose_classifier_ros.video.sample_video import frame_times

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}


def grainy_flight(width: int, height: int, frames: int, grain: float, rate: float = 30.0):
    """The synthetic flight's frames with Gaussian grain (sigma `grain`, 8-bit levels): textured ground
    encodes and decodes like footage."""
    rng = np.random.default_rng(0)
    cfg = FlightConfig(width=width, height=height, frames=frames, rate_hz=rate, seed=0, empty_frame=-1)
    for frame in generate_flight(cfg):
        if grain > 0:
            noise = rng.normal(0.0, grain, frame.image.shape).astype(np.float32)
            frame.image = np.clip(frame.image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        yield frame


def make_video(
    path: Path, width: int, height: int, frames: int, grain: float, rate: float = 30.0, codec: str = "libx264"
) -> Path:
    """The grainy synthetic flight at width x height, encoded to `path`."""
    pts = frame_times(frames, rate, vfr=False)
    with VideoEncoder(path, width, height, rate, codec=codec, crf=18, gop=30) as encoder:
        for frame in grainy_flight(width, height, frames, grain, rate):
            encoder.write(frame.image, pts[frame.index])
    return path


def pyav_decode(path: Path, limit: int) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        t0 = time.perf_counter()
        for _ in container.decode(stream):
            n += 1
            if n >= limit:
                break
        wall = time.perf_counter() - t0
    return {"frames": n, "wall_s": wall}


def reader_pass(path: Path, limit: int, convert: bool, thread_type: str = "AUTO", consumer_ms: float = 0.0) -> dict:
    reader = VideoReader(path, DecodeOptions(thread_type=thread_type), convert=(None if convert else lambda _: False))
    n = 0
    t0 = time.perf_counter()
    for _frame in reader:
        n += 1
        if consumer_ms:
            time.sleep(consumer_ms / 1e3)
        if n >= limit:
            break
    wall = time.perf_counter() - t0
    reader.close()
    s = reader.stats
    return {
        "frames": n,
        "wall_s": wall,
        "decode_ms": 1e3 * s.decode_s / max(1, s.decoded),
        "rgb_ms": 1e3 * s.convert_s / max(1, s.converted) if s.converted else 0.0,
        "consumer_wait_ms": 1e3 * s.consumer_wait_s / max(1, n),
    }


def bench_video(path: Path, limit: int, consumer_ms: float) -> dict:
    info = probe_video(path)
    size_mb = path.stat().st_size / 1e6
    duration = info.duration_s or 0.0
    out = {
        "video": str(path),
        "size": f"{info.width}x{info.height}",
        "codec": info.codec,
        "frames_in_file": info.frame_count,
        "bitrate_mbit_s": round(8 * size_mb / duration, 1) if duration else None,
    }
    reader_pass(path, min(limit, 5), convert=False)  # warm the page cache and the libraries
    out["pyav_decode"] = pyav_decode(path, limit)
    out["reader_decode"] = reader_pass(path, limit, convert=False)
    out["reader_rgb"] = reader_pass(path, limit, convert=True)
    out["reader_rgb_none"] = reader_pass(path, limit, convert=True, thread_type="NONE")
    out["slow_consumer"] = reader_pass(path, limit, convert=True, consumer_ms=consumer_ms)
    out["slow_consumer"]["consumer_ms"] = consumer_ms
    return out


def print_table(results: list[dict]) -> None:
    print(f"\n{'video':<24} {'pass':<16} {'frames':>6} {'fps':>8} {'ms/frame':>9} {'rgb ms':>7} {'wait ms':>8}")
    for r in results:
        name = f"{r['size']} {r['codec']}" + (f" {r['bitrate_mbit_s']}Mb/s" if r["bitrate_mbit_s"] else "")
        for key in ("pyav_decode", "reader_decode", "reader_rgb", "reader_rgb_none", "slow_consumer"):
            p = r[key]
            fps = p["frames"] / p["wall_s"] if p["wall_s"] else float("nan")
            rgb = f"{p.get('rgb_ms', 0):7.2f}" if "rgb_ms" in p else f"{'':>7}"
            wait = f"{p['consumer_wait_ms']:8.2f}" if "consumer_wait_ms" in p else f"{'':>8}"
            print(f"{name:<24} {key:<16} {p['frames']:>6} {fps:8.1f} {1e3 / fps:9.2f} {rgb} {wait}")
            name = ""
    print(
        "\nfps and ms/frame: wall clock over the pass; rgb ms: RGB conversion per frame (decode thread); wait ms: "
        "the consumer's wait per frame (0 = decoding stayed ahead)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, nargs="*", default=None, help="benchmark these files instead")
    parser.add_argument("--frames", type=int, default=240, help="frames per 1080p pass (and per --video pass)")
    parser.add_argument("--frames-4k", type=int, default=90, help="frames per 4K pass (0: skip 4K)")
    parser.add_argument("--grain", type=float, default=4.0, help="film grain sigma of the synthetic videos")
    parser.add_argument("--codec", default="libx264", help="encoder of the synthetic videos (libx264, libx265)")
    parser.add_argument("--consumer-ms", type=float, default=40.0, help="per-frame time of the simulated model")
    parser.add_argument("--quick", action="store_true", help="a short check that everything runs (small videos)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the generated videos in this folder")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.video:
            jobs = [(path, args.frames) for path in args.video]
        else:
            sizes = {"1080p": (640, 360)} if args.quick else dict(SIZES)
            frames = {"1080p": 12 if args.quick else args.frames, "4k": args.frames_4k}
            if args.quick or not args.frames_4k:
                sizes.pop("4k", None)
            jobs = []
            for name, (w, h) in sizes.items():
                path = folder / f"flight_{name}_{args.codec}.mp4"
                if not path.exists():
                    print(f"rendering and encoding {frames[name]} frames at {w}x{h} ...", file=sys.stderr)
                    make_video(path, w, h, frames[name], args.grain, codec=args.codec)
                jobs.append((path, frames[name]))
        for path, limit in jobs:
            results.append(bench_video(path, limit, 5.0 if args.quick else args.consumer_ms))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
