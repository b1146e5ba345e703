"""voting: trust gating (truncated boxes, low confidence), hysteresis (switch_votes) and the track heading."""

import math

import numpy as np
import pytest

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.voting import SmoothedLabel, TrackVoter, VotingConfig

LEFT, RIGHT, FRONT_LEFT, BACK_LEFT, BACK_RIGHT = (
    INDEX[n] for n in ("left", "right", "front-left", "back-left", "back-right")
)


def onehot(label, p=0.9):
    probs = np.full(8, (1 - p) / 7, np.float32)
    probs[label] = p
    return probs


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(switch_votes=0),
        dict(window=3, switch_votes=4),
        dict(switch_votes=1.5),
        dict(min_confidence=-0.1),
        dict(min_confidence=1.5),
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        VotingConfig(**kwargs)


def test_truncated_prediction_does_not_vote_but_is_reported():
    voter = TrackVoter(VotingConfig(window=5, min_votes=2, switch_votes=1))
    voter.update("a", onehot(LEFT), 0.0)
    voter.update("a", onehot(LEFT), 0.1)
    out = voter.update("a", onehot(RIGHT), 0.2, truncated=True)  # cut by the frame edge
    assert out.voted is False and out.label == LEFT and out.num_votes == 2
    assert out.confidence == pytest.approx(1.0)
    out = voter.update("a", onehot(RIGHT), 0.3)
    assert out.voted is True and out.num_votes == 3
    # skip_truncated false: the truncated box votes like any other
    keep = TrackVoter(VotingConfig(window=5, min_votes=1, skip_truncated=False))
    assert keep.update("b", onehot(RIGHT), 0.0, truncated=True).voted is True
    assert keep.get("b").num_votes == 1


def test_low_confidence_prediction_does_not_vote():
    voter = TrackVoter(VotingConfig(window=5, min_votes=1, min_confidence=0.5, switch_votes=1))
    assert voter.should_vote(onehot(LEFT, 0.6)) and not voter.should_vote(onehot(LEFT, 0.4))
    voter.update("a", onehot(LEFT, 0.6), 0.0)
    out = voter.update("a", onehot(RIGHT, 0.3), 0.1)
    assert out.voted is False and out.label == LEFT and out.num_votes == 1
    # a new track whose first prediction does not vote: its own label, no votes, not stable
    first = voter.update("b", onehot(RIGHT, 0.3), 0.1)
    assert (first.label, first.num_votes, first.is_stable, first.voted) == (RIGHT, 0, False, False)
    assert first.confidence == 0.0 and math.isnan(first.heading_deg)
    assert "b" in voter and voter.get("b") is None  # alive (no expiry), but nothing voted yet
    # forced vote overrides the gate
    assert voter.update("b", onehot(RIGHT, 0.3), 0.2, vote=True).num_votes == 1


def test_non_voting_frames_keep_a_track_alive():
    voter = TrackVoter(VotingConfig(window=5, min_votes=1, track_timeout_s=1.0))
    voter.update("a", onehot(LEFT), 0.0)
    for t in (0.8, 1.6, 2.4):
        voter.update("a", onehot(LEFT), t, truncated=True)
        assert voter.expire(t) == []
    assert voter.get("a").num_votes == 1


def flicker_labels(cfg: VotingConfig, seq) -> list[int]:
    voter = TrackVoter(cfg)
    return [voter.update("t", onehot(c), k * 0.1).label for k, c in enumerate(seq)]


# A stable "left" track whose single frames flicker, then a real turn to "front-left".
FLICKER = [LEFT] * 4 + [FRONT_LEFT, FRONT_LEFT, LEFT, FRONT_LEFT, FRONT_LEFT, LEFT, LEFT] + [FRONT_LEFT] * 6


def test_hysteresis_on_scripted_flicker():
    no_hyst = flicker_labels(VotingConfig(window=5, min_votes=3, switch_votes=1), FLICKER)
    hyst = flicker_labels(VotingConfig(window=5, min_votes=3, switch_votes=3), FLICKER)
    flips = lambda labels: sum(a != b for a, b in zip(labels, labels[1:]))  # noqa: E731
    # Without hysteresis the majority of 5 flips back and forth while the animal hesitates.
    assert no_hyst == [LEFT] * 7 + [FRONT_LEFT] * 3 + [LEFT] + [FRONT_LEFT] * 6
    assert flips(no_hyst) == 3
    # With switch_votes 3 the label changes once, after front-left won three votes in a row (frames 7-9);
    # the single "left" majority at frame 10 does not take it back.
    assert hyst == [LEFT] * 9 + [FRONT_LEFT] * 8
    assert flips(hyst) == 1


def test_hysteresis_holds_with_the_held_labels_own_support():
    voter = TrackVoter(VotingConfig(window=5, min_votes=3, switch_votes=2))
    for k, c in enumerate([LEFT, LEFT, LEFT, RIGHT, RIGHT]):
        out = voter.update("t", onehot(c), k * 0.1)
    assert out == SmoothedLabel(LEFT, pytest.approx(3 / 5), 5, True)  # raw vote is still left
    out = voter.update("t", onehot(RIGHT), 0.5)  # window L L R R R: right wins its first vote
    assert out.label == LEFT and out.confidence == pytest.approx(2 / 5)  # held, with left's share
    assert voter.get("t").label == LEFT
    out = voter.update("t", onehot(RIGHT), 0.6)  # second consecutive win: switch
    assert out.label == RIGHT and out.confidence == pytest.approx(4 / 5)
    # an interrupted challenge starts again from zero
    voter = TrackVoter(VotingConfig(window=3, min_votes=1, switch_votes=2))
    labels = [voter.update("u", onehot(c), k * 0.1).label for k, c in enumerate([LEFT, RIGHT, LEFT, RIGHT, RIGHT])]
    assert labels == [LEFT, LEFT, LEFT, LEFT, RIGHT]


def test_no_hysteresis_before_the_track_is_stable():
    voter = TrackVoter(VotingConfig(window=5, min_votes=3, switch_votes=5))
    labels = [voter.update("t", onehot(c), k * 0.1).label for k, c in enumerate([LEFT, RIGHT, RIGHT])]
    assert labels == [LEFT, LEFT, RIGHT]  # tie -> mean, then plain majority while not stable


def test_track_heading_over_the_voted_window():
    voter = TrackVoter(VotingConfig(window=4, min_votes=1, switch_votes=1))
    out = voter.update("t", np.eye(8, dtype=np.float32)[LEFT], 0.0)
    assert out.heading_deg == pytest.approx(90.0) and out.heading_spread_deg == 0.0
    out = voter.update("t", np.eye(8, dtype=np.float32)[FRONT_LEFT], 0.1)
    assert out.heading_deg == pytest.approx(67.5) and out.heading_spread_deg > 0
    # a truncated frame does not move the track heading
    out = voter.update("t", np.eye(8, dtype=np.float32)[RIGHT], 0.2, truncated=True)
    assert out.heading_deg == pytest.approx(67.5) and out.voted is False
    # wrap: a back-left / back-right track faces the back (-180), not the front
    voter.update("w", np.eye(8, dtype=np.float32)[BACK_LEFT], 0.0)
    out = voter.update("w", np.eye(8, dtype=np.float32)[BACK_RIGHT], 0.1)
    assert out.heading_deg == pytest.approx(-180.0)
    # the window slides: old votes leave the heading
    for k in range(4):
        out = voter.update("t", np.eye(8, dtype=np.float32)[RIGHT], 0.3 + 0.1 * k)
    assert out.heading_deg == pytest.approx(-90.0) and out.heading_spread_deg == 0.0
