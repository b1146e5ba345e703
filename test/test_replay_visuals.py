"""Replay's visual outputs: the annotation topic and track summaries in an MCAP bag, read back with the
independent `mcap` + `mcap_ros2` readers (helpers.mcap_messages; not rosbags, which wrote them)."""

from __future__ import annotations

import numpy as np
from helpers.best_view_flight import PERIOD, H, L, W, result, striped_frame
from helpers.mcap_messages import read_mcap

from pose_classifier_ros.bags.bagio import make_typestore, open_writer
from pose_classifier_ros.bags.replay_visuals import ReplayVisuals, ReplayVisualsConfig
from pose_classifier_ros.stream.pipeline_types import FrameResult
from pose_classifier_ros.visualization.annotations import build_overlay

T0 = 1_700_000_000 * 10**9


def test_annotations_and_summaries_in_the_bag(tmp_path):
    box = (100, 100, 300, 250)
    results = []
    with open_writer(tmp_path / "bag") as writer:
        visuals = ReplayVisuals(ReplayVisualsConfig(timeout_s=0.5), writer.typestore, writer)
        t = visuals.types
        for i in range(4):
            stamp = T0 + i * PERIOD
            header = t.Header(stamp=t.Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam")
            frame_results = [result(stamp, "1", box, L)] if i < 2 else []  # track 1 leaves after frame 1
            results.append(FrameResult(stamp, W, H, frame_results))
            visuals.add_frame(stamp + 1000, striped_frame(box), results[-1], header)
        stamp = T0 + 10 * PERIOD  # 0.9 s later: track 1 expires
        visuals.add_frame(
            stamp,
            striped_frame(box),
            FrameResult(stamp, W, H, [result(stamp, "2", box, L)]),
            t.Header(stamp=t.Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"),
        )
        sightings = visuals.finish(stamp + 1)
    assert [s.track_id for s in sightings] == ["1", "2"]
    messages = read_mcap(tmp_path / "bag")
    markers = [m for m in messages if m[0] == "/annotations"]
    assert [m[1] for m in markers] == ["visualization_msgs/msg/ImageMarker"] * 5
    for (_, _, log_time, marker), fr in zip(markers, results):
        assert marker.header.stamp.sec * 10**9 + marker.header.stamp.nanosec == fr.stamp_ns == log_time - 1000
        points = np.array([[p.x, p.y] for p in marker.points]).reshape(-1, 2, 2)
        np.testing.assert_allclose(points, build_overlay(fr).segments)
    assert len(markers[2][3].points) == 0  # a frame without animals clears the drawing
    summaries = [m for m in messages if m[0] == "/track_summaries"]
    assert [(s[3].track_id, s[3].frames, s[2]) for s in summaries] == [("1", 2, stamp), ("2", 1, stamp + 1)]
    first = summaries[0][3]
    assert first.best_left_score > 0 and first.best_right_score == 0.0 and list(first.viewpoint_histogram)[L] == 2
    assert (first.best_left_stamp.sec, first.best_left_stamp.nanosec) == (T0 // 10**9, 0)


def test_without_a_writer_only_best_views_are_tracked():
    visuals = ReplayVisuals(ReplayVisualsConfig(), make_typestore())
    visuals.add_frame(
        T0, striped_frame((100, 100, 300, 250)), FrameResult(T0, W, H, [result(T0, "1", (100, 100, 300, 250), L)]), None
    )
    (s,) = visuals.finish(T0)
    assert s.views["left"].crop is not None and visuals.annotations_written == 0
