"""voting: majority/mean votes per track, tie-break, sliding window, expiry, memory bound, clock resets,
and the IoU tracker."""

import numpy as np
import pytest

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.voting import IouTracker, SmoothedLabel, TrackVoter, VotingConfig, iou_matrix


def onehot(label, p=0.9):
    probs = np.full(8, (1 - p) / 7, np.float32)
    probs[label] = p
    return probs


LEFT, FRONT_LEFT, BACK = INDEX["left"], INDEX["front-left"], INDEX["back"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(window=0),
        dict(min_votes=0),
        dict(window=3, min_votes=4),
        dict(mode="median"),
        dict(track_timeout_s=0),
        dict(track_timeout_s=-1),
        dict(max_tracks=0),
        dict(window=2.5),
        dict(window_s=-0.1),
        dict(window_s=float("inf")),
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        VotingConfig(**kwargs)


def test_majority_on_flickering_track():
    voter = TrackVoter(VotingConfig(window=7, min_votes=3))
    seq = [LEFT, LEFT, FRONT_LEFT, LEFT, BACK, LEFT, FRONT_LEFT]
    out = [voter.update("a", onehot(c), t * 0.1) for t, c in enumerate(seq)]
    assert out[-1] == SmoothedLabel(LEFT, pytest.approx(4 / 7), 7, True)
    assert [o.label for o in out] == [LEFT] * 7  # the flickers never win
    assert [o.is_stable for o in out] == [False, False, True, True, True, True, True]
    assert out[0].name == "left"


def test_window_s_bounds_the_vote_in_time():
    # A track classified twice a second: 7 votes span 3 s. With window_s 1.0 only the votes of the last
    # second count, so a turn from left to back wins after two back votes; by count it has not won yet.
    seq = [LEFT, LEFT, LEFT, LEFT, BACK, BACK, BACK]
    stamps = [0.5 * i for i in range(len(seq))]
    by_count = TrackVoter(VotingConfig(window=7, min_votes=2))
    by_time = TrackVoter(VotingConfig(window=7, min_votes=2, window_s=1.0))
    count_labels = [by_count.update("a", onehot(c), t).label for c, t in zip(seq, stamps)]
    time_out = [by_time.update("a", onehot(c), t) for c, t in zip(seq, stamps)]
    assert count_labels == [LEFT] * 7
    assert [o.label for o in time_out] == [LEFT] * 5 + [BACK] * 2
    assert [o.num_votes for o in time_out] == [1, 2, 3, 3, 3, 3, 3]  # 1.0 s holds stamps t-1.0 .. t
    # The newest vote always stays, however long the gap; and the count bound still applies.
    assert by_time.update("a", onehot(FRONT_LEFT), 60.0).num_votes == 1
    dense = TrackVoter(VotingConfig(window=3, min_votes=1, window_s=10.0))
    assert [dense.update("b", onehot(LEFT), 0.1 * i).num_votes for i in range(5)] == [1, 2, 3, 3, 3]


def test_tie_broken_by_mean_probability():
    voter = TrackVoter(VotingConfig(window=4, min_votes=1, switch_votes=1))
    # Two votes each; the front-left predictions were far more confident.
    voter.update("a", onehot(LEFT, 0.4), 0.0)
    voter.update("a", onehot(FRONT_LEFT, 0.95), 0.1)
    voter.update("a", onehot(LEFT, 0.4), 0.2)
    out = voter.update("a", onehot(FRONT_LEFT, 0.95), 0.3)
    assert out.label == FRONT_LEFT and out.confidence == pytest.approx(0.5)
    # Mirror: the lower class index wins when it is the more confident one (not index order by chance).
    voter = TrackVoter(VotingConfig(window=2, min_votes=1, switch_votes=1))
    voter.update("b", onehot(LEFT, 0.95), 0.0)
    assert voter.update("b", onehot(FRONT_LEFT, 0.4), 0.1).label == LEFT


def test_mean_mode():
    voter = TrackVoter(VotingConfig(window=3, min_votes=2, mode="mean", switch_votes=1))
    # Majority would say left (2 of 3); the mean probability favours back.
    a = np.zeros(8, np.float32)
    a[LEFT], a[BACK] = 0.51, 0.49
    b = np.zeros(8, np.float32)
    b[BACK] = 1.0
    voter.update("t", a, 0.0)
    voter.update("t", a, 0.1)
    out = voter.update("t", b, 0.2)
    assert out.label == BACK
    assert out.confidence == pytest.approx((0.49 * 2 + 1.0) / 3, abs=1e-6)
    assert out.num_votes == 3 and out.is_stable
    major = TrackVoter(VotingConfig(window=3, min_votes=2))
    for t, p in enumerate([a, a, b]):
        res = major.update("t", p, t * 0.1)
    assert res.label == LEFT


def test_window_slides():
    voter = TrackVoter(VotingConfig(window=3, min_votes=1, switch_votes=1))
    for t in range(3):
        voter.update("a", onehot(LEFT), t)
    labels = [voter.update("a", onehot(BACK), 3 + t * 0.1) for t in range(3)]
    assert [o.label for o in labels] == [LEFT, BACK, BACK]
    assert labels[-1].num_votes == 3 and labels[-1].confidence == pytest.approx(1.0)


def test_tracks_are_independent():
    voter = TrackVoter(VotingConfig(window=5, min_votes=1))
    voter.update("a", onehot(LEFT), 0.0)
    assert voter.update("b", onehot(BACK), 0.0).label == BACK
    assert voter.get("a").label == LEFT and voter.get("zzz") is None
    assert len(voter) == 2


def test_expiry():
    voter = TrackVoter(VotingConfig(track_timeout_s=2.0))
    voter.update("old", onehot(LEFT), 0.0)
    voter.update("new", onehot(LEFT), 1.5)
    assert voter.expire(2.0) == []
    assert voter.expire(2.1) == ["old"]
    assert "old" not in voter and "new" in voter
    assert voter.expire(10.0) == ["new"] and len(voter) == 0
    # A track that comes back after expiry starts with a fresh window.
    assert voter.update("old", onehot(BACK), 10.0).num_votes == 1


def test_max_tracks_bounds_memory():
    voter = TrackVoter(VotingConfig(max_tracks=64, window=3, min_votes=1))
    voter.update("keep", onehot(LEFT), 0.0)
    for i in range(5000):
        voter.update(f"t{i}", onehot(i % 8), i * 1e-4)
        if i % 50 == 0:
            voter.update("keep", onehot(LEFT), i * 1e-4)  # recently seen: never evicted
    assert len(voter) == 64
    assert "keep" in voter and "t0" not in voter and "t4999" in voter


def test_stamps_going_back_reset():
    voter = TrackVoter(VotingConfig(window=5, min_votes=1))
    for t in range(5):
        voter.update("a", onehot(LEFT), 100.0 + t)
    # Bag loop: time jumps back to the start; old votes are dropped rather than crashing or mixing.
    out = voter.update("a", onehot(BACK), 0.5)
    assert out.label == BACK and out.num_votes == 1
    assert voter.resets == 1
    # Small reordering (a frame a few ms older) is not a reset.
    voter.update("a", onehot(BACK), 0.6)
    assert voter.update("a", onehot(BACK), 0.59).num_votes == 3
    assert voter.resets == 1
    # expire() with a clock that went back forgets everything too.
    assert voter.expire(0.0) == ["a"] and len(voter) == 0


def test_non_finite_probs_rejected():
    voter = TrackVoter()
    with pytest.raises(ValueError, match="finite"):
        voter.update("a", np.full(8, np.nan), 0.0)


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [50 / 150, 0.0, 1.0], rtol=1e-6)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_iou_tracker_keeps_ids_across_moving_boxes():
    tracker = IouTracker(iou_threshold=0.3, timeout_s=2.0)
    boxes = np.array([[0, 0, 100, 100], [300, 300, 380, 360]], np.float32)
    first = tracker.assign(boxes, 0.0)
    assert first == ["iou-1", "iou-2"]
    ids = first
    for step in range(1, 20):  # both move 5 px a frame, in opposite directions
        moved = boxes + np.array([5, 5, 5, 5], np.float32) * step * np.array([[1], [-1]], np.float32)
        ids = tracker.assign(moved[::-1], step * 0.05)  # detector order changes: ids follow the boxes
        assert ids == ["iou-2", "iou-1"]
    # A new animal far from both gets a new id; the old ones keep theirs.
    ids = tracker.assign(np.array([[95, 95, 195, 195], [600, 0, 700, 100]], np.float32), 1.0)
    assert ids == ["iou-1", "iou-3"]


def test_iou_tracker_greedy_best_overlap_and_one_to_one():
    tracker = IouTracker(iou_threshold=0.3)
    tracker.assign(np.array([[0, 0, 100, 100]], np.float32), 0.0)
    # Two boxes overlap the one track: the better overlap takes the id, the other gets a new one.
    ids = tracker.assign(np.array([[30, 0, 130, 100], [5, 0, 105, 100]], np.float32), 0.1)
    assert ids == ["iou-2", "iou-1"]


def test_iou_tracker_expiry_threshold_and_bound():
    tracker = IouTracker(iou_threshold=0.5, timeout_s=1.0, max_tracks=10)
    tracker.assign(np.array([[0, 0, 10, 10]], np.float32), 0.0)
    assert tracker.assign(np.array([[0, 0, 10, 10]], np.float32), 0.9) == ["iou-1"]
    assert tracker.assign(np.array([[0, 0, 10, 10]], np.float32), 2.0) == ["iou-2"]  # unseen > 1 s
    assert tracker.assign(np.array([[6, 0, 16, 10]], np.float32), 2.1) == ["iou-3"]  # IoU 0.25 < 0.5
    for i in range(100):
        tracker.assign(np.array([[i * 20, 100, i * 20 + 10, 110]], np.float32), 2.2)
    assert len(tracker) == 10
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=0.0)


def test_iou_tracker_non_finite_and_clock_reset():
    tracker = IouTracker()
    ids = tracker.assign(np.array([[np.nan, 0, 10, 10], [0, 0, 10, 10]], np.float32), 50.0)
    assert ids == ["iou-1", "iou-2"] and len(tracker) == 1
    # Bag loop: no stale match, and ids are never reused.
    assert tracker.assign(np.array([[0, 0, 10, 10]], np.float32), 0.0) == ["iou-3"]
    assert tracker.assign(np.zeros((0, 4), np.float32), 0.1) == []
