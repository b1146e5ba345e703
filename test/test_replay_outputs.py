"""replay's visual outputs: the annotation topic and track summaries in the output bag (read back with the
independent mcap + mcap_ros2 readers), --best-views crops and sightings.csv, the report's contact sheet."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers.mcap_messages import read_mcap
from helpers.replay_bag import PRED, colour_pipeline, replay_cli, write_bag
from PIL import Image

from pose_classifier_ros.bags.bagio import BagError, open_writer
from pose_classifier_ros.bags.replay_visuals import ReplayVisualsConfig
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.visualization.best_views import write_best_views


def _stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def test_output_bag_has_one_annotation_per_frame_and_a_summary_per_track(tmp_path):
    write_bag(tmp_path / "in", empty_frames=(4,))
    result = replay_bag(
        tmp_path / "in", colour_pipeline(), out_path=tmp_path / "out", progress=False, visuals=ReplayVisualsConfig()
    )
    messages = read_mcap(tmp_path / "out")
    viewpoints = [m for m in messages if m[0] == "/viewpoints"]
    markers = [m for m in messages if m[0] == "/annotations"]
    assert len(markers) == len(viewpoints) == result.stats["frames_processed"] == len(PRED)
    assert result.stats["annotations_written"] == len(PRED)
    for (_, schema, log_time, marker), (_, _, vp_time, vp) in zip(markers, viewpoints):
        assert schema == "visualization_msgs/msg/ImageMarker" and log_time == vp_time
        assert _stamp_ns(marker.header) == _stamp_ns(vp.header) and marker.header.frame_id == "cam"
        assert len(marker.points) == len(marker.outline_colors) and bool(marker.points) == bool(vp.viewpoints)
    assert len(markers[4][3].points) == 0  # the frame whose detections were empty: nothing drawn
    summaries = {m[3].track_id: m[3] for m in messages if m[0] == "/track_summaries"}
    assert set(summaries) == {"a", "b"} and len(result.sightings) == 2
    assert sum(s.frames for s in summaries.values()) == result.stats["detections_classified"]
    for s in summaries.values():
        assert sum(s.viewpoint_histogram) == s.frames == s.classified_frames
    assert summaries["a"].best_left_score > 0 and summaries["b"].best_left_score == 0.0
    csv_path = write_best_views(tmp_path / "views", result.sightings)
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert sum(int(r["frames"]) for r in rows) == result.stats["detections_classified"]
    assert sum(int(r[f"voted_{n}"]) for r in rows for n in VIEWPOINTS) == result.stats["detections_classified"]


def test_an_input_topic_is_never_overwritten(tmp_path):
    with open_writer(tmp_path / "in") as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/detections", "vision_msgs/msg/Detection2DArray")
        writer.add_topic("/annotations", "std_msgs/msg/String")
    with pytest.raises(BagError, match="/annotations"):
        replay_bag(
            tmp_path / "in", colour_pipeline(), out_path=tmp_path / "out", progress=False, visuals=ReplayVisualsConfig()
        )


@pytest.mark.process
def test_cli_best_views_and_contact_sheet(tmp_path, tiny_checkpoint):
    write_bag(tmp_path / "in")
    views, report = tmp_path / "views", tmp_path / "report"
    proc = replay_cli(
        tmp_path / "in",
        "--checkpoint",
        tiny_checkpoint,
        "--backend",
        "eager",
        "--best-views",
        views,
        "--report-dir",
        report,
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (views / "sightings.csv").open() as fh:
        rows = {r["track_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"a", "b"} and all(int(r["frames"]) == len(PRED) for r in rows.values())
    for r in rows.values():
        for slot in ("left", "right", "best"):
            assert (r[f"{slot}_file"] != "") == (views / r["dir"] / f"{slot}.jpg").exists()
        assert Image.open(views / r["best_file"]).size == (30, 40)  # 24x32 box + 10 % padding, whole px, clamped
    sheet = np.asarray(Image.open(report / "contact_sheet.png"))
    assert sheet.shape[0] > 2 * 160 and "contact_sheet.png" in proc.stdout
    messages = read_mcap(report / "replayed")
    assert sum(m[0] == "/annotations" for m in messages) == len(PRED)
    assert sum(m[0] == "/track_summaries" for m in messages) == 2
