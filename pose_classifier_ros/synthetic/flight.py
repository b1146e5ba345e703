"""A synthetic drone flight: a herd of turning animals under a slowly panning camera, with ground truth.

Frame `empty_frame` shows ground only, and one animal starts partly outside the frame (its box is
clipped to the image, as a detector's would be).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import numpy as np

from pose_classifier_ros.synthetic.animals import Animal, heading_to_class, make_ground, render_animal

START_NS = 1_700_000_000_000_000_000  # stamp of frame 0, ns


@dataclass
class FlightConfig:
    width: int = 1280
    height: int = 720
    frames: int = 60
    rate_hz: float = 10.0
    seed: int = 0
    empty_frame: int = 0  # index of the frame that shows ground only (-1: none)
    elevation_deg: float = 40.0  # camera elevation above the ground plane
    pan_px_per_s: float = 12.0  # the drone drifts right: the scene scrolls left


def add_flight_arguments(parser: argparse.ArgumentParser, *, even: bool = False) -> None:
    """The flight options every sample writer takes (make-sample-bag, make-sample-video); even: sizes must
    be even (video encoders)."""
    parity = " (even)" if even else ""
    parser.add_argument("--frames", type=int, default=60, help="number of camera frames")
    parser.add_argument("--rate", type=float, default=10.0, help="camera frame rate, Hz")
    parser.add_argument("--width", type=int, default=1280, help=f"image width, px{parity}")
    parser.add_argument("--height", type=int, default=720, help=f"image height, px{parity}")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same flight in a bag or a video)")
    parser.add_argument("--empty-frame", type=int, default=0, help="index of the frame with no animals (-1: none)")


def flight_config(args: argparse.Namespace, *, even: bool = False) -> FlightConfig:
    """FlightConfig of add_flight_arguments' options; ValueError naming the rule a value breaks."""
    odd = even and (args.width % 2 or args.height % 2)
    if args.frames < 1 or args.width < 64 or args.height < 64 or args.rate <= 0 or odd:
        size = "even --width/--height" if even else "--width/--height"
        raise ValueError(f"need --frames >= 1, {size} >= 64 and --rate > 0")
    return FlightConfig(
        width=args.width,
        height=args.height,
        frames=args.frames,
        rate_hz=args.rate,
        seed=args.seed,
        empty_frame=args.empty_frame,
    )


@dataclass
class GroundTruthBox:
    track_id: str
    species: str
    box: np.ndarray  # (4,) float32 xyxy pixels, the detector's (jittered) box
    score: float
    label: int  # true class index
    heading_deg: float


@dataclass
class Frame:
    index: int
    stamp_ns: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: list[GroundTruthBox] = field(default_factory=list)


def _herd(cfg: FlightConfig, rng: np.random.Generator) -> list[dict]:
    """Initial state of the animals: positions spread over the frame, varied turn rates."""
    w, h = cfg.width, cfg.height
    base = min(w, h) / 720.0
    herd = [
        dict(species="zebra", x=0.22 * w, y=0.62 * h, heading=0.0, turn=75.0, speed=0.4, scale=58 * base),
        dict(species="giraffe", x=0.5 * w, y=0.78 * h, heading=200.0, turn=-60.0, speed=0.3, scale=40 * base),
        dict(species="zebra", x=0.72 * w, y=0.45 * h, heading=100.0, turn=45.0, speed=0.3, scale=50 * base),
        # starts partly outside the right edge; the leftward scroll brings it in
        dict(species="zebra", x=w + 25 * base, y=0.8 * h, heading=260.0, turn=-35.0, speed=0.2, scale=62 * base),
    ]
    for i, a in enumerate(herd):
        a["heading"] += float(rng.uniform(-10, 10))
        a["track_id"] = str(i + 1)
        a["seed"] = int(rng.integers(0, 1000))
    return herd


def generate_flight(cfg: FlightConfig):
    """Yield `Frame`s of the synthetic flight (deterministic for a given config)."""
    rng = np.random.default_rng(cfg.seed)
    duration_s = cfg.frames / cfg.rate_hz
    margin = int(cfg.pan_px_per_s * duration_s) + 8
    ground = make_ground(cfg.height, cfg.width + margin, rng)
    herd = _herd(cfg, rng)
    dt_ns = int(round(1e9 / cfg.rate_hz))
    for index in range(cfg.frames):
        t = index / cfg.rate_hz
        pan = cfg.pan_px_per_s * t
        offset = int(round(pan))
        image = np.ascontiguousarray(ground[:, offset : offset + cfg.width])
        frame = Frame(index, START_NS + index * dt_ns, image)
        if index != cfg.empty_frame:
            animals = []
            for a in herd:
                heading = (a["heading"] + a["turn"] * t) % 360.0
                # each animal walks slowly along its mean heading; farther ones (small y) drawn first
                hr = math.radians(a["heading"] + a["turn"] * t / 2)
                dist = a["speed"] * t * a["scale"]
                x = a["x"] - pan - math.sin(hr) * dist
                y = a["y"] + math.cos(hr) * dist * math.sin(math.radians(cfg.elevation_deg))
                animals.append((y, a, Animal(a["species"], x, y, heading, a["scale"], a["seed"])))
            for _, a, animal in sorted(animals, key=lambda item: item[0]):
                box = render_animal(image, animal, cfg.elevation_deg)
                if box is None or min(box[2] - box[0], box[3] - box[1]) < 8:
                    continue
                # a detector's box: a few pixels of noise, clipped to the image
                jitter = rng.normal(0, 0.02, 4) * np.array([box[2] - box[0], box[3] - box[1]] * 2)
                noisy = np.clip(box + jitter, 0, [cfg.width, cfg.height, cfg.width, cfg.height])
                frame.boxes.append(
                    GroundTruthBox(
                        a["track_id"],
                        a["species"],
                        noisy.astype(np.float32),
                        float(rng.uniform(0.55, 0.98)),
                        heading_to_class(animal.heading_deg),
                        animal.heading_deg,
                    )
                )
            # keep the detector's order stable (by track id), as a tracker would
            frame.boxes.sort(key=lambda g: int(g.track_id))
        yield frame


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
