"""`pose-classifier make-sample-video OUT_DIR`: the synthetic flight as an MP4 with its track files.

The same renderer as ``make-sample-bag`` (``synthetic.flight``), encoded with PyAV (video.encode: H.264 via
libx264 by default; ``mpeg4`` where a build lacks it; ``--lossless`` bit-exact RGB), with the files a field user would hold beside a video:

  flight.mp4               the video (yuv420p; B-frames; a keyframe every --gop frames)
  flight.xml               CVAT for video 1.1 task export: one track per animal, label = species, a
                           ``viewpoint`` attribute on every box (the true class), every frame written
  flight_mot.txt           MOTChallenge gt layout (frame 1-based, id, x, y, w, h, 1, class, visibility)
  flight_detections.csv    the package's detections CSV (frame_index 0-based, score, class_id, viewpoint)
  ground_truth.csv         frame_index,track_id,pose (reads with replay.ground_truth.load_ground_truth_csv)

--vfr gives irregular frame durations (0.5-1.5 x the nominal period); --frame-code draws each frame's
index as a block code (``synthetic.frame_code``) with its own track "100", label "frame-code", for
frame-accuracy checks. Frame `--empty-frame` shows ground only, as in the bag.
"""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.synthetic.flight import FlightConfig, add_flight_arguments, flight_config, generate_flight
from pose_classifier_ros.synthetic.frame_code import code_position, draw_frame_code
from pose_classifier_ros.video.cvat import write_cvat_video
from pose_classifier_ros.video.detections_csv import write_detections_csv
from pose_classifier_ros.video.encode import TIME_BASE, VideoEncoder
from pose_classifier_ros.video.mot import write_mot
from pose_classifier_ros.video.tracks import Tracks

_logger = logging.getLogger(__name__)

FRAME_CODE_TRACK = "100"
FRAME_CODE_LABEL = "frame-code"


@dataclass
class SampleVideo:
    """What write_flight_video wrote. pts: each frame's presentation time in TIME_BASE ticks; times_s:
    the same in seconds; tracks: the boxes written (frame index -> detections, attribute "viewpoint")."""

    video: Path
    cvat: Path
    mot: Path
    detections: Path
    ground_truth: Path
    codec: str
    pts: list[int] = field(default_factory=list)
    tracks: Tracks = field(default_factory=Tracks)

    @property
    def times_s(self) -> list[float]:
        return [float(p * TIME_BASE) for p in self.pts]


def frame_times(frames: int, rate_hz: float, vfr: bool, seed: int = 0) -> list[int]:
    """Presentation times in TIME_BASE ticks: regular, or irregular (0.5-1.5 periods) with `vfr`."""
    period = 1 / (rate_hz * TIME_BASE)  # ticks per frame, Fraction
    if not vfr:
        return [int(round(k * period)) for k in range(frames)]
    steps = np.random.default_rng(seed + 7).uniform(0.5, 1.5, max(0, frames - 1))
    return [0] + [int(round(float(t))) for t in np.cumsum(steps * float(period))]


def write_flight_video(
    out_dir: str | Path,
    cfg: FlightConfig,
    *,
    codec: str = "libx264",
    crf: int = 18,
    gop: int = 12,
    vfr: bool = False,
    frame_code: bool = False,
    lossless: bool = False,
    faststart: bool = False,
    progress: bool = True,
) -> SampleVideo:
    """Render the synthetic flight, encode it and write its track and ground-truth files (module docstring).
    lossless: bit-exact RGB (video.encode; the frames decode to exactly the pixels the bag holds); faststart:
    the MP4 index at the front, as cameras write it (a truncated copy still opens)."""
    from tqdm import tqdm

    out = Path(out_dir)
    pts = frame_times(cfg.frames, cfg.rate_hz, vfr, cfg.seed)
    tracks = Tracks(source="synthetic flight", format="synthetic", width=cfg.width, height=cfg.height)
    truth_rows = []
    with VideoEncoder(
        out / "flight.mp4", cfg.width, cfg.height, cfg.rate_hz, codec, crf, gop, faststart, lossless
    ) as encoder:
        frames = generate_flight(cfg)
        for frame in tqdm(frames, total=cfg.frames, desc="encoding flight", unit="frame", disable=not progress):
            image = frame.image
            if frame_code:
                x, y = code_position(frame.index, cfg.width, cfg.height)
                box = draw_frame_code(image, frame.index, x, y)
                tracks.add(frame.index, Detection(box, 1.0, FRAME_CODE_TRACK, FRAME_CODE_LABEL))
                tracks.labels[FRAME_CODE_TRACK] = FRAME_CODE_LABEL
            for g in frame.boxes:
                det = Detection(g.box, g.score, g.track_id, g.species)
                tracks.add(frame.index, det, attributes={"viewpoint": VIEWPOINTS[g.label]})
                tracks.labels[g.track_id] = g.species
                truth_rows.append((frame.index, g.track_id, VIEWPOINTS[g.label]))
            encoder.write(image, pts[frame.index])
        used_codec = encoder.codec
    sample = SampleVideo(
        video=out / "flight.mp4",
        cvat=out / "flight.xml",
        mot=out / "flight_mot.txt",
        detections=out / "flight_detections.csv",
        ground_truth=out / "ground_truth.csv",
        codec=used_codec,
        pts=pts,
        tracks=tracks,
    )
    write_cvat_video(
        sample.cvat,
        tracks,
        num_frames=cfg.frames,
        width=cfg.width,
        height=cfg.height,
        name="synthetic flight",
        source=sample.video.name,
        select_values={"viewpoint": VIEWPOINTS},
    )
    write_mot(sample.mot, tracks, kind="gt")
    write_detections_csv(sample.detections, tracks, attributes=("viewpoint",))
    with sample.ground_truth.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame_index", "track_id", "pose"])
        writer.writerows(truth_rows)
    return sample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="output directory (receives flight.mp4 and its track files)")
    add_flight_arguments(parser, even=True)
    parser.add_argument("--codec", default="libx264", help="encoder (libx264, mpeg4, libx265, ...)")
    parser.add_argument("--crf", type=int, default=18, help="libx264/libx265 quality (lower = better, larger)")
    parser.add_argument("--gop", type=int, default=12, help="frames between keyframes")
    parser.add_argument("--vfr", action="store_true", help="irregular frame durations (variable frame rate)")
    parser.add_argument("--frame-code", action="store_true", help="draw each frame's index as a block code (track 100)")
    parser.add_argument(
        "--lossless", action="store_true", help="bit-exact RGB (libx264rgb, qp 0): the same pixels as the bag"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = flight_config(args, even=True)
    except ValueError as exc:
        _logger.error("%s", exc)
        return 2
    sample = write_flight_video(
        args.out_dir,
        cfg,
        codec=args.codec,
        crf=args.crf,
        gop=args.gop,
        vfr=args.vfr,
        frame_code=args.frame_code,
        lossless=args.lossless,
        progress=not args.no_progress,
    )
    print(
        f"wrote {sample.video} ({cfg.frames} frames, {sample.codec}, {sample.tracks.num_boxes} boxes) with "
        f"{sample.cvat.name}, {sample.mot.name}, {sample.detections.name} and {sample.ground_truth.name}"
    )
    return 0


__all__ = [
    "FRAME_CODE_LABEL",
    "FRAME_CODE_TRACK",
    "SampleVideo",
    "add_arguments",
    "frame_times",
    "run",
    "write_flight_video",
]
