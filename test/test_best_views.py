"""Best views per track: the sharp, large, side-on crop wins; flanks kept apart; expiry; sightings.csv sums."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers.best_view_flight import FLIGHT, PERIOD, F, H, L, R, W, result, run_flight, striped_frame
from PIL import Image

from pose_classifier_ros.bags.bagio import make_typestore
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.stream.pipeline_types import FrameResult
from pose_classifier_ros.visualization.annotations import annotation_types
from pose_classifier_ros.visualization.best_views import (
    BestViewConfig,
    BestViewTracker,
    laplacian_variance,
    safe_dir_name,
    sharpness_of,
    sighting_to_msg,
    write_best_views,
)


def test_best_left_view_is_the_sharp_large_side_on_frame():
    tracker = BestViewTracker()
    assert run_flight(tracker) == []
    (s,) = tracker.flush()
    left = s.views["left"]
    assert left.stamp_ns == 3 * PERIOD and left.label == L and not left.truncated
    assert left.crop.shape == (int(170 * 1.2), int(220 * 1.2), 3)  # box + 10 % padding each side
    assert "right" not in s.views
    assert s.views["best"].score >= left.score and s.frames == s.classified_frames == len(FLIGHT)
    assert s.histogram[L] == 5 and s.histogram[F] == 1 and s.histogram.sum() == s.frames
    # each term does its job: the blurred and the truncated frames scored lower than the winner
    blurred, sharp = striped_frame(FLIGHT[1][0], 3.0), striped_frame(FLIGHT[1][0])
    assert sharpness_of(sharp[100:250, 100:300]) > 10 * sharpness_of(blurred[100:250, 100:300])


def test_truncated_views_lose_unless_nothing_else():
    tracker = BestViewTracker()
    run_flight(tracker, [FLIGHT[4]])
    (s,) = tracker.flush()
    assert s.views["left"].truncated and s.views["left"].score > 0
    cfg = BestViewConfig(truncated_factor=0.0)
    tracker = BestViewTracker(cfg)
    run_flight(tracker, [FLIGHT[4], FLIGHT[0]])
    (s,) = tracker.flush()
    assert s.views["left"].stamp_ns == PERIOD  # the small untruncated view beats a zeroed truncated one


def test_flanks_are_kept_apart_and_stale_labels_are_not_candidates():
    tracker = BestViewTracker()
    flight = [
        ((100, 100, 300, 250), L, 0.9, 0.0),
        ((100, 100, 300, 250), R, 0.8, 0.0),
        ((100, 100, 340, 280), R, 0.95, 0.0),
    ]
    run_flight(tracker, flight)
    stale = result(3 * PERIOD, "z1", (100, 100, 400, 300), R, 0.99, fresh=False)  # label from an older frame
    tracker.update(striped_frame((100, 100, 400, 300)), FrameResult(3 * PERIOD, W, H, [stale]))
    (s,) = tracker.flush()
    assert s.views["left"].stamp_ns == 0 and s.views["right"].stamp_ns == 2 * PERIOD
    assert s.frames == 4 and s.classified_frames == 3


def test_expiry_returns_summaries_and_time_going_back_flushes():
    tracker = BestViewTracker(BestViewConfig(timeout_s=0.25))
    frame = striped_frame((10, 10, 60, 60))
    t0 = 10 * 10**9
    a = result(t0, "a", (10, 10, 60, 60), L)
    assert tracker.update(frame, FrameResult(t0, W, H, [a])) == []
    b = result(t0 + PERIOD, "b", (10, 10, 60, 60), R)
    assert tracker.update(frame, FrameResult(t0 + 2 * PERIOD, W, H, [b])) == []  # a: unseen for 0.2 s, alive
    (gone,) = tracker.update(frame, FrameResult(t0 + 3 * PERIOD, W, H, []))
    assert gone.track_id == "a" and gone.last_stamp_ns == t0 and len(tracker) == 1
    (loop,) = tracker.update(frame, FrameResult(0, W, H, []))  # bag loop: 10 s back
    assert loop.track_id == "b" and len(tracker) == 0


def test_sightings_csv_and_crops(tmp_path):
    tracker = BestViewTracker()
    run_flight(tracker)
    flight_b = [((300, 100, 500, 250), R, 0.9, 0.0), ((300, 100, 500, 250), R, 0.9, 0.0)]
    tracker_b = BestViewTracker()
    run_flight(tracker_b, flight_b, track="x/y 2", start=10 * PERIOD)
    sightings = tracker.flush() + tracker_b.flush()
    sightings.append(sightings[-1])  # the same id again (expired and came back): a second folder
    path = write_best_views(tmp_path / "views", sightings)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["dir"] for r in rows] == ["z1", "x_y_2", "x_y_2~2"]
    frames = len(FLIGHT) + 2 * len(flight_b)
    assert sum(int(r["frames"]) for r in rows) == frames
    assert sum(int(r[f"voted_{n}"]) for r in rows for n in VIEWPOINTS) == frames
    assert rows[0]["left_label"] == "left" and rows[0]["right_file"] == "" and rows[1]["left_file"] == ""
    left = Image.open(tmp_path / "views" / rows[0]["left_file"])
    assert left.size == (264, 204)
    assert sorted(p.name for p in (tmp_path / "views" / "z1").iterdir()) == ["best.jpg", "left.jpg"]
    assert sorted(p.name for p in (tmp_path / "views" / "x_y_2").iterdir()) == ["best.jpg", "right.jpg"]


def test_track_summary_message_round_trip():
    store = make_typestore()
    types = annotation_types(store)
    tracker = BestViewTracker()
    run_flight(tracker, start=5 * 10**9)
    (s,) = tracker.flush()
    msg = sighting_to_msg(s, types)
    back = store.deserialize_cdr(
        store.serialize_cdr(msg, "pose_classifier_ros/msg/TrackSummary"), "pose_classifier_ros/msg/TrackSummary"
    )
    assert back.track_id == "z1" and back.header.frame_id == "cam" and back.frames == len(FLIGHT)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (5, 5 * PERIOD)
    assert (back.best_left_stamp.sec, back.best_left_stamp.nanosec) == (5, 3 * PERIOD)
    assert back.best_right_score == 0.0 and back.best_right_stamp.sec == 0
    assert list(back.viewpoint_histogram) == list(s.histogram) and back.best_label in (L, F)
    assert back.best_left_score == pytest.approx(s.views["left"].score)


def test_helpers():
    assert laplacian_variance(np.zeros((2, 2))) == 0.0
    assert laplacian_variance(np.tile([0.0, 255.0], (8, 4))) > 0
    assert safe_dir_name("iou-3") == "iou-3" and safe_dir_name("../..") == "track"
    with pytest.raises(ValueError):
        BestViewConfig(weight_confidence=-1)


def test_live_sighting_writer_appends_and_never_overwrites(tmp_path):
    from pose_classifier_ros.visualization.best_views import SightingWriter

    tracker = BestViewTracker()
    run_flight(tracker)
    (s,) = tracker.flush()
    assert SightingWriter(tmp_path).write(s) == "z1"
    writer = SightingWriter(tmp_path)  # a node restart writing into the same folder
    assert writer.write(s) == "z1~2" and writer.write(s) == "z1~3"
    with (tmp_path / "sightings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["dir"] for r in rows] == ["z1", "z1~2", "z1~3"] and (tmp_path / "z1~3" / "left.jpg").exists()


def test_frame_visuals_summaries_and_saved_crops(tmp_path):
    from pose_classifier_ros.visualization.frame_visuals import FrameVisuals, VisualsConfig

    visuals = FrameVisuals(
        VisualsConfig(best_views_dir=str(tmp_path / "live"), track_timeout_s=0.25), annotation_types(make_typestore())
    )
    box = (100, 100, 300, 250)
    frame = striped_frame(box)

    def published_and_classified(result):  # the node: observe every published frame, consider its labels
        expired = visuals.observe(result, "cam")
        visuals.consider(frame, result)
        return expired

    assert published_and_classified(FrameResult(0, W, H, [result(0, "a", box, L)])) == []
    (msg,) = published_and_classified(FrameResult(10**9, W, H, [result(10**9, "b", box, R)]))
    assert msg.track_id == "a" and msg.header.frame_id == "cam" and msg.best_left_score > 0
    assert (tmp_path / "live" / "a" / "left.jpg").exists() and visuals.debug_images_encoded == 0
    assert [m.track_id for m in visuals.flush()] == ["b"]
    jpeg = visuals.debug_jpeg(visuals.debug_rgb(frame, FrameResult(0, W, H, [result(0, "a", box, L)])))
    assert jpeg[:2] == b"\xff\xd8" and visuals.debug_images_encoded == 1
    off = FrameVisuals(VisualsConfig(track_summaries=False), annotation_types(make_typestore()))
    assert off.tracker is None and off.observe(FrameResult(0, W, H, [])) == []


def test_scheduled_flow_counts_published_frames_and_takes_views_from_inference():
    tracker = BestViewTracker()
    box = (100, 100, 300, 250)
    frame = striped_frame(box)
    for i in range(5):  # published from track state: labels of earlier frames, not fresh
        stamp = i * PERIOD
        assert tracker.observe(FrameResult(stamp, W, H, [result(stamp, "s", box, L, fresh=False)])) == []
        if i in (1, 3):  # the inference thread classified these frames
            tracker.consider(frame, FrameResult(stamp, W, H, [result(stamp, "s", box, L, 0.6 + 0.1 * i)]))
    tracker.consider(frame, FrameResult(9 * PERIOD, W, H, [result(9 * PERIOD, "gone", box, R)]))  # unknown track
    (s,) = tracker.flush()
    assert (s.frames, s.classified_frames, int(s.histogram[L])) == (5, 2, 5)
    assert s.views["left"].stamp_ns == 3 * PERIOD and "right" not in s.views
