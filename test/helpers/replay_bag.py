"""The replay tests' bag: two tracks over 10 frames whose per-frame predictions are painted into the frames
(red = class * 20, read back by helpers.fake_classifier.ColourClassifier), its ground truth, and the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
from helpers.fake_classifier import ColourClassifier

from pose_classifier_ros.bags.bagio import open_reader, open_writer
from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

START = 1_700_000_000_000_000_000
PERIOD = 100_000_000
W, H = 64, 48
BOXES = {"a": (4.0, 8.0, 28.0, 40.0), "b": (36.0, 8.0, 60.0, 40.0)}
L, R, F, B = INDEX["left"], INDEX["right"], INDEX["front"], INDEX["back"]
# per frame: track -> predicted class painted into its box. Truth: a = left, b = front.
PRED = [
    {"a": L, "b": B},
    {"a": L, "b": B},
    {"a": L, "b": B},
    {"a": R, "b": B},
    {"a": L, "b": B},
    {"a": L, "b": B},
    {"a": R, "b": B},
    {"a": L, "b": B},
    {"a": L, "b": B},
    {"a": L, "b": B},
]
TRUTH = {"a": L, "b": F}


def write_bag(path, storage="mcap", pred=PRED, encodings=None, empty_frames=(), extra_topic=False, policy_targets=None):
    """Image + Detection2DArray bag; frame i has stamp START + i*PERIOD, detections 5 ms later. policy_targets:
    one target id per frame: a /policy_state PolicyState 50 ms after frame i (header stamp = frame i's, as the
    policy node stamps it), target policy_targets[i] ('' = SEARCH)."""
    with open_writer(path, storage=storage) as writer:
        t = writer.typestore.types

        def header(stamp):
            return t["std_msgs/msg/Header"](
                stamp=t["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"
            )

        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/detections", "vision_msgs/msg/Detection2DArray")
        if extra_topic:
            writer.add_topic("/chatter", "std_msgs/msg/String")
        if policy_targets is not None:
            writer.add_topic("/policy_state", "pose_classifier_ros/msg/PolicyState")
        for i, frame_pred in enumerate(pred):
            stamp = START + i * PERIOD
            img = np.zeros((H, W, 3), np.uint8)
            for track, cls in frame_pred.items():
                x1, y1, x2, y2 = (int(v) for v in BOXES[track])
                img[y1:y2, x1:x2, 0] = cls * 20
            encoding = (encodings or {}).get(i, "rgb8")
            writer.write(
                "/camera/image_raw",
                stamp,
                t["sensor_msgs/msg/Image"](
                    header=header(stamp),
                    height=H,
                    width=W,
                    encoding=encoding,
                    is_bigendian=0,
                    step=W * 3,
                    data=img.reshape(-1),
                ),
            )
            dets = []
            if i not in empty_frames:
                for track in frame_pred:
                    x1, y1, x2, y2 = BOXES[track]
                    bbox = t["vision_msgs/msg/BoundingBox2D"](
                        center=t["vision_msgs/msg/Pose2D"](
                            position=t["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2), theta=0.0
                        ),
                        size_x=x2 - x1,
                        size_y=y2 - y1,
                    )
                    dets.append(t["vision_msgs/msg/Detection2D"](header=header(stamp), results=[], bbox=bbox, id=track))
            writer.write(
                "/detections",
                stamp + 5_000_000,
                t["vision_msgs/msg/Detection2DArray"](header=header(stamp), detections=dets),
            )
            if extra_topic:
                writer.write("/chatter", stamp + 1, t["std_msgs/msg/String"](data=f"hello {i}"))
            if policy_targets is not None:
                writer.write("/policy_state", stamp + 50_000_000, policy_state(t, header(stamp), policy_targets[i]))


def policy_state(types, header, target: str):
    """A PolicyState (rosbags type) with `target` as target_track_id, the other fields neutral."""
    return types["pose_classifier_ros/msg/PolicyState"](
        header=header,
        state=1 if target else 0,
        state_name="ORIENT" if target else "SEARCH",
        target_track_id=target,
        target_viewpoint="",
        side_votes=0,
        target_size_ratio=0.0,
        yaw_rate=0.0,
        forward_speed=0.0,
        lateral_speed=0.0,
        flank="",
        target_heading_deg=float("nan"),
        target_size_px=0.0,
        label_fresh=False,
        steps_in_state=0,
        reason="",
    )


def write_gt_csv(path, by="stamp_ns", frames=None):
    frames = len(PRED) if frames is None else frames
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stamp_ns", "frame_index", "track_id", "pose"])
        for i in range(frames):
            for track, cls in TRUTH.items():
                w.writerow([START + i * PERIOD if by == "stamp_ns" else "", i, track, VIEWPOINTS[cls]])


def colour_pipeline() -> TrackPipeline:
    """Every-frame pipeline over ColourClassifier, voting window 7 / 3 votes."""
    return TrackPipeline(
        ColourClassifier(), voting=VotingConfig(window=7, min_votes=3), schedule=ScheduleConfig(mode="every_frame")
    )


def viewpoint_messages(path) -> list[tuple[int, bytes]]:
    """(timestamp, raw CDR bytes) of every /viewpoints message in the bag at `path`, in bag order."""
    with open_reader(path) as reader:
        return [(ts, bytes(raw)) for _, ts, raw, _ in reader.messages(["/viewpoints"])]


def replay_cli(*args, timeout=300):
    """`pose-classifier replay ARGS` as a child process (the test needs @pytest.mark.process)."""
    return subprocess.run(
        [sys.executable, "-m", "pose_classifier_ros.cli", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
