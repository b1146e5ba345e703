"""Video input through the offline path (replay/video_replay.py, replay/replay_run.run_replay): frame-accurate
pairing (videos whose frames carry their index as a block code, read back by the classifier), VFR stamps,
start/end/stride, outside / occluded / clamped / out-of-video boxes, bad inputs, the per-detection table,
and the same flight as a bag and as a (lossless) video giving the same labels."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers.fake_classifier import ColourClassifier, FrameCodeClassifier

from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model.classifier import ViewpointClassifier  # torch at collection, not in a test
from pose_classifier_ros.replay.bag_replay import replay_bag
from pose_classifier_ros.replay.detections_table import COLUMNS, SCORE_COLUMNS
from pose_classifier_ros.replay.replay_run import ReplayError, ReplayOptions, run_replay
from pose_classifier_ros.replay.video_replay import replay_video, video_calibration_crops
from pose_classifier_ros.synthetic.flight import FlightConfig
from pose_classifier_ros.synthetic.frame_code import code_size
from pose_classifier_ros.video.decode import DecodeOptions
from pose_classifier_ros.video.encode import TIME_BASE
from pose_classifier_ros.video.probe import VideoOpenError
from pose_classifier_ros.video.sample_video import FRAME_CODE_TRACK, write_flight_video
from pose_classifier_ros.video.tracks import TrackFormatError, load_tracks
from pose_classifier_ros.video.video_source import TrackSizeError
from pose_classifier_ros.video.viewpoint_truth import UnknownViewpointError

FRAMES = 30
CFG = FlightConfig(width=320, height=240, frames=FRAMES, rate_hz=10.0, seed=3)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return write_flight_video(tmp_path_factory.mktemp("cfr"), CFG, gop=8, frame_code=True, progress=False)


@pytest.fixture(scope="module")
def coded_vfr(tmp_path_factory):
    return write_flight_video(tmp_path_factory.mktemp("vfr"), CFG, gop=8, vfr=True, frame_code=True, progress=False)


def replay(video, tracks, classifier, tmp_path, **options):
    """run_replay of a video with a fake classifier, the report (and table) in tmp_path/report."""
    opts = ReplayOptions(
        input=Path(video),
        tracks=Path(tracks) if tracks is not None else None,
        checkpoint=tmp_path / "unused.pth",
        report_dir=tmp_path / "report",
        no_progress=True,
        **options,
    )
    return run_replay(opts, classifier=classifier)


def table(report_dir: Path) -> list[dict]:
    with (report_dir / "detections.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def kept_frames(sample, start: float, end: float | None, stride: int) -> list[int]:
    """Frames of `sample` in [start, end) (exact decimals, as the reader takes them) on the stride."""
    lo, hi = Fraction(repr(start)), None if end is None else Fraction(repr(end))
    times = [Fraction(p) * TIME_BASE for p in sample.pts]
    return [k for k, t in enumerate(times) if t >= lo and (hi is None or t < hi) and k % stride == 0]


@pytest.mark.parametrize(
    "which, start, end, stride",
    [("coded", 0.0, None, 1), ("coded", 1.05, 2.5, 3), ("coded_vfr", 0.0, None, 1), ("coded_vfr", 0.7, 2.2, 2)],
)
def test_a_box_on_frame_k_crops_frame_k_and_is_stamped_with_its_presentation_time(
    request, tmp_path, which, start, end, stride
):
    sample = request.getfixturevalue(which)
    clf = FrameCodeClassifier(code_size())
    summary = replay(sample.video, sample.cvat, clf, tmp_path, start=start, end=end, stride=stride)
    expected = kept_frames(sample, start, end, stride)
    assert len(expected) >= 5
    # the classifier read, in order, exactly the codes of the frames the run kept
    assert clf.codes == expected and clf.unreadable == 0
    codes = [r for r in summary.result.records if r.track_id == FRAME_CODE_TRACK]
    assert [(r.frame_index, r.label) for r in codes] == [(k, k % 8) for k in expected]
    times_ns = [int(round(Fraction(sample.pts[k]) * TIME_BASE * 10**9)) for k in expected]
    assert [r.stamp_ns for r in codes] == times_ns  # presentation times, VFR included; 0 at the first frame
    rows = [r for r in table(tmp_path / "report") if r["track_id"] == FRAME_CODE_TRACK]
    assert [int(r["frame_index"]) for r in rows] == expected
    assert np.allclose([float(r["time_s"]) for r in rows], [t * 1e-9 for t in times_ns], atol=1e-6)
    assert {r["label"] for r in rows} <= set(VIEWPOINTS) and all(r["input"] == "flight" for r in rows)
    stats = summary.result.stats
    in_video = sum(len(sample.tracks.detections(k)) for k in range(FRAMES))
    assert stats["boxes"] == sum(len(sample.tracks.detections(k)) for k in expected)
    assert stats["boxes_out_of_range"] == in_video - stats["boxes"]
    assert stats["boxes_beyond_video"] == stats["boxes_clamped"] == stats["boxes_outside_frame"] == 0


def test_only_frames_with_boxes_are_converted_unless_every_frame_is_drawn(coded, tmp_path):
    tracks = load_tracks(coded.detections)
    for k in range(8, 20):  # a stretch of the flight nobody annotated
        tracks.frames[k] = []
    with_boxes = len(tracks.frame_indices())
    clf = FrameCodeClassifier(code_size())
    result = replay_video(coded.video, tracks, _pipeline(clf), progress=False)
    assert result.stats["frames_decoded"] == FRAMES and result.stats["frames_with_boxes"] == with_boxes
    assert result.stats["frames_processed"] == with_boxes and result.stats["video"]["converted"] == with_boxes
    assert clf.codes == tracks.frame_indices()
    drawn = replay_video(
        coded.video,
        load_tracks(coded.detections),
        _pipeline(ColourClassifier()),
        progress=False,
        annotated_video=tmp_path / "annotated.mp4",
    )
    assert drawn.stats["video"]["converted"] == drawn.stats["annotated_frames"] == FRAMES


def _pipeline(classifier):
    from pose_classifier_ros.stream.pipeline import TrackPipeline
    from pose_classifier_ros.stream.scheduler import ScheduleConfig

    return TrackPipeline(classifier, schedule=ScheduleConfig(mode="every_frame"))


HAND_CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id>
      <name>hand-made</name>
      <size>36</size>
      <mode>interpolation</mode>
      <start_frame>0</start_frame>
      <stop_frame>35</stop_frame>
      <frame_filter></frame_filter>
      <original_size>
        <width>320</width>
        <height>240</height>
      </original_size>
    </task>
  </meta>
  <track id="0" label="zebra" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="40.00" ytl="40.00" xbr="90.00" ybr="80.00" z_order="0">
      <attribute name="viewpoint">left</attribute>
    </box>
    <box frame="4" keyframe="1" outside="0" occluded="1" xtl="48.00" ytl="40.00" xbr="98.00" ybr="80.00" z_order="0">
      <attribute name="viewpoint">left</attribute>
    </box>
    <box frame="6" keyframe="1" outside="1" occluded="0" xtl="52.00" ytl="40.00" xbr="102.00" ybr="80.00" z_order="0">
      <attribute name="viewpoint">left</attribute>
    </box>
    <box frame="10" keyframe="1" outside="0" occluded="0" xtl="60.00" ytl="40.00" xbr="110.00" ybr="80.00" z_order="0">
      <attribute name="viewpoint">front-left</attribute>
    </box>
    <box frame="20" keyframe="1" outside="1" occluded="0" xtl="80.00" ytl="40.00" xbr="130.00" ybr="80.00" z_order="0">
      <attribute name="viewpoint">front-left</attribute>
    </box>
  </track>
  <track id="1" label="zebra" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="-20.00" ytl="100.00" xbr="30.00" ybr="150.00" z_order="0">
    </box>
    <box frame="2" keyframe="1" outside="0" occluded="0" xtl="-10.00" ytl="100.00" xbr="40.00" ybr="150.00" z_order="0">
    </box>
    <box frame="3" keyframe="1" outside="1" occluded="0" xtl="-10.00" ytl="100.00" xbr="40.00" ybr="150.00" z_order="0">
    </box>
  </track>
  <track id="2" label="giraffe" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="400.00" ytl="10.00" xbr="450.00" ybr="60.00" z_order="0">
    </box>
    <box frame="2" keyframe="1" outside="1" occluded="0" xtl="400.00" ytl="10.00" xbr="450.00" ybr="60.00" z_order="0">
    </box>
  </track>
  <track id="3" label="giraffe" source="manual">
    <box frame="27" keyframe="1" outside="0" occluded="0" xtl="200.00" ytl="150.00" xbr="240.00" ybr="200.00" z_order="0">
    </box>
    <box frame="33" keyframe="1" outside="0" occluded="0" xtl="206.00" ytl="150.00" xbr="246.00" ybr="200.00" z_order="0">
    </box>
    <box frame="34" keyframe="1" outside="1" occluded="0" xtl="206.00" ytl="150.00" xbr="246.00" ybr="200.00" z_order="0">
    </box>
  </track>
</annotations>
"""


def test_outside_occluded_clamped_dropped_and_beyond_video_boxes(coded, tmp_path):
    xml = tmp_path / "hand.xml"
    xml.write_text(HAND_CVAT)
    summary = replay(coded.video, xml, ColourClassifier(), tmp_path)
    by_track: dict[str, list[int]] = {}
    for r in summary.result.records:
        by_track.setdefault(r.track_id, []).append(r.frame_index)
    # outside="1" hides track 0 on 6..9 and from 20; occluded boxes (4, 5) are classified like any other
    assert by_track["0"] == [*range(0, 6), *range(10, 20)]
    assert by_track["1"] == [0, 1, 2]  # reaching out of the frame: clamped and classified
    assert "2" not in by_track  # wholly outside the frame: dropped
    assert by_track["3"] == [27, 28, 29]  # the video ends at frame 29; 30..33 lie beyond it
    stats = summary.result.stats
    assert (stats["boxes_clamped"], stats["boxes_outside_frame"], stats["boxes_beyond_video"]) == (3, 2, 4)
    rows = table(tmp_path / "report")
    assert {float(r["x1"]) for r in rows if r["track_id"] == "1"} == {0.0}
    assert {r["class"] for r in rows} == {"zebra", "giraffe"}
    # ground truth from the viewpoint attribute: track 0 only
    assert stats["ground_truth_matched"] == 16
    assert {r["true"] for r in rows if r["track_id"] == "0"} == {"left", "front-left"}
    assert {r["true"] for r in rows if r["track_id"] != "0"} == {""}
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["per_frame"]["num_samples"] == 16
    assert set(metrics["groups"]["species, per-frame label"]) == {"zebra"}
    assert (
        metrics["replay"]["boxes_clamped"] == 3
        and "boxes_clamped=3" in (tmp_path / "report" / "report.txt").read_text()
    )


def test_a_truncated_video_keeps_every_result_up_to_its_last_good_frame(tmp_path):
    sample = write_flight_video(tmp_path / "v", CFG, gop=5, frame_code=True, faststart=True, progress=False)
    data = sample.video.read_bytes()
    sample.video.write_bytes(data[: len(data) * 6 // 10])
    clf = FrameCodeClassifier(code_size())
    summary = replay(sample.video, sample.cvat, clf, tmp_path)
    last = summary.result.stats["last_good_frame"]
    assert 3 < last < FRAMES - 1
    assert f"after frame {last}" in summary.input_error and "flight.mp4" in summary.input_error
    assert clf.codes == list(range(last + 1))  # every good frame was classified, each with its own code
    rows = table(tmp_path / "report")
    assert max(int(r["frame_index"]) for r in rows) == last
    assert summary.result.stats["boxes_not_reached"] == sum(
        len(sample.tracks.detections(k)) for k in range(last + 1, FRAMES)
    )
    assert (
        json.loads((tmp_path / "report" / "metrics.json").read_text())["replay"]["input_error"] == summary.input_error
    )


def test_bad_inputs_give_one_clear_error_each(coded, tmp_path):
    clf = ColourClassifier()
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50)
    with pytest.raises(VideoOpenError, match="notes.mp4"):
        replay(notes, coded.cvat, clf, tmp_path)
    with pytest.raises(ValueError, match="--tracks"):
        replay(coded.video, None, clf, tmp_path)
    images = tmp_path / "images.xml"
    images.write_text(
        '<annotations><version>1.1</version><image id="0" name="a.jpg" width="4" height="4"/></annotations>'
    )
    with pytest.raises(TrackFormatError, match="CVAT for video 1.1"):
        replay(coded.video, images, clf, tmp_path)
    other = tmp_path / "other.xml"
    other.write_text(coded.cvat.read_text().replace("<version>1.1</version>", "<version>2.0</version>"))
    with pytest.raises(TrackFormatError, match="2.0"):
        replay(coded.video, other, clf, tmp_path)
    resized = tmp_path / "resized.xml"
    resized.write_text(coded.cvat.read_text().replace("<width>320</width>", "<width>640</width>"))
    with pytest.raises(TrackSizeError, match="640x240"):
        replay(coded.video, resized, clf, tmp_path)
    with pytest.raises(ValueError, match="'pose'"):
        replay(coded.video, coded.cvat, clf, tmp_path, truth_attribute="pose")
    bag = tmp_path / "bag"
    bag.mkdir()
    with pytest.raises(ValueError, match="--stride apply to video input"):
        replay(bag, None, clf, tmp_path, stride=2)
    with pytest.raises(ReplayError, match="no frame with track boxes"):
        replay(coded.video, coded.cvat, clf, tmp_path, start=5.0)
    with pytest.raises(ValueError, match="end"):
        replay(coded.video, coded.cvat, clf, tmp_path, start=2.0, end=1.0)


def test_unknown_truth_values_stop_the_run_or_are_skipped(coded, tmp_path):
    wildme = tmp_path / "wildme.xml"
    text = coded.cvat.read_text()
    n_back = text.count('name="viewpoint">back<')
    wildme.write_text(text.replace('name="viewpoint">back<', 'name="viewpoint">upback<'))
    with pytest.raises(UnknownViewpointError, match="'upback' on frame"):
        replay(coded.video, wildme, ColourClassifier(), tmp_path)
    summary = replay(coded.video, wildme, ColourClassifier(), tmp_path, unknown_truth="skip")
    animals = sum(r.track_id != FRAME_CODE_TRACK for r in summary.result.records)
    assert n_back > 0 and summary.result.stats["ground_truth_matched"] == animals - n_back


def test_a_ground_truth_csv_by_frame_and_track_replaces_the_attribute(coded, tmp_path):
    summary = replay(coded.video, coded.mot, ColourClassifier(), tmp_path, ground_truth=coded.ground_truth)
    animals = [r for r in summary.result.records if r.track_id != FRAME_CODE_TRACK]
    assert summary.result.stats["ground_truth_matched"] == len(animals) > 0
    truth = {(k, d.track_id): d for k in range(FRAMES) for d in coded.tracks.detections(k)}
    assert all((r.frame_index, r.track_id) in truth for r in animals)


def test_the_table_documents_every_column(coded, tmp_path):
    replay(coded.video, coded.cvat, ColourClassifier(), tmp_path)
    rows = table(tmp_path / "report")
    assert list(rows[0]) == list(COLUMNS) and len(SCORE_COLUMNS) == 8
    import pyarrow.parquet as pq

    parquet = pq.read_table(tmp_path / "report" / "detections.parquet").to_pylist()
    assert len(parquet) == len(rows) and parquet[0]["frame_index"] == int(rows[0]["frame_index"])
    known = [r for r in parquet if r["label"]]
    assert all(abs(sum(r[c] for c in SCORE_COLUMNS) - 1.0) < 1e-4 for r in known)
    assert all(r["label"] == VIEWPOINTS[int(np.argmax([r[c] for c in SCORE_COLUMNS]))] for r in known)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "field_footage.md").read_text()
    missing = [c for c in COLUMNS if f"`{c}`" not in doc and c not in SCORE_COLUMNS]
    assert not missing, f"docs/field_footage.md does not describe {missing}"


def test_the_same_flight_as_a_bag_and_as_a_lossless_video_gives_the_same_labels(tmp_path, tiny_checkpoint):
    """The bag (raw rgb8 images) and the video (libx264rgb qp 0: bit-exact RGB) hold the same pixels, and
    the video's tracks are the bag's boxes (the sample's in-memory Tracks: no rounding through a file), so a
    real model (test-tiny) gives the same probabilities, votes and labels on both."""
    from pose_classifier_ros.bags.sample_bag import write_flight_bag

    cfg = FlightConfig(width=256, height=160, frames=14, rate_hz=10.0, seed=5)
    write_flight_bag(tmp_path / "bag", cfg, progress=False)
    sample = write_flight_video(tmp_path / "video", cfg, lossless=True, progress=False)
    clf = ViewpointClassifier.from_checkpoint(tiny_checkpoint, backend="eager", batch_size=8)
    bag = replay_bag(tmp_path / "bag" / "flight", _pipeline(clf), progress=False)
    video = replay_video(sample.video, sample.tracks, _pipeline(clf), progress=False)

    def labels(result):
        return [(r.frame_index, r.track_id, r.label, r.smoothed, r.num_votes) for r in result.records]

    assert len(bag.records) > 20 and labels(video) == labels(bag)
    assert np.array_equal(np.stack([r.probs for r in video.records]), np.stack([r.probs for r in bag.records]))
    assert len({r.label for r in bag.records}) > 1  # not a constant model
    assert video.track_classes == bag.track_classes != {}


def test_backend_auto_calibrates_on_the_videos_first_crops(coded):
    from pose_classifier_ros.model.preprocess import CropConfig, expand_and_clamp_boxes
    from pose_classifier_ros.video.decode import read_frames

    tracks = load_tracks(coded.cvat)
    crops = video_calibration_crops(coded.video, tracks, DecodeOptions(start_s=1.0), limit=5)
    assert len(crops) == 5 and all(c.dtype == np.uint8 and c.ndim == 3 for c in crops)
    frame = next(f for f in read_frames(coded.video) if f.index == 10).rgb()  # 1.0 s: frame 10
    boxes = np.stack([d.box for d in tracks.detections(10)])
    padded, valid = expand_and_clamp_boxes(boxes, CFG.width, CFG.height, CropConfig())
    x1, y1, x2, y2 = padded[valid][0]
    assert np.array_equal(crops[0], frame[y1:y2, x1:x2])  # the padded crop the classifier would take
    assert video_calibration_crops(coded.video.parent / "missing.mp4", tracks, None) == []


@pytest.mark.process
def test_cli_exit_status_and_messages_for_bad_and_damaged_videos(coded, tmp_path, tiny_checkpoint):
    from helpers.replay_bag import replay_cli

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50)
    proc = replay_cli(notes, "--tracks", coded.cvat, "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 1 and "cannot open video" in proc.stderr and "notes.mp4" in proc.stderr
    assert "Traceback" not in proc.stderr
    wildme = tmp_path / "wildme.xml"
    wildme.write_text(coded.cvat.read_text().replace('name="viewpoint">left<', 'name="viewpoint">upleft<'))
    proc = replay_cli(coded.video, "--tracks", wildme, "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 1 and "'upleft' on frame" in proc.stderr and "Traceback" not in proc.stderr

    cut = write_flight_video(tmp_path / "cut", CFG, gop=5, faststart=True, progress=False)
    data = cut.video.read_bytes()
    cut.video.write_bytes(data[: len(data) // 2])
    report = tmp_path / "report"
    proc = replay_cli(
        cut.video, "--tracks", cut.cvat, "--checkpoint", tiny_checkpoint, "--backend", "eager",
        "--report-dir", report, "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # results up to the last good frame: something useful was done
    assert "truncated or corrupt" in proc.stderr and "the last good frame" in proc.stderr
    assert "input damaged" in proc.stdout and (report / "detections.csv").stat().st_size > 0


@pytest.mark.process
@pytest.mark.slow
def test_cli_replays_a_sample_video_with_every_output(tmp_path, tiny_checkpoint):
    from helpers.mcap_messages import read_mcap
    from helpers.replay_bag import replay_cli

    from pose_classifier_ros.video.probe import probe_video

    sample = write_flight_video(tmp_path / "video", FlightConfig(width=320, height=192, frames=12), progress=False)
    report, views, annotated = tmp_path / "report", tmp_path / "views", tmp_path / "annotated.mp4"
    proc = replay_cli(
        sample.video, "--tracks", sample.cvat, "--checkpoint", tiny_checkpoint, "--backend", "eager",
        "--report-dir", report, "--best-views", views, "--annotated-video", annotated,
        "--out", tmp_path / "out.mcap", "--write-images", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    boxes = sample.tracks.num_boxes
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["per_frame"]["num_samples"] == boxes  # ground truth from the CVAT viewpoint attribute
    assert "species, per-frame label" in metrics["groups"]
    assert len(table(report)) == boxes and (report / "contact_sheet.png").stat().st_size > 0
    assert len(list(csv.DictReader((views / "sightings.csv").open()))) == len(sample.tracks.track_ids())
    video = probe_video(annotated)
    assert (video.width, video.height, video.frame_count) == (320, 192, 12)
    topics: dict[str, int] = {}
    for topic, *_ in read_mcap(tmp_path / "out"):
        topics[topic] = topics.get(topic, 0) + 1
    assert topics == {
        "/viewpoints": 12,
        "/annotations": 12,
        "/track_summaries": len(sample.tracks.track_ids()),
        "/camera/image_raw/compressed": 12,
    }
    assert "annotated video:" in proc.stdout and "decoded 12 frames" in proc.stdout
