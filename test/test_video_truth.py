"""Ground truth from track files (video/viewpoint_truth.py) and the sample video command: the viewpoint
attribute with its aliases, unknown values, the (frame, track) ground-truth CSV, and that the sample
video's CVAT attributes, MOT/CSV files and ground_truth.csv all say the same."""

from __future__ import annotations

import pytest
from helpers.paths import REPO

from pose_classifier_ros.cli import main as cli_main
from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.replay.ground_truth import load_ground_truth_csv
from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.video.cvat import read_cvat_video
from pose_classifier_ros.video.probe import probe_video
from pose_classifier_ros.video.tracks import Tracks, load_tracks
from pose_classifier_ros.video.viewpoint_truth import (
    VIEWPOINT_ALIASES,
    UnknownViewpointError,
    truth_from_attribute,
    viewpoint_index,
)

CVAT_EXPORT = REPO / "test" / "data" / "cvat_video_1.1_task_export.xml"


@pytest.mark.parametrize(
    "value, name",
    [
        ("left", "left"),
        ("LEFT", "left"),
        (" Front_Left ", "front-left"),
        ("front left", "front-left"),
        ("frontleft", "front-left"),
        ("left-front", "front-left"),
        ("FL", "front-left"),
        ("backright", "back-right"),
        ("rear_right", "back-right"),
        ("right/rear", "back-right"),
        ("rear", "back"),
        ("side-left", "left"),
        ("r", "right"),
    ],
)
def test_viewpoint_values_and_aliases(value, name):
    assert viewpoint_index(value) == INDEX[name]


def test_every_alias_names_a_class_and_missing_values_give_none():
    assert set(VIEWPOINT_ALIASES.values()) == set(VIEWPOINTS)
    assert not set(VIEWPOINT_ALIASES) & set(VIEWPOINTS)
    for value in ("", "unknown", "N/A", "none", "?"):
        assert viewpoint_index(value) is None
    with pytest.raises(UnknownViewpointError, match="'upleft'"):
        viewpoint_index("upleft")


def test_ground_truth_from_the_cvat_attribute_of_a_real_export():
    truth = truth_from_attribute(load_tracks(CVAT_EXPORT))
    assert truth.by_frame[(0, "0")] == INDEX["left"]
    assert truth.by_frame[(5, "0")] == INDEX["front-left"]  # "Front_Left" on an interpolated box
    assert truth.by_frame[(6, "0")] == INDEX["front-left"]  # "frontleft"
    assert truth.by_frame[(9, "1")] == INDEX["back-right"]  # "rear-right"
    assert len(truth) == 14 and truth.absent == truth.missing == 0


def test_unknown_values_are_one_error_naming_value_frame_and_track_or_a_counted_skip():
    tracks = Tracks(source="herd.xml")
    for k, value in enumerate(["left", "up", "upleft", "up", "unknown"]):
        tracks.add(k, Detection([0, 0, 5, 5], 1.0, "7"), attributes={"viewpoint": value})
    tracks.add(0, Detection([9, 9, 15, 15], 1.0, "8"))
    with pytest.raises(UnknownViewpointError) as err:
        truth_from_attribute(tracks)
    message = str(err.value)
    assert "herd.xml" in message and "'up' on frame 1, track 7" in message and "3 boxes" in message
    truth = truth_from_attribute(tracks, on_unknown="skip")
    assert truth.by_frame == {(0, "7"): INDEX["left"]}
    assert truth.unknown == {"up": 2, "upleft": 1} and truth.missing == 1 and truth.absent == 1
    assert len(truth_from_attribute(tracks, "pose", on_unknown="skip")) == 0  # another attribute name


def test_sample_video_command_writes_a_video_and_agreeing_track_and_truth_files(tmp_path):
    out = tmp_path / "sample"
    argv = ["make-sample-video", str(out), "--frames", "8", "--width", "256", "--height", "192", "--no-progress"]
    assert cli_main(argv) == 0
    info = probe_video(out / "flight.mp4")
    assert (info.width, info.height, info.frame_count) == (256, 192, 8)
    cvat = read_cvat_video(out / "flight.xml")
    truth = truth_from_attribute(cvat)
    csv_truth = load_ground_truth_csv(out / "ground_truth.csv")
    assert csv_truth.by_frame == truth.by_frame and len(truth) > 10
    assert not csv_truth.by_stamp
    assert csv_truth.lookup(0, 3, "2") == truth.by_frame[(3, "2")]
    for other in (load_tracks(out / "flight_mot.txt"), load_tracks(out / "flight_detections.csv")):
        assert other.frame_indices() == cvat.frame_indices() and other.track_ids() == cvat.track_ids()
    assert truth_from_attribute(load_tracks(out / "flight_detections.csv")).by_frame == truth.by_frame
    assert cvat.frame_indices()[0] == 1  # frame 0 shows ground only (--empty-frame 0)
