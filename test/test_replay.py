"""replay: the node's pairing + pipeline over a bag, output bag contents and metrics known exactly.

A fake classifier reads its prediction from the red channel at the box centre (class * 20), so each
test scripts per-frame predictions by painting the frames, and the expected metrics follow by hand.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers.replay_bag import (
    PERIOD,
    PRED,
    START,
    TRUTH,
    B,
    F,
    H,
    L,
    R,
    W,
    colour_pipeline,
    replay_cli,
    write_bag,
    write_gt_csv,
)

from pose_classifier_ros.bags.bagio import BagError, open_reader, open_writer
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.parameters import ParameterError
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.ground_truth import GroundTruth, load_ground_truth_csv
from pose_classifier_ros.replay.report import build_report
from pose_classifier_ros.stream.node_config import load_node_config


@pytest.mark.parametrize("storage,gt_by", [("mcap", "stamp_ns"), ("sqlite3", "frame_index")])
def test_replay_output_bag_and_exact_metrics(tmp_path, storage, gt_by):
    bag, out = tmp_path / "in", tmp_path / "out"
    write_bag(bag, storage, extra_topic=True)
    write_gt_csv(tmp_path / "gt.csv", by=gt_by)
    gt = load_ground_truth_csv(tmp_path / "gt.csv")
    result = replay_bag(bag, colour_pipeline(), out_path=out, ground_truth=gt, storage=storage, progress=False)

    assert result.stats["frames_processed"] == 10 and result.stats["frames_skipped"] == 0
    assert len(result.records) == 20 and all(r.true is not None for r in result.records)
    assert [r.label for r in result.records if r.track_id == "a"] == [p["a"] for p in PRED]
    assert {r.smoothed for r in result.records if r.track_id == "a"} == {L}  # the vote hides both flips

    report = build_report(result)
    assert report["per_frame"]["num_samples"] == 20
    assert report["per_frame"]["accuracy"] == pytest.approx(8 / 20)
    assert report["smoothed"]["accuracy"] == pytest.approx(10 / 20)
    assert report["per_frame"]["per_class"]["left"]["accuracy"] == pytest.approx(0.8)
    assert report["per_frame"]["per_class"]["front"]["accuracy"] == pytest.approx(0.0)
    cm = np.array(report["per_frame"]["confusion_matrix"])
    assert cm.shape == (8, 8) and cm[L, L] == 8 and cm[L, R] == 2 and cm[F, B] == 10 and cm.sum() == 20
    # angular error: a: 2 x 180 deg, b: 10 x 180 deg -> 12 * 180 / 20
    assert report["per_frame"]["mean_angular_error_deg"] == pytest.approx(12 * 180 / 20)
    assert report["smoothed"]["coarse_accuracy"] == pytest.approx(0.5)
    temporal = report["temporal"]
    assert temporal["per_frame"]["per_track"]["a"] == pytest.approx(4 / 0.9)
    assert temporal["per_frame"]["per_track"]["b"] == pytest.approx(0.0)
    assert temporal["smoothed"]["mean_flips_per_s"] == pytest.approx(0.0)

    with open_reader(out) as reader:
        topics = reader.topics
        assert set(topics) == {"/camera/image_raw", "/detections", "/chatter", "/viewpoints"}
        assert topics["/chatter"].count == 10 and topics["/viewpoints"].count == 10
        vps = [reader.deserialize(raw, mt) for _, _, raw, mt in reader.messages(["/viewpoints"])]
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in vps]
    assert stamps == [START + i * PERIOD for i in range(10)]
    assert all(m.header.frame_id == "cam" and (m.image_width, m.image_height) == (W, H) for m in vps)
    for i, m in enumerate(vps):
        assert [v.track_id for v in m.viewpoints] == ["a", "b"]
        assert [int(v.label) for v in m.viewpoints] == [PRED[i]["a"], PRED[i]["b"]]
        assert int(m.viewpoints[0].smoothed_label) == L and m.viewpoints[0].label_name == VIEWPOINTS[PRED[i]["a"]]
        assert m.viewpoints[1].is_stable == (i >= 2)


def test_ground_truth_from_bag_topic(tmp_path):
    """Labels inside the bag (a ViewpointArray topic, as the sample bag has) are used as ground truth."""
    bag = tmp_path / "in"
    write_bag(bag)
    # Build a bag with a ground-truth topic by replaying with a perfect "classifier" of TRUTH ...
    truth_bag = tmp_path / "truth"
    write_bag(truth_bag, pred=[dict(TRUTH)] * len(PRED))
    replay_bag(
        truth_bag,
        colour_pipeline(),
        out_path=tmp_path / "truth_out",
        viewpoints_topic="/ground_truth/viewpoints",
        progress=False,
    )
    # ... and copy its labels next to the scripted images.
    combined = tmp_path / "combined"
    with open_reader(bag) as src, open_reader(tmp_path / "truth_out") as gt_src, open_writer(combined) as dst:
        for conn in src.connections:
            dst.add_topic(conn.topic, conn.msgtype, like=conn)
        dst.add_topic("/ground_truth/viewpoints", "pose_classifier_ros/msg/ViewpointArray")
        for topic, ts, raw, _ in src.messages():
            dst.write(topic, ts, raw)
        for topic, ts, raw, _ in gt_src.messages(["/ground_truth/viewpoints"]):
            dst.write(topic, ts, raw)
    result = replay_bag(combined, colour_pipeline(), ground_truth_topic="/ground_truth/viewpoints", progress=False)
    assert result.stats["ground_truth_matched"] == 20
    assert build_report(result)["per_frame"]["accuracy"] == pytest.approx(0.4)


def test_unsupported_encoding_and_empty_detections(tmp_path, caplog):
    bag = tmp_path / "in"
    write_bag(bag, encodings={2: "32FC1"}, empty_frames=(5,))
    with caplog.at_level("WARNING"):
        result = replay_bag(bag, colour_pipeline(), out_path=tmp_path / "out", progress=False)
    assert result.stats["frames_skipped"] == 1 and result.stats["frames_processed"] == 9
    assert any("32FC1" in rec.getMessage() for rec in caplog.records)
    assert sorted({r.stamp_ns for r in result.records}) == [START + i * PERIOD for i in range(10) if i not in (2, 5)]
    with open_reader(tmp_path / "out") as reader:
        vps = [reader.deserialize(raw, mt) for _, _, raw, mt in reader.messages(["/viewpoints"])]
    # the empty frame still gets a (empty) ViewpointArray; the undecodable one none
    assert len(vps) == 9
    assert [len(m.viewpoints) for m in vps].count(0) == 1


def test_missing_topic_raises_with_topic_list(tmp_path):
    bag = tmp_path / "in"
    write_bag(bag)
    with pytest.raises(BagError) as err:
        replay_bag(bag, colour_pipeline(), detections_topic="/detector/detections", progress=False)
    assert "/detector/detections" in str(err.value) and "/detections" in str(err.value)
    assert "vision_msgs/msg/Detection2DArray" in str(err.value)


def test_settings_from_node_params_file(tmp_path):
    from pathlib import Path

    repo_yaml = Path(__file__).resolve().parents[1] / "config" / "pose_classifier.yaml"
    settings = load_node_config(repo_yaml)
    assert settings.voting.window >= 1 and settings.sync.mode in ("stamp", "arrival")
    params = tmp_path / "p.yaml"
    params.write_text(
        "pose_classifier:\n  ros__parameters:\n    voting: {window: 3, min_votes: 2, mode: mean}\n"
        "    sync: {tolerance_s: 0.02, queue_size: 5}\n    crop: {padding: 0.2}\n"
        "    tracking: {iou_threshold: 0.5}\n    model: {backend: eager, checkpoint: ''}\n"
    )
    s = load_node_config(params)
    assert (s.voting.window, s.voting.min_votes, s.voting.mode) == (3, 2, "mean")
    assert (s.sync.tolerance_s, s.sync.queue_size) == (0.02, 5)
    assert s.crop.padding == 0.2 and s.tracking.iou_threshold == 0.5 and s.model.backend == "eager"
    (tmp_path / "bad.yaml").write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ValueError, match="pose_classifier"):
        load_node_config(tmp_path / "bad.yaml")


def test_node_yaml_is_read_with_the_node_meaning_no_aliases(tmp_path):
    """Unknown keys (a misspelling, the old `sync.slop` alias), wrong types and ranges name the key and file."""
    bad = tmp_path / "typo.yaml"
    bad.write_text(
        "pose_classifier:\n  ros__parameters:\n    voting: {windw: 3}\n    sync: {slop: 0.1}\n"
        "    crop: {padding: fast}\n    tracking: {iou_threshold: 2.0}\n"
    )
    with pytest.raises(ParameterError) as err:
        load_node_config(bad)
    text = str(err.value)
    for part in (
        str(bad),
        "unknown parameter 'voting.windw' (did you mean 'voting.window'?)",
        "unknown parameter 'sync.slop'",
        "crop.padding: expected float, got str 'fast'",
        "tracking.iou_threshold: must be in [0.0, 1.0], got 2.0",
    ):
        assert part in text, text


def test_ground_truth_csv_errors(tmp_path):
    (tmp_path / "cols.csv").write_text("frame,label\n1,left\n")
    with pytest.raises(ValueError, match="track_id"):
        load_ground_truth_csv(tmp_path / "cols.csv")
    (tmp_path / "bad.csv").write_text("frame_index,track_id,pose\n0,a,sideways\n1,a,left\n")
    gt = load_ground_truth_csv(tmp_path / "bad.csv")
    assert isinstance(gt, GroundTruth) and gt.lookup(0, 1, "a") == L and gt.lookup(0, 0, "a") is None


# ---------------------------------------------------------------------------------------------
# The real CLI, end to end (subprocess)
# ---------------------------------------------------------------------------------------------
@pytest.mark.process
def test_cli_errors_are_clear(tmp_path, tiny_checkpoint):
    bag = tmp_path / "in"
    write_bag(bag)
    proc = replay_cli(bag, "--checkpoint", tiny_checkpoint, "--detections-topic", "/nope", "--no-out")
    assert proc.returncode == 1
    assert "/nope" in proc.stderr and "/camera/image_raw" in proc.stderr and "Traceback" not in proc.stderr
    (data,) = [p for p in bag.iterdir() if p.suffix == ".mcap"]
    with data.open("r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    proc = replay_cli(bag, "--checkpoint", tiny_checkpoint, "--no-out")
    assert proc.returncode == 1 and "truncated" in proc.stderr and "Traceback" not in proc.stderr
    proc = replay_cli(tmp_path / "missing_bag", "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.process
@pytest.mark.slow
def test_cli_replays_sample_bag_end_to_end(tmp_path, tiny_checkpoint):
    sample = tmp_path / "sample"
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "pose_classifier_ros.cli",
            "make-sample-bag",
            str(sample),
            "--width",
            "320",
            "--height",
            "192",
            "--frames",
            "8",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    report_dir = tmp_path / "report"
    proc = replay_cli(
        sample / "flight",
        "--checkpoint",
        tiny_checkpoint,
        "--ground-truth",
        sample / "ground_truth.csv",
        "--report-dir",
        report_dir,
        "--backend",
        "eager",
        "--params",
        _params(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((report_dir / "metrics.json").read_text())
    with (sample / "ground_truth.csv").open() as fh:
        n_gt = sum(1 for _ in csv.DictReader(fh))
    assert metrics["per_frame"]["num_samples"] == n_gt
    # The animal that starts cut by the frame edge has no trusted vote until it is fully inside (skip_truncated).
    assert 0 < metrics["smoothed"]["num_samples"] < n_gt
    assert np.array(metrics["per_frame"]["confusion_matrix"]).sum() == n_gt
    assert set(metrics["temporal"]) >= {"per_frame", "smoothed"}
    assert metrics["replay"]["frames_processed"] == 8
    for name in ("report.txt", "confusion_matrix.png", "track_timeline.png"):
        assert (report_dir / name).stat().st_size > 0
    assert "smoothed" in proc.stdout and "accuracy" in proc.stdout
    with open_reader(report_dir / "replayed") as reader:
        assert reader.topics["/viewpoints"].count == 8
        assert reader.topics["/camera/image_raw"].count == 8


def _params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "pose_classifier:\n  ros__parameters:\n    voting: {window: 5, min_votes: 2}\n    model: {batch_size: 8}\n"
    )
    return path


def test_replay_compressed_image_topic(tmp_path):
    """The sample bag's JPEG topic replays like the raw one (image_from_msg decodes CompressedImage)."""
    from pose_classifier_ros.bags import sample_bag as sb

    cfg = sb.FlightConfig(width=192, height=128, frames=4)
    out = tmp_path / "sample"
    sb.write_flight_bag(out, cfg, compressed=True, progress=False)
    result = replay_bag(
        out / "flight",
        colour_pipeline(),
        image_topic=sb.COMPRESSED_TOPIC,
        ground_truth_topic=sb.GROUND_TRUTH_TOPIC,
        progress=False,
    )
    assert result.stats["frames_processed"] == 4 and result.stats["frames_skipped"] == 0
    assert result.stats["ground_truth_matched"] == len(result.records) > 0
