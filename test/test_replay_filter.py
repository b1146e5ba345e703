"""Replay honours the node's input filter and trust flags: filter.class_ids / filter.min_score drop detections
(counted, not published), boxes cut by the frame edge are marked truncated and do not vote."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers.fake_classifier import ColourClassifier

from pose_classifier_ros.bags.bagio import open_reader, open_writer
from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

START, PERIOD = 1_700_000_000_000_000_000, 100_000_000
W, H = 96, 64
L, R, B, F = INDEX["left"], INDEX["right"], INDEX["back"], INDEX["front"]
# track: (class id, score, xyxy, painted class). "edge" is cut by the left edge once padded (10 %).
TRACKS = {
    "zebra-1": ("zebra", 0.9, (30.0, 10.0, 54.0, 40.0), L),
    "giraffe-1": ("giraffe", 0.95, (60.0, 10.0, 84.0, 40.0), R),
    "weak": ("zebra", 0.3, (30.0, 42.0, 50.0, 62.0), B),
    "edge": ("zebra", 0.8, (1.0, 10.0, 25.0, 40.0), F),
}
FRAMES = 6


def write_bag(path):
    with open_writer(path) as writer:
        t = writer.typestore.types

        def header(stamp):
            return t["std_msgs/msg/Header"](
                stamp=t["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"
            )

        pose = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            covariance=np.zeros(36, np.float64),
        )
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/detections", "vision_msgs/msg/Detection2DArray")
        for i in range(FRAMES):
            stamp = START + i * PERIOD
            img = np.zeros((H, W, 3), np.uint8)
            dets = []
            for track, (class_id, score, (x1, y1, x2, y2), cls) in TRACKS.items():
                img[int(y1) : int(y2), int(x1) : int(x2), 0] = cls * 20
                bbox = t["vision_msgs/msg/BoundingBox2D"](
                    center=t["vision_msgs/msg/Pose2D"](
                        position=t["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2), theta=0.0
                    ),
                    size_x=x2 - x1,
                    size_y=y2 - y1,
                )
                hyp = t["vision_msgs/msg/ObjectHypothesisWithPose"](
                    hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=class_id, score=score), pose=pose
                )
                dets.append(t["vision_msgs/msg/Detection2D"](header=header(stamp), results=[hyp], bbox=bbox, id=track))
            writer.write(
                "/camera/image_raw",
                stamp,
                t["sensor_msgs/msg/Image"](
                    header=header(stamp),
                    height=H,
                    width=W,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=W * 3,
                    data=img.reshape(-1),
                ),
            )
            writer.write(
                "/detections",
                stamp + 5_000_000,
                t["vision_msgs/msg/Detection2DArray"](header=header(stamp), detections=dets),
            )


def _viewpoints(bag):
    with open_reader(bag) as reader:
        return [reader.deserialize(raw, mt) for _, _, raw, mt in reader.messages(["/viewpoints"])]


def test_replay_filters_by_class_and_score_and_flags_truncated(tmp_path):
    bag, out = tmp_path / "in", tmp_path / "out"
    write_bag(bag)
    pipeline = TrackPipeline(
        ColourClassifier(),
        voting=VotingConfig(window=5, min_votes=1),
        schedule=ScheduleConfig(mode="every_frame"),
        detection_filter=DetectionFilterConfig(class_ids=("zebra",), min_score=0.5),
    )
    result = replay_bag(bag, pipeline, out_path=out, progress=False)
    assert {r.track_id for r in result.records} == {"zebra-1", "edge"}
    msgs = _viewpoints(out)
    assert len(msgs) == FRAMES
    for m in msgs:
        by_id = {v.track_id: v for v in m.viewpoints}
        assert sorted(by_id) == ["edge", "zebra-1"]
        assert not by_id["zebra-1"].truncated and by_id["zebra-1"].voted and int(by_id["zebra-1"].label) == L
        assert by_id["edge"].truncated and not by_id["edge"].voted and int(by_id["edge"].num_votes) == 0
        assert int(by_id["edge"].label) == F  # its own prediction is still published
        assert by_id["zebra-1"].heading_deg == pytest.approx(by_id["zebra-1"].track_heading_deg, abs=1e-3)
    assert int(msgs[-1].viewpoints[0].num_votes) == 5


@pytest.mark.process
def test_replay_cli_reads_the_filter_from_the_params_file(tmp_path):
    from ros_helpers.colour_model import save_colour_checkpoint

    bag, report = tmp_path / "in", tmp_path / "report"
    write_bag(bag)
    checkpoint = save_colour_checkpoint(tmp_path / "colour.pt")
    params = tmp_path / "params.yaml"
    params.write_text(
        "pose_classifier:\n  ros__parameters:\n    filter: {class_ids: [giraffe], min_score: 0.5}\n"
        "    crop: {min_box_size: 4.0}\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "replay",
            str(bag),
            "--checkpoint",
            str(checkpoint),
            "--backend",
            "eager",
            "--params",
            str(params),
            "--out",
            str(tmp_path / "out"),
            "--report-dir",
            str(report),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    msgs = _viewpoints(tmp_path / "out")
    assert len(msgs) == FRAMES and all([v.track_id for v in m.viewpoints] == ["giraffe-1"] for m in msgs)
