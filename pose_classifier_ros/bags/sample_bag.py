"""`pose-classifier make-sample-bag OUT_DIR`: a synthetic drone flight with ground-truth viewpoints.

No animal photos with viewpoint labels ship with any package here, so the demo and the tests use a
small renderer: striped (zebra-like) and patched (giraffe-like) animals built from shaded spheres,
seen obliquely from above with a z-buffer, on a textured, slowly scrolling savannah. The viewpoint is
visible: the head leads the body in the facing direction, "left" and "right" are mirror images, a
front view shows the face over the chest, a back view the tail over the rump.

Headings follow labels.py: degrees counter-clockwise from "facing the camera" (0 front, 90 facing
image-left, 180 back, 270 facing image-right); the ground-truth class is the nearest of the 8 bins.

Outputs (OUT_DIR):
  flight/              rosbag2 (MCAP by default; --storage sqlite3) with
      /camera/image_raw             sensor_msgs/msg/Image, rgb8, frame_id "camera_optical_frame"
      /camera/image_raw/compressed  sensor_msgs/msg/CompressedImage, jpeg (only with --compressed)
      /detections                   vision_msgs/msg/Detection2DArray: header stamp == image stamp,
                                    Detection2D.id = track id, hypothesis class_id = species + score;
                                    recorded 30 ms after the image (detector latency)
      /ground_truth/viewpoints      pose_classifier_ros/msg/ViewpointArray: true class in `label` and
                                    `smoothed_label`, one-hot `scores`, same header/boxes as /detections
  ground_truth.csv     stamp_ns,frame_index,track_id,pose   (one row per detection)
  crops/<class>/*.png  with --crops-dir: a labelled folder-per-class training set (same renderer,
                       random scales, positions, backgrounds and camera elevations)

Frame `--empty-frame` (default 0) shows ground only (an empty Detection2DArray), and one animal
starts partly outside the frame (its box is clipped to the image, as a detector's would be).
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from pose_classifier_ros.labels import HEADING_DEG, VIEWPOINTS, heading_from_probs

_logger = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
DETECTIONS_TOPIC = "/detections"
GROUND_TRUTH_TOPIC = "/ground_truth/viewpoints"
FRAME_ID = "camera_optical_frame"
START_NS = 1_700_000_000_000_000_000
DETECTOR_LATENCY_NS = 30_000_000
SPECIES = ("zebra", "giraffe")


def heading_to_class(heading_deg: float) -> int:
    """Index of the viewpoint class whose nominal heading is nearest to ``heading_deg``."""
    diff = np.abs((np.asarray(HEADING_DEG) - heading_deg + 180.0) % 360.0 - 180.0)
    return int(np.argmin(diff))


# ---------------------------------------------------------------------------------------------
# Animal models: spheres in the animal's frame (u forward, v up, w lateral), in metres.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sphere:
    u: float
    v: float
    w: float
    r: float
    part: str  # body, leg, neck, head, muzzle, ear, eye, horn, tail, tuft, hoof


def _chain(a, b, r0, r1, n, part) -> list[Sphere]:
    return [Sphere(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t,
                   r0 + (r1 - r0) * t, part) for t in np.linspace(0.0, 1.0, n)]


def _quadruped(body_v, body_len, body_r, leg_w, neck_a, neck_b, neck_r, head, muzzle, tail_a, tail_b,
               horn: bool) -> tuple[Sphere, ...]:
    s: list[Sphere] = []
    s += _chain((-body_len / 2, body_v, 0), (body_len / 2, body_v + 0.05, 0), body_r * 0.92, body_r, 9, "body")
    for du in (-body_len / 2 + 0.1, body_len / 2 - 0.1):
        for dw in (-leg_w, leg_w):
            s += _chain((du, body_v - body_r * 0.5, dw), (du, 0.12, dw), 0.1, 0.07, 8, "leg")
            s.append(Sphere(du, 0.06, dw, 0.075, "hoof"))
    s += _chain(neck_a, neck_b, neck_r, neck_r * 0.75, 7, "neck")
    hu, hv = head
    s.append(Sphere(hu, hv, 0, 0.17, "head"))
    s += _chain((hu + 0.08, hv - 0.03, 0), (muzzle[0], muzzle[1], 0), 0.13, 0.1, 4, "muzzle")
    for dw in (-0.09, 0.09):
        s.append(Sphere(hu - 0.05, hv + 0.17, dw, 0.06, "ear"))
        s.append(Sphere(hu + 0.06, hv + 0.04, dw * 1.55, 0.04, "eye"))
        if horn:
            s.append(Sphere(hu - 0.02, hv + 0.22, dw * 0.6, 0.05, "horn"))
    s += _chain(tail_a, tail_b, 0.05, 0.035, 6, "tail")
    s.append(Sphere(tail_b[0], tail_b[1] - 0.05, 0, 0.08, "tuft"))
    return tuple(s)


MODELS: dict[str, tuple[Sphere, ...]] = {
    "zebra": _quadruped(body_v=1.0, body_len=1.5, body_r=0.36, leg_w=0.17, neck_a=(0.72, 1.12, 0),
                        neck_b=(1.02, 1.55, 0), neck_r=0.2, head=(1.12, 1.6), muzzle=(1.42, 1.34),
                        tail_a=(-0.95, 1.12, 0), tail_b=(-1.1, 0.62, 0), horn=False),
    "giraffe": _quadruped(body_v=1.75, body_len=1.3, body_r=0.4, leg_w=0.2, neck_a=(0.6, 2.0, 0),
                          neck_b=(1.1, 3.25, 0), neck_r=0.19, head=(1.2, 3.35), muzzle=(1.5, 3.15),
                          tail_a=(-0.82, 1.85, 0), tail_b=(-0.95, 1.1, 0), horn=True),
}


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) per integer cell."""
    h = (ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2147483647) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return (h & 0xFFFF) / 65536.0


def _albedo(species: str, part: str, u, v, w, seed: int) -> np.ndarray:
    """(M, 3) float RGB in 0..1 of surface points (u, v, w) of one part."""
    n = u.shape[0]
    if species == "zebra":
        if part in ("eye", "hoof", "tuft", "muzzle"):
            return np.tile([0.06, 0.05, 0.05], (n, 1))
        if part == "ear":
            return np.tile([0.85, 0.85, 0.82], (n, 1))
        # Stripes wrap around the body and neck, ring the legs; phase varies per animal.
        coord = {"leg": v * 7.0, "neck": v * 5.0 + u * 2.5}.get(part, u * 3.6 + v * 1.4)
        stripe = np.sin(2 * np.pi * coord + 0.6 * np.sin(4.0 * w) + seed % 7) > 0.1
        white = np.array([0.93, 0.92, 0.88])
        black = np.array([0.07, 0.07, 0.08])
        return np.where(stripe[:, None], black, white)
    # giraffe: brown polygons separated by cream lines
    if part in ("eye", "hoof", "tuft", "horn"):
        return np.tile([0.12, 0.08, 0.05], (n, 1))
    if part in ("muzzle", "ear"):
        return np.tile([0.9, 0.82, 0.64], (n, 1))
    scale = 4.5 if part != "leg" else 7.0
    px, py = (u + 0.7 * w) * scale, v * scale
    ix, iy = np.floor(px), np.floor(py)
    best = np.full(n, 9.0)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx, cy = ix + dx, iy + dy
            jx = cx + 0.2 + 0.6 * _hash2(cx, cy, seed)
            jy = cy + 0.2 + 0.6 * _hash2(cy, cx, seed + 1)
            best = np.minimum(best, np.hypot(px - jx, py - jy))
    brown = np.array([0.58, 0.33, 0.12])
    cream = np.array([0.94, 0.86, 0.66])
    return np.where((best < 0.42)[:, None], brown, cream)


@dataclass
class Animal:
    """One animal to draw: ground point (x, y) in image pixels, pixels per metre, heading in degrees."""
    species: str
    x: float
    y: float
    heading_deg: float
    scale: float
    seed: int = 0


def render_animal(image: np.ndarray, animal: Animal, elevation_deg: float = 40.0,
                  shadow: bool = True) -> np.ndarray | None:
    """Draw ``animal`` into ``image`` ((H, W, 3) uint8, in place), z-buffered and Lambert-shaded.

    Returns the visible box ``(4,) float32 xyxy`` pixels (clipped to the image; x2/y2 exclusive),
    or None when no pixel of the animal is inside the image.
    """
    height, width = image.shape[:2]
    h = math.radians(animal.heading_deg)
    e = math.radians(elevation_deg)
    # World: x image-right, y up, z away from the camera. Forward f for heading 0 faces the camera.
    fwd = np.array([-math.sin(h), 0.0, -math.cos(h)])
    lat = np.array([-math.cos(h), 0.0, math.sin(h)])
    up = np.array([0.0, 1.0, 0.0])
    view = np.array([0.0, -math.sin(e), math.cos(e)])      # camera looks forward and down
    screen_up = np.array([0.0, math.cos(e), math.sin(e)])
    right = np.array([1.0, 0.0, 0.0])
    light = np.array([0.35, 0.85, -0.4])
    light /= np.linalg.norm(light)
    k = animal.scale

    spheres = MODELS[animal.species]
    centers = np.array([[s.u, s.v, s.w] for s in spheres]) @ np.stack([fwd, up, lat])
    radii = np.array([s.r for s in spheres])
    sx = animal.x + k * centers @ right
    sy = animal.y - k * centers @ screen_up
    x0 = int(max(0, math.floor((sx - k * radii).min())))
    x1 = int(min(width, math.ceil((sx + k * radii).max()) + 1))
    y0 = int(max(0, math.floor((sy - k * radii).min())))
    y1 = int(min(height, math.ceil((sy + k * radii).max()) + 1))

    if shadow:  # soft dark ellipse on the ground under the body (drawn before the animal)
        length = 1.6 * k * (abs(math.sin(h)) + 0.45 * abs(math.cos(h)) * math.sin(e) + 0.3)
        _shade_ellipse(image, animal.x, animal.y, length / 2, 0.35 * k * (1 + math.sin(e)), 0.55)
    if x0 >= x1 or y0 >= y1:
        return None

    depth = np.full((y1 - y0, x1 - x0), np.inf)
    color = np.zeros((y1 - y0, x1 - x0, 3))
    for s, c, r, cx, cy in zip(spheres, centers, radii, sx, sy):
        rp = k * r
        wx0, wx1 = max(x0, int(cx - rp)), min(x1, int(cx + rp) + 2)
        wy0, wy1 = max(y0, int(cy - rp)), min(y1, int(cy + rp) + 2)
        if wx0 >= wx1 or wy0 >= wy1:
            continue
        gy, gx = np.mgrid[wy0:wy1, wx0:wx1]
        a = (gx + 0.5 - cx) / k
        b = -(gy + 0.5 - cy) / k
        inside = a * a + b * b < r * r
        if not inside.any():
            continue
        a, b = a[inside], b[inside]
        dz = np.sqrt(r * r - a * a - b * b)
        points = c + a[:, None] * right + b[:, None] * screen_up - dz[:, None] * view
        z = points @ view
        iy, ix = gy[inside] - y0, gx[inside] - x0
        nearer = z < depth[iy, ix]
        if not nearer.any():
            continue
        points, z, iy, ix = points[nearer], z[nearer], iy[nearer], ix[nearer]
        normal = (points - c) / r
        shade = 0.42 + 0.58 * np.clip(normal @ light, 0.0, 1.0)
        albedo = _albedo(animal.species, s.part, points @ fwd, points @ up, points @ lat, animal.seed)
        depth[iy, ix] = z
        color[iy, ix] = albedo * shade[:, None]
    mask = np.isfinite(depth)
    if not mask.any():
        return None
    region = image[y0:y1, x0:x1]
    region[mask] = np.clip(color[mask] * 255.0, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    return np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], np.float32)


def _shade_ellipse(image, cx, cy, rx, ry, strength):
    height, width = image.shape[:2]
    xa, xb = max(0, int(cx - rx)), min(width, int(cx + rx) + 1)
    ya, yb = max(0, int(cy - ry)), min(height, int(cy + ry) + 1)
    if xa >= xb or ya >= yb:
        return
    gy, gx = np.mgrid[ya:yb, xa:xb]
    d = ((gx - cx) / max(rx, 1)) ** 2 + ((gy - cy) / max(ry, 1)) ** 2
    factor = 1.0 - strength * np.clip(1.0 - d, 0.0, 1.0) ** 0.5
    image[ya:yb, xa:xb] = (image[ya:yb, xa:xb] * factor[..., None]).astype(np.uint8)


def make_ground(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 savannah: dry grass with green patches, speckle and a few dark bushes."""
    def noise(cells):
        small = rng.random((max(2, height // cells), max(2, width // cells))).astype(np.float32)
        return np.asarray(PILImage.fromarray(small, mode="F").resize((width, height), PILImage.BICUBIC))
    low = np.clip(0.6 * noise(90) + 0.4 * noise(30), 0, 1)[..., None]
    dry = np.array([176, 154, 98], np.float32)
    green = np.array([112, 128, 66], np.float32)
    img = dry * (1 - low) + green * low
    img *= (0.88 + 0.12 * noise(4))[..., None]
    img += rng.normal(0, 7, (height, width, 1)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(max(1, height * width // 60000)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(8, 26)
        _shade_ellipse(img, cx + r * 0.3, cy + r * 0.4, r * 1.1, r * 0.6, 0.4)
        xa, xb = max(0, int(cx - r)), min(width, int(cx + r) + 1)
        ya, yb = max(0, int(cy - r)), min(height, int(cy + r) + 1)
        if xa < xb and ya < yb:
            gy, gx = np.mgrid[ya:yb, xa:xb]
            blob = (gx - cx) ** 2 + (gy - cy) ** 2 < r * r * (0.7 + 0.3 * rng.random(gx.shape))
            img[ya:yb, xa:xb][blob] = (np.array([58, 82, 40]) * rng.uniform(0.7, 1.1)).astype(np.uint8)
    return img


# ---------------------------------------------------------------------------------------------
# The flight
# ---------------------------------------------------------------------------------------------
@dataclass
class FlightConfig:
    width: int = 1280
    height: int = 720
    frames: int = 60
    rate_hz: float = 10.0
    seed: int = 0
    empty_frame: int = 0        # index of the frame that shows ground only (-1: none)
    elevation_deg: float = 40.0  # camera elevation above the ground plane
    pan_px_per_s: float = 12.0   # the drone drifts right: the scene scrolls left


@dataclass
class GroundTruthBox:
    track_id: str
    species: str
    box: np.ndarray   # (4,) float32 xyxy pixels, the detector's (jittered) box
    score: float
    label: int        # true class index
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
        image = np.ascontiguousarray(ground[:, offset:offset + cfg.width])
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
                frame.boxes.append(GroundTruthBox(a["track_id"], a["species"], noisy.astype(np.float32),
                                                  float(rng.uniform(0.55, 0.98)),
                                                  heading_to_class(animal.heading_deg), animal.heading_deg))
            # keep the detector's order stable (by track id), as a tracker would
            frame.boxes.sort(key=lambda g: int(g.track_id))
        yield frame


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
def _header(types, stamp_ns: int):
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id=FRAME_ID)


def _bbox(types, box: np.ndarray):
    x1, y1, x2, y2 = (float(v) for v in box)
    center = types["vision_msgs/msg/Pose2D"](position=types["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2),
                                             theta=0.0)
    return types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=x2 - x1, size_y=y2 - y1)


def image_msg(types, frame: Frame):
    h, w = frame.image.shape[:2]
    return types["sensor_msgs/msg/Image"](header=_header(types, frame.stamp_ns), height=h, width=w, encoding="rgb8",
                                          is_bigendian=0, step=w * 3, data=frame.image.reshape(-1).copy())


def compressed_msg(types, frame: Frame, quality: int = 90):
    from pose_classifier_ros.stream.image_codec import encode_compressed

    data = encode_compressed(frame.image, "jpeg", quality)
    # image_transport's format string: original encoding; codec (the JPEG decodes to RGB anywhere)
    return types["sensor_msgs/msg/CompressedImage"](header=_header(types, frame.stamp_ns),
                                                    format="rgb8; jpeg compressed bgr8",
                                                    data=np.frombuffer(data, np.uint8))


def detections_msg(types, frame: Frame):
    geo = types
    detections = []
    for g in frame.boxes:
        pose = geo["geometry_msgs/msg/PoseWithCovariance"](
            pose=geo["geometry_msgs/msg/Pose"](position=geo["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                               orientation=geo["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36, np.float64))
        hyp = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id=g.species, score=g.score), pose=pose)
        detections.append(types["vision_msgs/msg/Detection2D"](header=_header(types, frame.stamp_ns), results=[hyp],
                                                               bbox=_bbox(types, g.box), id=g.track_id))
    return types["vision_msgs/msg/Detection2DArray"](header=_header(types, frame.stamp_ns), detections=detections)


def ground_truth_msg(types, frame: Frame):
    from pose_classifier_ros.stream.conversions import make_viewpoint, message_types

    msg_types = message_types(types)
    h, w = frame.image.shape[:2]
    viewpoints = []
    for g in frame.boxes:
        scores = np.zeros(len(VIEWPOINTS), np.float32)
        scores[g.label] = 1.0
        heading, _ = heading_from_probs(scores)
        viewpoints.append(make_viewpoint(
            msg_types, track_id=g.track_id, box=g.box, detection_score=g.score, label=g.label,
            label_name=VIEWPOINTS[g.label], scores=scores, smoothed_label=g.label,
            smoothed_label_name=VIEWPOINTS[g.label], smoothed_confidence=1.0, num_votes=1, is_stable=True,
            label_stamp=msg_types.Time(sec=frame.stamp_ns // 1_000_000_000, nanosec=frame.stamp_ns % 1_000_000_000),
            fresh=True, voted=True, heading_deg=float(heading), heading_spread_deg=0.0,
            track_heading_deg=float(heading), track_heading_spread_deg=0.0))
    return types["pose_classifier_ros/msg/ViewpointArray"](header=_header(types, frame.stamp_ns), image_width=w,
                                                           image_height=h, viewpoints=viewpoints)


def write_flight_bag(out_dir: Path, cfg: FlightConfig, storage: str = "mcap", compressed: bool = False,
                     progress: bool = True) -> dict:
    """Write OUT_DIR/flight (bag) and OUT_DIR/ground_truth.csv; returns a summary dict."""
    from tqdm import tqdm

    from pose_classifier_ros.bags.bagio import open_writer

    out_dir.mkdir(parents=True, exist_ok=True)
    bag_path = out_dir / "flight"
    csv_path = out_dir / "ground_truth.csv"
    n_boxes = 0
    with open_writer(bag_path, storage=storage) as writer, csv_path.open("w", newline="") as fh:
        types = writer.typestore.types
        writer.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
        if compressed:
            writer.add_topic(COMPRESSED_TOPIC, "sensor_msgs/msg/CompressedImage")
        writer.add_topic(DETECTIONS_TOPIC, "vision_msgs/msg/Detection2DArray")
        writer.add_topic(GROUND_TRUTH_TOPIC, "pose_classifier_ros/msg/ViewpointArray")
        rows = csv.writer(fh)
        rows.writerow(["stamp_ns", "frame_index", "track_id", "pose"])
        for frame in tqdm(generate_flight(cfg), total=cfg.frames, desc="rendering flight", unit="frame",
                          disable=not progress):
            writer.write(IMAGE_TOPIC, frame.stamp_ns, image_msg(types, frame))
            if compressed:
                writer.write(COMPRESSED_TOPIC, frame.stamp_ns, compressed_msg(types, frame))
            writer.write(DETECTIONS_TOPIC, frame.stamp_ns + DETECTOR_LATENCY_NS, detections_msg(types, frame))
            writer.write(GROUND_TRUTH_TOPIC, frame.stamp_ns + DETECTOR_LATENCY_NS, ground_truth_msg(types, frame))
            for g in frame.boxes:
                rows.writerow([frame.stamp_ns, frame.index, g.track_id, VIEWPOINTS[g.label]])
                n_boxes += 1
    return {"bag": str(bag_path), "ground_truth": str(csv_path), "frames": cfg.frames, "boxes": n_boxes}


# ---------------------------------------------------------------------------------------------
# Labelled crops for training a demo head
# ---------------------------------------------------------------------------------------------
def render_crop(label: int, rng: np.random.Generator, size: int = 200) -> np.ndarray:
    """One labelled training crop (H, W, 3) uint8: an animal of class ``label`` on a random background."""
    ground = make_ground(size, size, rng)
    species = SPECIES[int(rng.integers(0, len(SPECIES)))]
    heading = HEADING_DEG[label] + rng.uniform(-17.0, 17.0)
    scale = rng.uniform(0.16, 0.26) * size / (1.0 if species == "zebra" else 1.4)
    elevation = rng.uniform(28.0, 55.0)
    animal = Animal(species, size / 2 + rng.uniform(-0.1, 0.1) * size,
                    size * (0.62 if species == "zebra" else 0.78) + rng.uniform(-0.05, 0.05) * size,
                    heading, scale, int(rng.integers(0, 1000)))
    box = render_animal(ground, animal, elevation)
    assert box is not None
    pad = rng.uniform(0.03, 0.15)
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1, y1 = int(max(0, box[0] - pad * bw)), int(max(0, box[1] - pad * bh))
    x2, y2 = int(min(size, box[2] + pad * bw)), int(min(size, box[3] + pad * bh))
    crop = ground[y1:y2, x1:x2]
    gain = rng.uniform(0.8, 1.15)  # lighting variation
    return np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def write_crops(crops_dir: Path, per_class: int, seed: int = 0, progress: bool = True) -> int:
    """Write ``per_class`` PNG crops into ``crops_dir/<class name>/``; returns the number written."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed + 1_000_003)
    total = 0
    with tqdm(total=per_class * len(VIEWPOINTS), desc="rendering crops", unit="crop", disable=not progress) as bar:
        for label, name in enumerate(VIEWPOINTS):
            (crops_dir / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                PILImage.fromarray(render_crop(label, rng)).save(crops_dir / name / f"{name}_{i:04d}.png")
                total += 1
                bar.update()
    return total


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="output directory (receives flight/ and ground_truth.csv)")
    parser.add_argument("--frames", type=int, default=60, help="number of camera frames")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz")
    parser.add_argument("--width", type=int, default=1280, help="image width, px")
    parser.add_argument("--height", type=int, default=720, help="image height, px")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bag)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage")
    parser.add_argument("--compressed", action="store_true", help=f"also write {COMPRESSED_TOPIC} (JPEG)")
    parser.add_argument("--empty-frame", type=int, default=0, help="index of the frame with no animals (-1: none)")
    parser.add_argument("--crops-dir", type=Path, default=None, help="also write a labelled folder-per-class crop set here")
    parser.add_argument("--crops-per-class", type=int, default=40, help="crops per class for --crops-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.bags.bagio import BagError

    if args.frames < 1 or args.width < 64 or args.height < 64 or args.rate <= 0:
        _logger.error("need --frames >= 1, --width/--height >= 64 and --rate > 0")
        return 2
    cfg = FlightConfig(width=args.width, height=args.height, frames=args.frames, rate_hz=args.rate,
                       seed=args.seed, empty_frame=args.empty_frame)
    try:
        summary = write_flight_bag(args.out_dir, cfg, storage=args.storage, compressed=args.compressed,
                                   progress=not args.no_progress)
    except BagError as exc:
        _logger.error("%s", exc)
        return 1
    print(f"wrote {summary['bag']} ({summary['frames']} frames, {summary['boxes']} detections, {args.storage}) "
          f"and {summary['ground_truth']}")
    if args.crops_dir is not None:
        n = write_crops(args.crops_dir, args.crops_per_class, seed=args.seed, progress=not args.no_progress)
        print(f"wrote {n} labelled crops into {args.crops_dir}/<class>/")
    return 0
