#!/usr/bin/env python3
"""Decode + crop + classify: a 1080p video vs the same frames from a bag, and the decode share of the time.

The synthetic flight (with film grain, as video_benchmark.py renders it) is written three ways with the
same boxes: an H.264 MP4 with a detections CSV, a bag of raw rgb8 Image messages, and a bag of JPEG
CompressedImage messages. Each is run through the replay path's core (its source -> replay/runner.run_frames
-> FrameProcessor.step -> TrackPipeline, every_frame: every box of every frame is classified) with one
classifier (same checkpoint, same backend, same threads). Per source:

  wall_s, frames/s, crops/s  the whole pass
  source ms/frame            time inside the source's iterator: bag reading + deserialising + pairing; for
                             the video the wait for the decode-ahead thread (0 when decoding kept ahead)
  decode ms/frame            image decoding on the consumer's thread (raw copy, JPEG, or a video frame's RGB
                             conversion where the decode thread did not do it)
  model ms/frame             preprocess + backbone + head (the classifier's own timings)
  decode share               (source + decode) / wall: what reading and decoding cost the model's thread
  decode thread ms/frame     video only: demux + decode + RGB conversion in the decode-ahead thread

and a 4K (3840x2160) decode-only pass: ms/frame with and without RGB conversion.

The model is ViT-S/14 with random weights by default (the compute of the real small model, no download), or
--checkpoint. Figures from a loaded machine are not final. Examples:

    .venv/bin/python bench/video_replay_benchmark.py --quick                 # runs everything, small
    .venv/bin/python bench/video_replay_benchmark.py --frames 60 --frames-4k 60 --backend auto --json vr.json
    .venv/bin/python bench/video_replay_benchmark.py --checkpoint best_pose_model.pth --backend auto
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
from video_benchmark import grainy_flight, make_video  # this folder (sys.path[0] when run as a script)

from pose_classifier_ros.bags.bag_source import BagSource
from pose_classifier_ros.bags.bagio import make_typestore, open_reader, open_writer
from pose_classifier_ros.bags.sample_bag import DETECTIONS_TOPIC, compressed_msg, detections_msg, image_msg
from pose_classifier_ros.replay.runner import run_frames
from pose_classifier_ros.stream.conversions import message_types
from pose_classifier_ros.stream.frame_processor import FrameProcessor
from pose_classifier_ros.stream.pipeline import Detection, TrackPipeline
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.synthetic.flight import Frame
from pose_classifier_ros.video.decode import DecodeOptions, VideoReader
from pose_classifier_ros.video.encode import VideoEncoder
from pose_classifier_ros.video.sample_video import frame_times
from pose_classifier_ros.video.tracks import Tracks
from pose_classifier_ros.video.video_source import VideoSource

RAW_TOPIC, JPEG_TOPIC = "/camera/image_raw", "/camera/image_raw/compressed"


def write_inputs(folder: Path, width: int, height: int, frames: int, grain: float, rate: float, codec: str):
    """folder/flight.mp4 + its Tracks, folder/raw (rgb8 bag), folder/jpeg (CompressedImage bag): one render."""
    pts = frame_times(frames, rate, vfr=False)
    tracks = Tracks(source="benchmark flight", format="synthetic", width=width, height=height)
    with (
        VideoEncoder(folder / "flight.mp4", width, height, rate, codec=codec, crf=18, gop=30) as video,
        open_writer(folder / "raw") as raw,
        open_writer(folder / "jpeg") as jpeg,
    ):
        for writer, topic, msgtype in ((raw, RAW_TOPIC, "Image"), (jpeg, JPEG_TOPIC, "CompressedImage")):
            writer.add_topic(topic, f"sensor_msgs/msg/{msgtype}")
            writer.add_topic(DETECTIONS_TOPIC, "vision_msgs/msg/Detection2DArray")
        for frame in grainy_flight(width, height, frames, grain, rate):
            frame: Frame
            video.write(frame.image, pts[frame.index])
            types = raw.typestore.types
            raw.write(RAW_TOPIC, frame.stamp_ns, image_msg(types, frame))
            jpeg.write(JPEG_TOPIC, frame.stamp_ns, compressed_msg(jpeg.typestore.types, frame))
            for writer in (raw, jpeg):
                writer.write(DETECTIONS_TOPIC, frame.stamp_ns, detections_msg(writer.typestore.types, frame))
            for g in frame.boxes:
                tracks.add(frame.index, Detection(g.box, g.score, g.track_id, g.species))
    return folder / "flight.mp4", tracks


class _Timed:
    """Wraps a source: seconds spent inside its iterator (reading, pairing, waiting for decoded frames)."""

    def __init__(self, source):
        self.source, self.seconds, self.frames = source, 0.0, 0

    def __iter__(self):
        it = iter(self.source)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - t0
                return
            self.seconds += time.perf_counter() - t0
            self.frames += 1
            yield item


class _StepTimes:
    """Sink: consumer-thread decode and model time per frame from each Step."""

    def __init__(self):
        self.decode_ms = self.model_ms = 0.0

    def on_frame(self, frame, step) -> None:
        self.decode_ms += step.decode_ms
        t = step.result.timings_ms
        self.model_ms += sum(t.get(k, 0.0) for k in ("preprocess", "backbone", "head"))


def run_source(name: str, source, classifier, typestore, decode_stats=None) -> dict:
    pipeline = TrackPipeline(classifier, schedule=ScheduleConfig(mode="every_frame"))
    timed, times = _Timed(source), _StepTimes()
    t0 = time.perf_counter()
    run = run_frames(timed, FrameProcessor(pipeline, message_types(typestore)), sinks=[times])
    wall = time.perf_counter() - t0
    n = max(1, run.stats["frames_processed"])
    crops = run.stats["detections_classified"]
    row = {
        "source": name,
        "frames": run.stats["frames_processed"],
        "crops": crops,
        "wall_s": wall,
        "frames_per_s": n / wall,
        "crops_per_s": crops / wall,
        "source_ms": 1e3 * timed.seconds / n,
        "decode_ms": times.decode_ms / n,
        "model_ms": times.model_ms / n,
        "decode_share": (timed.seconds + times.decode_ms / 1e3) / wall,
    }
    if decode_stats is not None:
        row["decode_thread_ms"] = 1e3 * (decode_stats.decode_s + decode_stats.convert_s) / n
    return row


def decode_4k(folder: Path, frames: int, grain: float, rate: float, codec: str) -> dict:
    path = make_video(folder / "flight_4k.mp4", 3840, 2160, frames, grain, rate, codec)
    out = {}
    for key, convert in (("decode_ms", False), ("decode_rgb_ms", True)):
        reader = VideoReader(path, DecodeOptions(), convert=None if convert else (lambda _: False))
        t0 = time.perf_counter()
        n = sum(1 for _ in reader)
        out[key] = 1e3 * (time.perf_counter() - t0) / max(1, n)
        out["frames"] = n
    return out


def load_classifier(args, folder: Path):
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    checkpoint = args.checkpoint
    if checkpoint is None:  # ViT-S/14 with random weights: the real model's compute, no download
        import torch

        from pose_classifier_ros.model.backbone import build_backbone
        from pose_classifier_ros.model.checkpoint import save_checkpoint
        from pose_classifier_ros.model.head import build_head
        from pose_classifier_ros.model.viewpoint_model import ModelConfig, ViewpointModel

        torch.manual_seed(0)
        size = "test-tiny" if args.quick else "small"
        backbone = build_backbone(size, pretrained=False)
        model = ViewpointModel(backbone, build_head("mlp", backbone.embed_dim)).eval()
        checkpoint = folder / f"{size}.pth"
        save_checkpoint(checkpoint, model, ModelConfig(backbone=size))
    return ViewpointClassifier.from_checkpoint(
        checkpoint, backend=args.backend, batch_size=args.batch_size, num_threads=args.threads
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="1080p frames (each source)")
    parser.add_argument("--frames-4k", type=int, default=60, help="4K frames for the decode-only pass (0: skip)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: ViT-S/14 with random weights")
    parser.add_argument("--backend", default="eager", help="inference backend (eager, auto, onnx-int8, ...)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--grain", type=float, default=4.0, help="film grain sigma")
    parser.add_argument("--codec", default="libx264", help="video encoder (libx264, libx265)")
    parser.add_argument("--quick", action="store_true", help="a short check that it runs (640x360, test-tiny)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    width, height = (640, 360) if args.quick else (1920, 1080)
    frames = 8 if args.quick else args.frames
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"rendering {frames} frames at {width}x{height} as a video and two bags ...", file=sys.stderr)
        video, tracks = write_inputs(folder, width, height, frames, args.grain, 30.0, args.codec)
        classifier = load_classifier(args, folder)
        warm = np.zeros((height, width, 3), np.uint8)
        for _ in range(3):  # first calls pay for allocations and kernel choices
            classifier.predict_frame(warm, np.array([[10, 10, 120, 90]] * 4, np.float32))
        rows = []
        for name, topic in (("bag rgb8", RAW_TOPIC), ("bag jpeg", JPEG_TOPIC)):
            with open_reader(folder / name.split()[1].replace("rgb8", "raw")) as reader:
                source = BagSource(reader, image_topic=topic, detections_topic=DETECTIONS_TOPIC)
                rows.append(run_source(name, source, classifier, reader.typestore))
        source = VideoSource(video, tracks)
        rows.append(run_source(f"video {args.codec}", source, classifier, make_typestore(), source.decode))
        k4 = (
            decode_4k(folder, 4 if args.quick else args.frames_4k, args.grain, 30.0, args.codec)
            if (args.quick or args.frames_4k)
            else None
        )
    print(f"\n{width}x{height}, {frames} frames, backend {args.backend}, {rows[0]['crops']} crops per source")
    print(
        f"{'source':<16}{'frames/s':>9}{'crops/s':>9}{'source ms':>10}{'decode ms':>10}{'model ms':>9}"
        f"{'decode %':>9}{'thread ms':>10}"
    )
    for r in rows:
        thread = f"{r['decode_thread_ms']:10.1f}" if "decode_thread_ms" in r else f"{'':>10}"
        print(
            f"{r['source']:<16}{r['frames_per_s']:9.2f}{r['crops_per_s']:9.1f}{r['source_ms']:10.1f}"
            f"{r['decode_ms']:10.1f}{r['model_ms']:9.1f}{100 * r['decode_share']:8.1f}%{thread}"
        )
    if k4 is not None:
        print(
            f"\n4K (3840x2160 {args.codec}) decode: {k4['decode_ms']:.1f} ms/frame, with RGB conversion "
            f"{k4['decode_rgb_ms']:.1f} ms/frame ({k4['frames']} frames)"
        )
    print("\nper frame; decode %: (source + decode) / wall on the model's thread; thread ms: the decode-ahead thread")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "decode_4k": k4, "args": vars(args)}, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
