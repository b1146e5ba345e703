"""Track files for videos (video/cvat.py, mot.py, detections_csv.py, tracks.py): a CVAT export written by
hand in CVAT's exact layout, CVAT interpolation of keyframes-only files, MOTChallenge layouts, the
package's CSV, round trips through the writers, and the errors for files of another kind."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.paths import REPO

from pose_classifier_ros.stream.pipeline import Detection
from pose_classifier_ros.synthetic.flight import FlightConfig, generate_flight
from pose_classifier_ros.video.cvat import read_cvat_video, write_cvat_video
from pose_classifier_ros.video.detections_csv import read_detections_csv, write_detections_csv
from pose_classifier_ros.video.mot import read_mot, write_mot
from pose_classifier_ros.video.tracks import BoxFlags, TrackFormatError, Tracks, fit_to_video, load_tracks

CVAT_EXPORT = REPO / "test" / "data" / "cvat_video_1.1_task_export.xml"


def boxes_of(tracks: Tracks, track_id: str) -> dict[int, list[float]]:
    return {f: d.box.tolist() for f, d in tracks.track(track_id).items()}


# --------------------------------------------------------------------------------------------- CVAT
def test_a_real_cvat_task_export_reads_as_cvat_shows_it():
    tracks = load_tracks(CVAT_EXPORT)
    assert tracks.format == "cvat" and (tracks.width, tracks.height, tracks.last_frame) == (3840, 2160, 11)
    assert tracks.labels == {"0": "zebra", "1": "giraffe"}
    zebra = boxes_of(tracks, "0")
    assert sorted(zebra) == [0, 1, 2, 3, 4, 5, 6]  # outside="1" on frame 7 ends it; no box after
    assert zebra[2] == [120, 210, 330, 370] and zebra[5] == [145.25, 225.25, 365.25, 395.0]
    giraffe = boxes_of(tracks, "1")
    assert sorted(giraffe) == [2, 3, 4, 8, 9, 10, 11]  # hidden on 5-7, back on 8 until the last frame
    det = tracks.detections(8)[0]
    assert (det.track_id, det.class_id, det.score) == ("1", "giraffe", 1.0)
    assert tracks.flags_of(0, "0") == BoxFlags(occluded=False, interpolated=False)
    assert tracks.flags_of(1, "0") == BoxFlags(occluded=False, interpolated=True)  # keyframe="0"
    assert tracks.flags_of(6, "0") == BoxFlags(occluded=True, interpolated=False)
    assert tracks.attributes_of(5, "0") == {"viewpoint": "Front_Left", "behaviour": "walking"}
    # CVAT's own interpolated boxes are exactly what this reader computes from the keyframes
    keyframes_only = read_cvat_video(CVAT_EXPORT, interpolate=True)
    listed_only = read_cvat_video(CVAT_EXPORT, interpolate=False)
    for track in ("0", "1"):
        assert boxes_of(keyframes_only, track) == boxes_of(listed_only, track)


KEYFRAMES_ONLY = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <job>
      <id>7</id><size>{size}</size><mode>interpolation</mode>
      <start_frame>0</start_frame><stop_frame>{stop}</stop_frame><frame_filter>{step}</frame_filter>
    </job>
    <original_size><width>640</width><height>360</height></original_size>
  </meta>
  <track id="3" label="zebra" source="manual">
    <box frame="0" outside="0" occluded="1" keyframe="1" xtl="0" ytl="0" xbr="40" ybr="20">
      <attribute name="viewpoint">left</attribute>
    </box>
    <box frame="4" outside="0" occluded="0" keyframe="1" xtl="40" ytl="8" xbr="80" ybr="28"/>
    <box frame="6" outside="1" occluded="0" keyframe="1" xtl="40" ytl="8" xbr="80" ybr="28"/>
    <box frame="8" outside="0" occluded="0" keyframe="1" xtl="100" ytl="100" xbr="120" ybr="150">
      <attribute name="viewpoint">back</attribute>
    </box>
  </track>
</annotations>
"""


def test_keyframes_only_files_are_interpolated_as_cvat_does(tmp_path):
    path = tmp_path / "keyframes.xml"
    path.write_text(KEYFRAMES_ONLY.format(size=11, stop=10, step=""))
    tracks = read_cvat_video(path)
    boxes = boxes_of(tracks, "3")
    assert sorted(boxes) == [0, 1, 2, 3, 4, 5, 8, 9, 10]  # outside on 6 hides 6-7; 8 lasts to stop_frame 10
    assert boxes[1] == [10, 2, 50, 22] and boxes[3] == [30, 6, 70, 26]  # linear between 0 and 4
    assert boxes[5] == [40, 8, 80, 28] and boxes[10] == [100, 100, 120, 150]
    assert tracks.flags_of(2, "3") == BoxFlags(occluded=True, interpolated=True)  # copied from frame 0
    assert tracks.flags_of(4, "3") == BoxFlags()
    # attributes carry over from the previous box (CVAT's mutable attributes) until a box changes them
    assert tracks.attributes_of(4, "3") == {"viewpoint": "left"}
    assert tracks.attributes_of(9, "3") == {"viewpoint": "back"}
    assert (tracks.width, tracks.height) == (640, 360)


def test_a_frame_step_limits_interpolation_to_the_task_frames(tmp_path):
    path = tmp_path / "step.xml"
    path.write_text(KEYFRAMES_ONLY.format(size=6, stop=10, step="step=2"))
    assert sorted(boxes_of(read_cvat_video(path), "3")) == [0, 2, 4, 8, 10]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '<annotations><version>1.1</version><meta><task/></meta><image id="0" name="a.jpg" width="9" '
            'height="9"><box label="zebra" xtl="0" ytl="0" xbr="1" ybr="1" occluded="0"/></image></annotations>',
            "CVAT for images",
        ),
        ('<annotations><version>1.0</version><track id="0" label="a"/></annotations>', "version '1.0'"),
        ('<annotations><track id="0" label="a"/></annotations>', "no <version>"),
        ("<dataset><version>1.1</version></dataset>", "not <annotations>"),
        (
            '<annotations><version>1.1</version><track id="4" label="zebra">'
            '<box frame="17" outside="0" occluded="0" keyframe="1" xtl="abc" ytl="0" xbr="1" ybr="1"/>'
            "</track></annotations>",
            '<track id="4"> <box frame="17">: not a number',
        ),
        (
            '<annotations><version>1.1</version><track id="4" label="zebra">'
            '<box frame="2" outside="0" occluded="0" keyframe="1" ytl="0" xbr="1" ybr="1"/>'
            "</track></annotations>",
            "missing attribute(s) xtl",
        ),
        ("<annotations><version>1.1</version>\n<track id='0'>\n</annotations>", "line 3"),
    ],
)
def test_other_formats_and_malformed_cvat_files_get_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(TrackFormatError) as err:
        read_cvat_video(path)
    assert message in str(err.value) and "bad.xml" in str(err.value)


def test_tracks_of_other_shapes_are_skipped_and_counted(tmp_path):
    path = tmp_path / "poly.xml"
    path.write_text(
        '<annotations><version>1.1</version><track id="0" label="zebra">'
        '<polygon frame="0" outside="0" occluded="0" keyframe="1" points="0,0;1,1;2,0"/></track>'
        '<track id="1" label="zebra"><box frame="0" outside="0" occluded="0" keyframe="1" '
        'xtl="0" ytl="0" xbr="5" ybr="5"/></track></annotations>'
    )
    tracks = read_cvat_video(path)
    assert tracks.track_ids() == ["1"] and tracks.skipped == {"polygon tracks": 1}


# --------------------------------------------------------------------------------------------- MOT
def test_mot_ground_truth_is_one_based_with_ignore_rows_class_and_visibility(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(
        "1,1,10,20,30,40,1,1,0.9\n"
        "1,2,100,20,30,40,0,1,0.2\n"  # conf 0: an ignore region
        "2,1,12,21,30,40,1,3,1\n"
        "3,1,14,22,0,40,1,1,1\n"  # no area
    )
    tracks = read_mot(path, class_names={"1": "zebra"})
    assert tracks.frame_indices() == [0, 1]  # MOT frame 1 = video frame 0
    (det,) = tracks.detections(0)
    assert det.box.tolist() == [10, 20, 40, 60] and (det.track_id, det.class_id, det.score) == ("1", "zebra", 1.0)
    assert tracks.detections(1)[0].class_id == "3"
    assert tracks.attributes_of(0, "1") == {"visibility": "0.9"}
    assert tracks.skipped == {"ignored rows (conf 0)": 1, "boxes with no area": 1}


def test_mot_results_carry_scores_and_detections_without_ids(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("5,7,10.5,20,30,40,0.83,-1,-1,-1\n5,-1,50,50,10,10,0.4,-1,-1,-1\n")
    tracks = read_mot(path)
    a, b = tracks.detections(4)
    assert (a.track_id, a.score, a.class_id) == ("7", pytest.approx(0.83), None)
    assert b.track_id is None and b.box.tolist() == [50, 50, 60, 60]
    # a MOT15 gt file has 10 columns too: kind="gt" reads conf as the consider flag
    path.write_text("1,1,0,0,5,5,0,-1,-1,-1\n1,2,0,0,5,5,1,-1,-1,-1\n")
    assert read_mot(path, kind="gt").track_ids() == ["2"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,1,0,0,5,5,1,1\n", "8 columns"),
        ("1,1,0,0,5,5,1,1,1\n2,1,0,0,5,5\n", "gt.txt:2: 6 columns"),
        ("0,1,0,0,5,5,1,1,1\n", "gt.txt:1: frame '0' is not a 1-based"),
        ("1,1,0,0,5,5,1,1,1\n1,1,9,9,5,5,1,1,1\n", "gt.txt:2: track '1' has two boxes on frame 0"),
        ("1,1,0,zero,5,5,1,1,1\n", "gt.txt:1:"),
    ],
)
def test_malformed_mot_rows_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "gt.txt"
    path.write_text(text)
    with pytest.raises(TrackFormatError, match=message.replace("(", r"\(")):
        read_mot(path)


# --------------------------------------------------------------------------------------------- CSV
def test_detections_csv_reads_frames_optional_columns_and_extra_attributes(tmp_path):
    path = tmp_path / "dets.csv"
    path.write_text(
        "frame_index,track_id,x1,y1,x2,y2,score,class_id,viewpoint\n"
        "0,a,1,2,11,12,0.7,zebra,left\n"
        "0,,5,5,9,9,,,\n"
        "3,a,2,2,12,12,0.8,zebra,back-left\n"
    )
    tracks = read_detections_csv(path)
    a, anonymous = tracks.detections(0)
    assert (a.track_id, a.score, a.class_id) == ("a", pytest.approx(0.7), "zebra")
    assert anonymous.track_id is None and anonymous.score == 1.0
    assert tracks.attributes_of(3, "a") == {"viewpoint": "back-left"} and tracks.labels == {"a": "zebra"}
    path.write_text("frame,x1,y1,x2,y2\n0,1,1,2,2\n")
    with pytest.raises(TrackFormatError, match="lacks column.*frame_index"):
        read_detections_csv(path)
    path.write_text("frame_index,x1,y1,x2,y2\n0,1,1,2,2\nx,1,1,2,2\n")
    with pytest.raises(TrackFormatError, match="dets.csv:3"):
        read_detections_csv(path)


# --------------------------------------------------------------------------------------------- writers
@pytest.fixture(scope="module")
def flight_tracks() -> Tracks:
    tracks = Tracks(source="flight")
    for frame in generate_flight(FlightConfig(width=320, height=240, frames=12, seed=1)):
        for g in frame.boxes:
            tracks.add(frame.index, Detection(g.box, g.score, g.track_id, g.species), attributes={"viewpoint": "left"})
            tracks.labels[g.track_id] = g.species
    return tracks


# 2 decimals per written number (MOT: x2 = x + w, two rounded numbers)
def same_boxes(a: Tracks, b: Tracks, atol: float = 0.011) -> None:
    assert a.frame_indices() == b.frame_indices() and a.track_ids() == b.track_ids()
    for index in a.frame_indices():
        got = {d.track_id: d for d in b.detections(index)}
        for det in a.detections(index):
            np.testing.assert_allclose(got[det.track_id].box, det.box, atol=atol)


def test_writers_round_trip_through_the_readers(tmp_path, flight_tracks):
    cvat = read_cvat_video(write_cvat_video(tmp_path / "t.xml", flight_tracks, num_frames=12, width=320, height=240))
    same_boxes(flight_tracks, cvat)
    assert cvat.labels == flight_tracks.labels and cvat.attributes_of(5, "1") == {"viewpoint": "left"}
    write_mot(tmp_path / "gt.txt", flight_tracks)
    mot = read_mot(tmp_path / "gt.txt")
    same_boxes(flight_tracks, mot)
    numbers = write_mot(tmp_path / "res.txt", flight_tracks, kind="results")
    results = read_mot(tmp_path / "res.txt")
    same_boxes(flight_tracks, results)
    assert set(numbers) == {"giraffe", "zebra"}
    assert results.detections(3)[0].score == pytest.approx(flight_tracks.detections(3)[0].score, abs=1e-4)
    csv_tracks = read_detections_csv(write_detections_csv(tmp_path / "d.csv", flight_tracks, ("viewpoint",)))
    same_boxes(flight_tracks, csv_tracks)
    assert csv_tracks.attributes_of(2, "2") == {"viewpoint": "left"}


def test_cvat_writer_ends_runs_with_outside_boxes_and_can_write_keyframes_only(tmp_path):
    tracks = Tracks()
    for k in [0, 1, 2, 3, 4, 7, 8]:  # linear motion, a gap on 5-6
        flags = BoxFlags(interpolated=k not in (0, 4, 7, 8))
        tracks.add(k, Detection([10 * k, 0, 10 * k + 20, 30], 1.0, "5", "zebra"), flags)
    full = tmp_path / "full.xml"
    write_cvat_video(full, tracks, num_frames=12, width=200, height=100)
    text = full.read_text()
    assert '<box frame="5" keyframe="1" outside="1"' in text and '<box frame="9" keyframe="1" outside="1"' in text
    assert '<box frame="2" keyframe="0" outside="0"' in text and "<meta>" in text and "<task>" in text
    sparse = tmp_path / "sparse.xml"
    write_cvat_video(sparse, tracks, num_frames=12, width=200, height=100, keyframes_only=True)
    assert 'frame="2"' not in sparse.read_text()
    same_boxes(tracks, read_cvat_video(sparse))
    assert read_cvat_video(sparse).flags_of(2, "5").interpolated


def test_fit_to_video_clamps_drops_and_counts(tmp_path):
    tracks = Tracks(source="t")
    tracks.add(0, Detection([-10, 5, 50, 40], 1.0, "1"))
    tracks.add(0, Detection([300, 5, 350, 40], 1.0, "2"), attributes={"viewpoint": "left"})
    tracks.add(9, Detection([10, 10, 20, 20], 1.0, "1"))
    counts = fit_to_video(tracks, 200, 100, num_frames=5)
    assert (counts.clamped, counts.outside, counts.beyond_frames, counts.beyond_boxes) == (1, 1, 1, 1)
    assert [d.box.tolist() for d in tracks.detections(0)] == [[0, 5, 50, 40]]
    assert tracks.attributes_of(0, "2") == {}
    # Fitted again to the same video (backend calibration, then the replay): the first fit's counts, not
    # zeros because the boxes are clamped already; another video is a new fit.
    assert fit_to_video(tracks, 200, 100, num_frames=5) == counts
    again = fit_to_video(tracks, 40, 100, num_frames=5)
    assert (again.clamped, again.outside) == (1, 0)


def test_load_tracks_guesses_the_format_and_refuses_unknown_ones(tmp_path):
    assert load_tracks(CVAT_EXPORT).format == "cvat"
    other = tmp_path / "tracks.json"
    other.write_text("{}")
    with pytest.raises(TrackFormatError, match="cannot tell the format"):
        load_tracks(other)
    with pytest.raises(TrackFormatError, match="unknown track format"):
        load_tracks(other, "yaml")
