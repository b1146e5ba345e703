"""pairing: stamp and arrival modes, tolerance, ordering, drops by reason, zero stamps, diagnosis."""

import pytest

from pose_classifier_ros.stream.pairing import PairingConfig, StampPairer

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # a realistic wall-clock stamp


@pytest.mark.parametrize(
    "kwargs", [dict(mode="exact"), dict(tolerance_s=-0.001), dict(queue_size=0), dict(tolerance_s=float("nan"))]
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        PairingConfig(**kwargs)


def test_exact_stamps_both_orders():
    pairer = StampPairer()
    assert pairer.add_image(T0, "img0") == []
    (pair,) = pairer.add_detections(T0, "dets0")
    assert (pair.stamp_ns, pair.image, pair.detections, pair.offset_ns) == (T0, "img0", "dets0", 0)
    # Detections first (detector faster than our image subscription), then the frame.
    assert pairer.add_detections(T0 + 33 * MS, "dets1") == []
    (pair,) = pairer.add_image(T0 + 33 * MS, "img1")
    assert (pair.image, pair.detections) == ("img1", "dets1")
    assert pairer.stats["paired"] == 2 and pairer.pending() == (0, 0)
    assert pairer.diagnose() is None


def test_tolerance():
    pairer = StampPairer(PairingConfig(tolerance_s=0.005))
    pairer.add_image(T0, "a")
    (pair,) = pairer.add_detections(T0 + 4 * MS, "near")
    assert pair.offset_ns == 4 * MS and pair.stamp_ns == T0  # the output keeps the image stamp
    pairer.add_image(T0 + 100 * MS, "b")
    assert pairer.add_detections(T0 + 106 * MS, "far") == []
    assert pairer.stats["paired"] == 1 and pairer.pending() == (0, 1)
    assert pairer.stats["dropped_image_unmatched"] == 1  # "far" is past "b": b can never pair now


def test_closest_image_wins_and_items_pair_once():
    pairer = StampPairer(PairingConfig(tolerance_s=0.010))
    pairer.add_image(T0, "a")
    pairer.add_image(T0 + 8 * MS, "b")
    (pair,) = pairer.add_detections(T0 + 6 * MS, "d1")
    assert pair.image == "b"
    (pair,) = pairer.add_detections(T0 + 6 * MS, "d2")  # "b" is taken: the other one within tolerance
    assert pair.image == "a"
    assert pairer.add_detections(T0 + 6 * MS, "d3") == []  # nothing left to pair with


def test_out_of_order_arrival():
    pairer = StampPairer()
    frames = [T0 + k * 33 * MS for k in range(4)]
    # Detections of frames 0 and 1 arrive before the frames; frames 2 and 3 arrive in swapped order.
    assert pairer.add_detections(frames[0], "d0") == []
    assert pairer.add_detections(frames[1], "d1") == []
    assert [p.detections for p in pairer.add_image(frames[0], "i0")] == ["d0"]
    assert [p.detections for p in pairer.add_image(frames[1], "i1")] == ["d1"]
    pairer.add_image(frames[3], "i3")
    pairer.add_image(frames[2], "i2")
    assert [p.image for p in pairer.add_detections(frames[2], "d2")] == ["i2"]
    assert [p.image for p in pairer.add_detections(frames[3], "d3")] == ["i3"]
    assert pairer.stats["paired"] == 4
    assert sum(v for k, v in pairer.stats.items() if k.startswith("dropped")) == 0


def test_detection_with_no_frame_and_frames_without_detections_are_counted():
    pairer = StampPairer()
    # Camera at 30 Hz; the detector only answers every other frame, and once for a frame we never got.
    for k in range(6):
        pairer.add_image(T0 + k * 33 * MS, f"i{k}")
        if k % 2 == 0:
            assert len(pairer.add_detections(T0 + k * 33 * MS, f"d{k}")) == 1
    pairer.add_detections(T0 + 6 * 33 * MS, "d6")  # its frame was lost
    pairer.add_image(T0 + 7 * 33 * MS, "i7")  # the camera has moved past d6
    stats = pairer.stats
    assert stats["paired"] == 3
    assert stats["dropped_detections_unmatched"] == 1
    assert stats["dropped_image_unmatched"] == 3  # i1 and i3 when later detections arrived, i5 by d6
    assert pairer.pending() == (1, 0)


def test_overflow_bounded_and_counted():
    pairer = StampPairer(PairingConfig(queue_size=3))
    for k in range(10):
        pairer.add_image(T0 + k * MS * 33, k)
    assert pairer.pending() == (3, 0)
    assert pairer.stats["dropped_overflow"] == 7
    assert [p.image for p in pairer.add_detections(T0 + 9 * 33 * MS, "d")] == [9]
    for k in range(10):  # detections for frames that never come (e.g. image topic silent)
        pairer.add_detections(T0 + (20 + k) * 33 * MS, k)
    assert pairer.pending()[1] == 3
    assert pairer.stats["dropped_overflow"] == 14


def test_arrival_mode():
    pairer = StampPairer(PairingConfig(mode="arrival"))
    assert pairer.add_detections(123, "early") == []  # no frame yet
    assert pairer.stats["dropped_detections_unmatched"] == 1
    pairer.add_image(T0, "i0")
    pairer.add_image(T0 + 33 * MS, "i1")  # replaces i0, which never got detections
    (pair,) = pairer.add_detections(999, "d")  # detector with its own clock: stamps ignored
    assert (pair.image, pair.stamp_ns, pair.offset_ns) == ("i1", T0 + 33 * MS, 999 - (T0 + 33 * MS))
    assert pairer.add_detections(1000, "again") == []  # a frame pairs once
    assert pairer.stats == {
        "paired": 1,
        "dropped_image_unmatched": 1,
        "dropped_detections_unmatched": 2,
        "dropped_overflow": 0,
        "zero_stamps": 0,
        "clock_resets": 0,
    }


def test_zero_stamps_counted_and_diagnosed():
    pairer = StampPairer()
    pairer.add_image(0, "a")
    pairer.add_image(0, "b")
    (pair,) = pairer.add_detections(0, "d")
    assert pair.image == "b"  # among equally close frames, the most recent one
    assert pairer.stats["zero_stamps"] == 3
    msg = pairer.diagnose()
    assert "3 message(s) had a zero header stamp" in msg and "sync.mode arrival" in msg


def test_diagnose_reports_constant_offset():
    pairer = StampPairer(PairingConfig(tolerance_s=0.005))
    # The detector stamps its output 20 ms after the frame (e.g. with now()): nothing ever pairs.
    for k in range(10):
        pairer.add_image(T0 + k * 50 * MS, k)
        pairer.add_detections(T0 + k * 50 * MS + 20 * MS, k)
    assert pairer.stats["paired"] == 0
    assert pairer.stats["dropped_detections_unmatched"] >= 8
    assert list(pairer.unmatched_offsets_ms)[:3] == pytest.approx([20.0, 20.0, 20.0])
    assert pairer.diagnose() == (
        "detections never match any frame: offsets ~ +20.0 ms; raise sync.tolerance_s or use sync.mode arrival"
    )
    # With the tolerance raised, the same stream pairs every frame.
    fixed = StampPairer(PairingConfig(tolerance_s=0.025))
    for k in range(10):
        fixed.add_image(T0 + k * 50 * MS, k)
        fixed.add_detections(T0 + k * 50 * MS + 20 * MS, k)
    assert fixed.stats["paired"] == 10 and fixed.diagnose() is None


def test_diagnose_without_any_frame():
    pairer = StampPairer(PairingConfig(queue_size=2))
    for k in range(5):
        pairer.add_detections(T0 + k * MS * 33, k)
    assert "no camera frame received" in pairer.diagnose()
    assert len(pairer.unmatched_offsets_ms) == 0


def test_offsets_bounded():
    pairer = StampPairer(PairingConfig(tolerance_s=0.001, queue_size=5))
    for k in range(2000):
        pairer.add_image(T0 + k * 10 * MS, k)
        pairer.add_detections(T0 + k * 10 * MS + 3 * MS, k)
    assert len(pairer.unmatched_offsets_ms) <= 50
    assert pairer.pending()[0] <= 5 and pairer.pending()[1] <= 5


def test_clock_reset_flushes_buffers_and_is_reported_once():
    events = []
    pairer = StampPairer(on_clock_reset=events.append)
    pairer.add_image(T0 + 60_000 * MS, "late")  # end of the bag, never paired
    pairer.add_detections(T0 + 60_100 * MS, "x")
    (pair,) = [*pairer.add_image(T0, "i0"), *pairer.add_detections(T0, "d0")]  # bag loops to its start
    assert (pair.image, pair.detections) == ("i0", "d0")
    assert pairer.stats["clock_resets"] == 1
    assert pairer.pending() == (0, 0)
    (event,) = events  # the detections side did not count the same reset again
    assert event.message == (
        "pairing (image stamps): stamps went back 60.000 s (bag loop or clock reset): "
        "flushed 0 image(s) and 1 detection message(s)"
    )
