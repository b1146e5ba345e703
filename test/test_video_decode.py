"""Video decoding (video/decode.py): frame-accurate numbering, presentation-time stamps, seeking, stride,
decode-ahead, and bad files. The videos are the synthetic flight encoded with PyAV (H.264, B-frames) with
each frame's index drawn as a block code inside a box of its own track: a box on frame k crops frame k
only when the decoder numbers frames exactly."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from pose_classifier_ros.synthetic.flight import FlightConfig
from pose_classifier_ros.synthetic.frame_code import read_frame_code
from pose_classifier_ros.video.decode import DecodeOptions, VideoReader, read_frames
from pose_classifier_ros.video.encode import TIME_BASE, VideoEncoder
from pose_classifier_ros.video.probe import VideoOpenError, VideoTruncatedError, probe_video
from pose_classifier_ros.video.sample_video import FRAME_CODE_TRACK, write_flight_video
from pose_classifier_ros.video.tracks import Tracks

FRAMES = 36
CFG = FlightConfig(width=320, height=240, frames=FRAMES, rate_hz=10.0, seed=3)


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    return write_flight_video(tmp_path_factory.mktemp("cfr"), CFG, gop=8, frame_code=True, progress=False)


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    return write_flight_video(tmp_path_factory.mktemp("vfr"), CFG, gop=8, vfr=True, frame_code=True, progress=False)


def code_on(frame, tracks: Tracks) -> int | None:
    """The index read from the frame-code box that the tracks give for this frame's index."""
    (det,) = [d for d in tracks.detections(frame.index) if d.track_id == FRAME_CODE_TRACK]
    x1, y1, x2, y2 = det.box.round().astype(int)
    return read_frame_code(frame.rgb()[y1:y2, x1:x2])


def test_every_frame_is_numbered_and_stamped_from_its_presentation_time(cfr):
    info = probe_video(cfr.video)
    assert (info.width, info.height, info.frame_count, info.indexed) == (320, 240, FRAMES, True)
    frames = list(read_frames(cfr.video))
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [code_on(f, cfr.tracks) for f in frames] == list(range(FRAMES))
    # stamps come from pts * time_base: 10 Hz -> 100 ms apart, from 0
    assert [f.stamp_ns for f in frames] == [i * 100_000_000 for i in range(FRAMES)]
    f = frames[7]
    assert (f.header.stamp.sec, f.header.stamp.nanosec, f.header.frame_id) == (0, 700_000_000, "camera_optical_frame")
    assert (f.width, f.height) == (320, 240) and f.rgb().shape == (240, 320, 3) and f.rgb().dtype == np.uint8


@pytest.mark.parametrize("start_s, stride", [(0.0, 3), (1.05, 1), (1.3, 4), (2.2, 2)])
def test_start_seeks_and_stride_keep_every_box_on_its_own_frame(cfr, start_s, stride):
    reader = VideoReader(cfr.video, DecodeOptions(start_s=start_s, stride=stride))
    frames = list(reader)
    expected = [k for k in range(FRAMES) if k * 0.1 >= start_s - 1e-9 and k % stride == 0]
    assert [f.index for f in frames] == expected
    assert [code_on(f, cfr.tracks) for f in frames] == expected
    assert reader.stats.seeked == (start_s > 0)
    if start_s > 1:  # the seek skipped whole GOPs: fewer frames decoded than precede the start
        assert reader.stats.decoded < FRAMES


def test_variable_frame_rate_frames_carry_their_own_presentation_times(vfr):
    gaps = np.diff(vfr.pts)
    assert gaps.min() < 0.8 * gaps.max()  # really irregular
    frames = list(read_frames(vfr.video))
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [code_on(f, vfr.tracks) for f in frames] == list(range(FRAMES))
    expected_ns = [int(round(p * TIME_BASE * 1_000_000_000)) for p in vfr.pts]
    assert [f.stamp_ns for f in frames] == pytest.approx(expected_ns, abs=1)  # the container may rescale ticks
    # seeking by time in a VFR video: exact indices, not time * fps
    start = vfr.times_s[20] - 1e-4
    seeked = list(read_frames(vfr.video, DecodeOptions(start_s=start)))
    assert [f.index for f in seeked] == list(range(20, FRAMES))
    assert [code_on(f, vfr.tracks) for f in seeked] == list(range(20, FRAMES))


def test_end_is_exclusive_and_stops_decoding_early(cfr):
    reader = VideoReader(cfr.video, DecodeOptions(start_s=0.5, end_s=1.2))
    assert [f.index for f in reader] == [5, 6, 7, 8, 9, 10, 11]
    assert reader.stats.decoded < FRAMES


def test_base_ns_offsets_stamps(cfr):
    base = 1_700_000_000_000_000_000
    first = next(iter(VideoReader(cfr.video, DecodeOptions(base_ns=base, start_s=0.3))))
    assert first.stamp_ns == base + 300_000_000 and first.header.stamp.sec == base // 1_000_000_000


def test_only_frames_asked_for_are_converted_in_the_decode_thread(cfr):
    wanted = {3, 4, 17}
    reader = VideoReader(cfr.video, convert=wanted.__contains__)
    frames = list(reader)
    assert [f.index for f in frames if f.converted] == sorted(wanted)
    assert reader.stats.converted == len(wanted) and reader.stats.decoded == FRAMES
    lazy = frames[5]  # unconverted frames still give their pixels on demand
    assert not lazy.converted and code_on(lazy, cfr.tracks) == 5 and lazy.converted


def test_decoding_runs_ahead_into_a_bounded_queue_and_stops_when_abandoned(cfr):
    reader = VideoReader(cfr.video, DecodeOptions(queue_size=4))
    frames = iter(reader)
    next(frames)
    deadline = time.monotonic() + 30
    while reader._queue.qsize() < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader._queue.qsize() == 4  # decoded ahead of the consumer, never more than the bound
    time.sleep(0.2)
    assert reader._queue.qsize() == 4 and reader.stats.decoded <= 4 + 1 + 8  # + the frame out + decoder delay
    frames.close()  # the consumer stops early: the thread ends and the file is released
    assert not reader._thread.is_alive()


def test_a_container_without_frame_index_is_numbered_the_same_after_start(cfr, tmp_path):
    mkv = tmp_path / "flight.mkv"
    with av.open(str(cfr.video)) as src, av.open(str(mkv), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    assert not probe_video(mkv).indexed
    reader = VideoReader(mkv, DecodeOptions(start_s=2.0, stride=2))
    frames = list(reader)
    assert [f.index for f in frames] == list(range(20, FRAMES, 2))
    assert [code_on(f, cfr.tracks) for f in frames] == list(range(20, FRAMES, 2))
    assert not reader.stats.seeked and reader.stats.before_start == 20


def test_an_unreadable_file_gives_one_error_naming_it(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video\n" * 100)
    with pytest.raises(VideoOpenError, match="notes.mp4"):
        VideoReader(bogus)
    with pytest.raises(VideoOpenError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")


def test_a_truncated_video_yields_every_good_frame_then_names_the_last(tmp_path):
    path = tmp_path / "cut.mp4"
    rng = np.random.default_rng(0)
    with VideoEncoder(path, 160, 128, 25.0, gop=5, faststart=True) as enc:  # index first, as cameras do
        for k in range(40):
            enc.write(rng.integers(0, 255, (128, 160, 3), dtype=np.uint8), k * 3600)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    got = []
    with pytest.raises(VideoTruncatedError) as err:
        for frame in read_frames(path):
            got.append(frame.index)
    assert got == list(range(len(got))) and 5 < len(got) < 40
    assert err.value.last_index == got[-1]
    assert f"after frame {got[-1]}" in str(err.value) and "cut.mp4" in str(err.value)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="stride"):
        DecodeOptions(stride=0)
    with pytest.raises(ValueError, match="end"):
        DecodeOptions(start_s=2.0, end_s=1.0)
    with pytest.raises(ValueError, match="thread_type"):
        DecodeOptions(thread_type="many")


def test_times_are_exact_decimals(cfr):
    # 0.3 s is frame 3 exactly (0.3 as a binary float is just above 3/10 and would drop it)
    first = next(iter(VideoReader(cfr.video, DecodeOptions(start_s=0.3))))
    assert first.index == 3 and Fraction(first.pts) * probe_video(cfr.video).time_base == Fraction(3, 10)
