"""replay --schedule scheduled: the node's scheduler under a simulated crop budget, deterministic, with the
label-age / published-accuracy report beside every_frame on the same frames."""

from __future__ import annotations

import argparse
import json

import pytest
from helpers.fake_classifier import ColourClassifier
from helpers.paths import REPO
from helpers.replay_bag import (
    PERIOD,
    PRED,
    START,
    colour_pipeline,
    replay_cli,
    viewpoint_messages,
    write_bag,
    write_gt_csv,
)

from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.cli import add_arguments
from pose_classifier_ros.replay.ground_truth import load_ground_truth_csv
from pose_classifier_ros.replay.replay_run import schedule_mode
from pose_classifier_ros.replay.report import build_report, format_replay_report
from pose_classifier_ros.stream.node_config import NodeConfig, load_node_config
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

VOTING = VotingConfig(window=7, min_votes=3)


def _scheduled(max_crops=2, max_new_crops=32):
    clf = ColourClassifier()
    schedule = ScheduleConfig(max_crops=max_crops, max_age_s=1.0, max_new_crops=max_new_crops)
    return TrackPipeline(clf, voting=VOTING, schedule=schedule), clf


def test_simulated_budget_is_deterministic_and_honest(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag)
    write_gt_csv(tmp_path / "gt.csv")
    gt = load_ground_truth_csv(tmp_path / "gt.csv")
    runs = []
    for k in range(2):
        pipe, clf = _scheduled(max_crops=1, max_new_crops=0)  # new tracks within the budget: its arithmetic
        # 10 Hz bag, 5 crops/s: 0.5 crops per frame -> one crop every second frame (the first finds 1 crop).
        result = replay_bag(
            bag,
            pipe,
            out_path=tmp_path / f"out{k}",
            ground_truth=gt,
            progress=False,
            crops_per_second=5.0,
            baseline=colour_pipeline(),
        )
        runs.append((result, viewpoint_messages(tmp_path / f"out{k}"), clf.calls))
    (first, msgs, calls), (second, msgs2, _) = runs
    assert msgs == msgs2 and first.records == second.records  # same output twice, byte for byte
    assert len(msgs) == 10 and first.schedule["crops_classified"] == 5 and calls == 5  # frames 0, 2, 4, 6, 8

    # Same box sizes: track a (id order) first, then b (new before stale); until classified, b is UNKNOWN.
    by_frame = {}
    for r in first.records:
        by_frame.setdefault(r.stamp_ns, {})[r.track_id] = r
    frame = [by_frame[START + i * PERIOD] for i in range(10)]
    assert frame[0]["a"].label == PRED[0]["a"] and frame[0]["a"].fresh and frame[0]["b"].label is None
    assert frame[2]["b"].fresh and frame[1]["b"].label is None and frame[2]["b"].label == PRED[2]["b"]
    assert frame[3]["a"].label == PRED[0]["a"] and not frame[3]["a"].fresh  # cached from frame 0
    assert frame[3]["a"].label_age_s == pytest.approx(0.3) and frame[4]["a"].fresh
    assert all(r.label_age_s is None for r in first.records if r.label is None)

    report = build_report(first)
    sched = report["schedule"]
    assert sched["unknown_fraction"] == pytest.approx(2 / 20)  # b on frames 0-1
    assert sched["fresh_fraction"] == pytest.approx(5 / 20)
    assert sched["label_age_s"]["max"] == pytest.approx(0.3)  # a: frames 0, 4, 8; b: 2, 6
    assert sched["every_frame"]["per_frame"] == pytest.approx(8 / 20)
    acc = sched["published_accuracy"]
    assert acc["per_frame"] == pytest.approx(sum(r.label == r.true for r in first.records) / 20)
    text = format_replay_report(report, "t")
    assert "label age, s: median" in text and "every_frame" in text and "5 crops/s" in text


def test_without_budget_every_cycle_gets_max_crops(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag)
    pipe, clf = _scheduled(max_crops=2)
    result = replay_bag(bag, pipe, progress=False)
    assert result.schedule["crops_classified"] == 20 and all(r.fresh for r in result.records)
    # Every crop classified on its own frame: the per-frame labels are exactly every_frame's.
    base = replay_bag(bag, colour_pipeline(), progress=False)
    assert [(r.track_id, r.label) for r in result.records] == [(r.track_id, r.label) for r in base.records]


def test_undecodable_frame_still_published_in_scheduled_mode(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag, encodings={2: "32FC1"})
    pipe, _ = _scheduled()
    result = replay_bag(bag, pipe, out_path=tmp_path / "out", progress=False)
    assert result.stats["frames_processed"] == 10 and result.schedule["undecodable_frames"] == 1
    assert len(viewpoint_messages(tmp_path / "out")) == 10


@pytest.mark.process
@pytest.mark.slow
def test_cli_scheduled_report(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag)
    write_gt_csv(tmp_path / "gt.csv")
    from pose_classifier_ros.model.checkpoint import save_checkpoint
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

    ckpt = save_checkpoint(
        tmp_path / "tiny.pt",
        build_model(ModelConfig(backbone="test-tiny"), pretrained=False),
        ModelConfig(backbone="test-tiny"),
    )
    proc = replay_cli(
        bag,
        "--checkpoint",
        ckpt,
        "--params",
        _params(tmp_path / "scheduled.yaml", "    schedule: {mode: scheduled, max_crops: 4}\n"),
        "--crops-per-second",
        "12",
        "--ground-truth",
        tmp_path / "gt.csv",
        "--report-dir",
        tmp_path / "rep",
        "--backend",
        "eager",
        "--no-progress",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"schedule: scheduled (from {tmp_path / 'scheduled.yaml'})" in proc.stdout
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["schedule"]["crops_per_second"] == 12.0 and "every_frame" in metrics["schedule"]
    assert "label age" in proc.stdout
    bad = replay_cli(
        bag,
        "--checkpoint",
        ckpt,
        "--crops-per-second",
        "12",
        "--no-out",
        "--params",
        _params(tmp_path / "every.yaml", "    schedule: {mode: every_frame}\n"),
        timeout=300,
    )
    assert bad.returncode == 1 and "--schedule scheduled" in bad.stderr, bad.stderr
    assert f"it is every_frame (from {tmp_path / 'every.yaml'})" in bad.stderr


def _params(path, body: str):
    path.write_text("pose_classifier:\n  ros__parameters:\n" + body)
    return path


def _schedule_of(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["bag", "--checkpoint", "model.pt", *map(str, argv)])
    return schedule_mode(args, load_node_config(args.params) if args.params else NodeConfig())


def test_schedule_mode_comes_from_params_unless_schedule_overrides_it(tmp_path):
    repo_yaml = REPO / "config" / "pose_classifier.yaml"  # says scheduled, as the node runs live
    assert _schedule_of("--params", repo_yaml) == ("scheduled", f"from {repo_yaml}")
    assert _schedule_of("--params", repo_yaml, "--schedule", "every_frame") == ("every_frame", "from --schedule")
    every = _params(tmp_path / "every.yaml", "    schedule: {mode: every_frame}\n")
    assert _schedule_of("--params", every) == ("every_frame", f"from {every}")
    assert _schedule_of("--params", every, "--schedule", "scheduled") == ("scheduled", "from --schedule")
    bare = _params(tmp_path / "bare.yaml", "    voting: {window: 5}\n")
    assert _schedule_of("--params", bare) == ("scheduled", f"the node's default; {bare} does not set schedule.mode")
    assert _schedule_of() == ("every_frame", "replay's default without --params")
