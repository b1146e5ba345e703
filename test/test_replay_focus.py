"""replay with a focus (issue 24): --focus-track pins the policy's target, --focus-topic takes it from a recorded
PolicyState topic in bag order; either changes which tracks the simulated budget classifies, deterministically,
and the report judges the focused detections against every_frame's; new tracks go past the budget as a debt."""

from __future__ import annotations

import pytest
from helpers.fake_classifier import ColourClassifier
from helpers.replay_bag import PERIOD, START, colour_pipeline, viewpoint_messages, write_bag, write_gt_csv

from pose_classifier_ros.bags.bagio import BagError
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.ground_truth import load_ground_truth_csv
from pose_classifier_ros.replay.replay_run import ReplayOptions, build_pipelines, run_replay
from pose_classifier_ros.replay.report import build_report, format_replay_report
from pose_classifier_ros.stream.node_config import NodeConfig
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

VOTING = VotingConfig(window=7, min_votes=3)


def _pipeline():
    return TrackPipeline(ColourClassifier(), voting=VOTING, schedule=ScheduleConfig(max_crops=1, max_age_s=1.0))


def _classified(result) -> dict[str, list[int]]:
    """track -> frames (index) on which it was classified (fresh)."""
    out: dict[str, list[int]] = {}
    for r in result.records:
        if r.fresh:
            out.setdefault(r.track_id, []).append((r.stamp_ns - START) // PERIOD)
    return out


def _replay(bag, tmp_path, name, focus_track=None, focus_topic=None, gt=None):
    pipe = _pipeline()
    if focus_track:
        pipe.focus.pin([focus_track])
    return replay_bag(
        bag,
        pipe,
        out_path=tmp_path / name,
        ground_truth=gt,
        progress=False,
        crops_per_second=5.0,
        baseline=colour_pipeline(),
        focus_topic=focus_topic,
    )


def test_focus_track_changes_which_tracks_are_classified_deterministically(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag)
    write_gt_csv(tmp_path / "gt.csv")
    gt = load_ground_truth_csv(tmp_path / "gt.csv")
    # 10 Hz, 5 crops/s, max_crops 1. Frame 0: both tracks are new, both classified (one crop past the budget:
    # a debt of 1 that frames 1-2 pay off); then one crop on frames 4, 6, 8.
    plain = _replay(bag, tmp_path, "plain", gt=gt)
    assert _classified(plain) == {"a": [0, 4, 8], "b": [0, 6]}  # same age: the larger box, then the id
    focused = [_replay(bag, tmp_path, f"focus{k}", focus_track="b", gt=gt) for k in range(2)]
    assert _classified(focused[0]) == {"a": [0], "b": [0, 4, 6, 8]}  # the focus share takes every cycle
    assert viewpoint_messages(tmp_path / "focus0") == viewpoint_messages(tmp_path / "focus1")  # same bytes twice
    assert focused[0].records == focused[1].records
    assert all(r.focused == (r.track_id == "b") for r in focused[0].records)
    assert focused[0].schedule["crops_focus"] == 4 and focused[0].schedule["crops_new"] == 1

    sched = build_report(focused[0])["schedule"]
    part = sched["focus_tracks"]
    assert part["tracks"] == ["b"] and part["detections"] == 10 and part["fresh_fraction"] == pytest.approx(0.4)
    b_every = [r for r in focused[0].baseline.records if r.track_id == "b"]
    assert part["every_frame"]["smoothed"] == pytest.approx(sum(r.smoothed == r.true for r in b_every) / 10)
    assert set(sched["per_track"]) == {"a", "b"} and sched["per_track"]["b"]["detections"] == 10
    assert "focused smoothed accuracy, scheduled - every_frame" in format_replay_report(build_report(focused[0]), "t")


def test_focus_topic_follows_the_recorded_policy_state_in_bag_order(tmp_path):
    bag = tmp_path / "in"
    # The policy searched on frame 0, locked on b for frames 1-4, then on a; its state for frame i is recorded
    # 50 ms after the frame, so frame i + 1 is classified with it (as live).
    targets = [""] + ["b"] * 4 + ["a"] * 5
    write_bag(bag, policy_targets=targets)
    result = _replay(bag, tmp_path, "out", focus_topic="/policy_state")
    focused = {(r.stamp_ns - START) // PERIOD: r.track_id for r in result.records if r.focused}
    assert focused == {i: targets[i - 1] for i in range(2, 10)}
    assert _classified(result) == {"a": [0, 6, 8], "b": [0, 4]}  # b focused on frame 4; a on 6 and 8
    assert result.stats["focus_msgs"] == 10
    with pytest.raises(BagError, match="/no_such_topic"):
        _replay(bag, tmp_path, "bad", focus_topic="/no_such_topic")


def test_focus_options_need_the_scheduled_mode_and_exclude_each_other(tmp_path):
    base = dict(input=tmp_path / "in", checkpoint=tmp_path / "model.pt", no_out=True)
    with pytest.raises(ValueError, match="need schedule mode scheduled"):
        run_replay(ReplayOptions(**base, focus_track="a"))  # no --params, no --schedule: every_frame
    with pytest.raises(ValueError, match="not both"):
        run_replay(ReplayOptions(**base, schedule="scheduled", focus_track="a", focus_topic="/policy_state"))
    options = ReplayOptions(**base, schedule="scheduled", focus_track="a")
    pipeline, baseline = build_pipelines(options, NodeConfig(), ColourClassifier(), "scheduled")
    assert pipeline.focus.tracks_at(0) == {"a"} and baseline.focus.tracks_at(0) == frozenset()
