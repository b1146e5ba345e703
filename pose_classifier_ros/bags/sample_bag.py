"""`pose-classifier make-sample-bag OUT_DIR`: a synthetic drone flight with ground-truth viewpoints.

No animal photos with viewpoint labels ship with any package here, so the demo and the tests use a
small renderer: striped (zebra-like) and patched (giraffe-like) animals built from shaded spheres,
seen obliquely from above with a z-buffer, on a textured, slowly scrolling savannah. The viewpoint is
visible: the head leads the body in the facing direction, "left" and "right" are mirror images, a
front view shows the face over the chest, a back view the tail over the rump.

The renderer, the flight and the crops live in pose_classifier_ros.synthetic; this module writes them
as a rosbag2 with ground truth. Headings follow labels.py; the ground-truth class is the nearest bin.

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
from pathlib import Path

import numpy as np

from pose_classifier_ros.labels import VIEWPOINTS, heading_from_probs, label_name
from pose_classifier_ros.stream.conversions import box_to_bbox, make_viewpoint, message_types, ns_to_stamp
from pose_classifier_ros.synthetic.animals import SPECIES, Animal, heading_to_class, render_animal
from pose_classifier_ros.synthetic.crops import render_crop, write_crops
from pose_classifier_ros.synthetic.flight import (
    START_NS,
    FlightConfig,
    Frame,
    GroundTruthBox,
    add_flight_arguments,
    flight_config,
    generate_flight,
)

_logger = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
DETECTIONS_TOPIC = "/detections"
GROUND_TRUTH_TOPIC = "/ground_truth/viewpoints"
FRAME_ID = "camera_optical_frame"
DETECTOR_LATENCY_NS = 30_000_000


def _header(types, stamp_ns: int):
    return types["std_msgs/msg/Header"](
        stamp=ns_to_stamp(stamp_ns, types["builtin_interfaces/msg/Time"]),
        frame_id=FRAME_ID,
    )


def image_msg(types, frame: Frame):
    h, w = frame.image.shape[:2]
    return types["sensor_msgs/msg/Image"](
        header=_header(types, frame.stamp_ns),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=frame.image.reshape(-1).copy(),
    )


def compressed_msg(types, frame: Frame, quality: int = 90):
    from pose_classifier_ros.stream.image_codec import encode_compressed

    data = encode_compressed(frame.image, "jpeg", quality)
    # image_transport's format string: original encoding; codec (the JPEG decodes to RGB anywhere)
    return types["sensor_msgs/msg/CompressedImage"](
        header=_header(types, frame.stamp_ns), format="rgb8; jpeg compressed bgr8", data=np.frombuffer(data, np.uint8)
    )


def detections_msg(types, frame: Frame):
    geo = types
    detections = []
    for g in frame.boxes:
        pose = geo["geometry_msgs/msg/PoseWithCovariance"](
            pose=geo["geometry_msgs/msg/Pose"](
                position=geo["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                orientation=geo["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            covariance=np.zeros(36, np.float64),
        )
        hyp = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id=g.species, score=g.score), pose=pose
        )
        detections.append(
            types["vision_msgs/msg/Detection2D"](
                header=_header(types, frame.stamp_ns),
                results=[hyp],
                bbox=box_to_bbox(g.box, message_types(types)),
                id=g.track_id,
            )
        )
    return types["vision_msgs/msg/Detection2DArray"](header=_header(types, frame.stamp_ns), detections=detections)


def ground_truth_msg(types, frame: Frame):
    msg_types = message_types(types)
    h, w = frame.image.shape[:2]
    viewpoints = []
    for g in frame.boxes:
        scores = np.zeros(len(VIEWPOINTS), np.float32)
        scores[g.label] = 1.0
        heading, _ = heading_from_probs(scores)
        viewpoints.append(
            make_viewpoint(
                msg_types,
                track_id=g.track_id,
                box=g.box,
                detection_score=g.score,
                label=g.label,
                label_name=label_name(g.label),
                scores=scores,
                smoothed_label=g.label,
                smoothed_label_name=label_name(g.label),
                smoothed_confidence=1.0,
                num_votes=1,
                is_stable=True,
                label_stamp=ns_to_stamp(frame.stamp_ns, msg_types.Time),
                fresh=True,
                voted=True,
                heading_deg=float(heading),
                heading_spread_deg=0.0,
                track_heading_deg=float(heading),
                track_heading_spread_deg=0.0,
            )
        )
    return types["pose_classifier_ros/msg/ViewpointArray"](
        header=_header(types, frame.stamp_ns), image_width=w, image_height=h, viewpoints=viewpoints
    )


def write_flight_bag(
    out_dir: Path, cfg: FlightConfig, storage: str = "mcap", compressed: bool = False, progress: bool = True
) -> dict:
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
        for frame in tqdm(
            generate_flight(cfg), total=cfg.frames, desc="rendering flight", unit="frame", disable=not progress
        ):
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
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="output directory (receives flight/ and ground_truth.csv)")
    add_flight_arguments(parser)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage")
    parser.add_argument("--compressed", action="store_true", help=f"also write {COMPRESSED_TOPIC} (JPEG)")
    parser.add_argument(
        "--crops-dir", type=Path, default=None, help="also write a labelled folder-per-class crop set here"
    )
    parser.add_argument("--crops-per-class", type=int, default=40, help="crops per class for --crops-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pose_classifier_ros.bags.bagio import BagError

    try:
        cfg = flight_config(args)
    except ValueError as exc:
        _logger.error("%s", exc)
        return 2
    try:
        summary = write_flight_bag(
            args.out_dir, cfg, storage=args.storage, compressed=args.compressed, progress=not args.no_progress
        )
    except BagError as exc:
        _logger.error("%s", exc)
        return 1
    print(
        f"wrote {summary['bag']} ({summary['frames']} frames, {summary['boxes']} detections, {args.storage}) "
        f"and {summary['ground_truth']}"
    )
    if args.crops_dir is not None:
        crops_seed = args.seed + 1_000_003  # a stream of its own, not the flight's
        n = write_crops(args.crops_dir, args.crops_per_class, seed=crops_seed, progress=not args.no_progress)
        print(f"wrote {n} labelled crops into {args.crops_dir}/<class>/")
    return 0


# Re-exported for the demo and tests: the synthetic pieces this bag is made of.
__all__ = [
    "COMPRESSED_TOPIC",
    "DETECTIONS_TOPIC",
    "DETECTOR_LATENCY_NS",
    "FRAME_ID",
    "GROUND_TRUTH_TOPIC",
    "IMAGE_TOPIC",
    "SPECIES",
    "START_NS",
    "Animal",
    "FlightConfig",
    "Frame",
    "GroundTruthBox",
    "add_arguments",
    "generate_flight",
    "heading_to_class",
    "render_animal",
    "render_crop",
    "run",
    "write_crops",
    "write_flight_bag",
]
