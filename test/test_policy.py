"""The side-profile policy state machine, driven by scripted viewpoint sequences (no ROS).

Most tests here pin the yaw-only mode with the size-ratio capture (``legacy``): the original behaviour,
kept as an option. Orbit mode, range control, stale labels and the retreat: test_policy_orbit.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pose_classifier_ros.navigation.policy import (
    PolicyConfig,
    PolicyFrame,
    PolicyNodeConfig,
    SideProfilePolicy,
    State,
    TrackObservation,
    config_from_parameters,
    frame_from_msg,
    run_policy,
)
from pose_classifier_ros.navigation.policy_config import OrientConfig
from pose_classifier_ros.parameters import ParameterError, replace_values

W, H = 1000, 500  # shorter side 500 px: capture_size_ratio 0.1 -> a box with shorter side >= 50 px
DT_NS = 100_000_000  # 10 Hz
LEGACY = {"orient.mode": "yaw", "capture.target_pixels": 0.0, "capture.size_ratio": 0.1, "approach.speed": 0.5}


def legacy(values: dict | None = None) -> PolicyConfig:
    """Yaw-only mode, capture at a size ratio of 0.1, constant approach speed; `values` by parameter name."""
    return config_from_parameters({**LEGACY, **(values or {})})


def track(
    tid: str,
    label: str,
    size: float = 20.0,
    score: float = 0.9,
    cx: float = 500.0,
    cy: float = 250.0,
    stable: bool = True,
) -> TrackObservation:
    return TrackObservation(tid, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), score, label, stable)


def frame(i: int, *tracks: TrackObservation) -> PolicyFrame:
    return PolicyFrame(stamp_ns=1_000_000_000 + i * DT_NS, width=W, height=H, tracks=list(tracks), frame_id="cam")


def test_front_left_turns_to_left_orients_approaches_and_captures_by_size():
    policy = SideProfilePolicy(legacy({"orient.yaw_rate": 0.3}))
    outs = []
    # 4 frames of a front-left view (h = +45): lock on, ORIENT; the left flank (h = +90) is reached by circling
    # counter-clockwise, which a self-orbiting platform does on a positive yaw rate (REP-103).
    for i in range(4):
        outs.append(policy.step(frame(i, track("a", "front-left"))))
    assert outs[0].state == State.ORIENT and outs[0].transitioned and outs[0].target_track_id == "a"
    assert "locked on a" in outs[0].reason
    assert all(o.state == State.ORIENT and o.yaw_rate == pytest.approx(0.3) and o.forward_speed == 0 for o in outs)
    assert all(o.flank == "left" and o.lateral_speed == 0.0 for o in outs)
    assert [o.steps_in_state for o in outs] == [1, 2, 3, 4]
    # The animal turns: left views. With K=5 of W=7 the 5th left label switches to APPROACH.
    lefts = [policy.step(frame(4 + i, track("a", "left"))) for i in range(6)]
    assert [o.state for o in lefts] == [State.ORIENT] * 4 + [State.APPROACH] * 2
    assert [o.side_votes for o in lefts] == [1, 2, 3, 4, 5, 6]
    assert all(o.yaw_rate == 0.0 and o.forward_speed == 0.0 for o in lefts[:4])  # side view: hold
    assert lefts[4].transitioned and lefts[4].forward_speed == pytest.approx(0.5) and lefts[4].yaw_rate == 0.0
    assert lefts[4].capture is None
    # Closing in: the box grows; capture when its shorter side reaches 10 % of 500 px.
    sizes = [30, 40, 49, 50]
    grow = [policy.step(frame(10 + i, track("a", "left", size=s))) for i, s in enumerate(sizes)]
    assert [o.state for o in grow] == [State.APPROACH] * 3 + [State.CAPTURE]
    cap = grow[-1].capture
    assert cap is not None and grow[-1].forward_speed == 0.0 and grow[-1].yaw_rate == 0.0
    assert (cap.track_id, cap.reason, cap.viewpoint) == ("a", "size_ratio", "left")
    assert cap.stamp_ns == frame(13).stamp_ns and cap.frame_id == "cam"
    assert cap.target_size_ratio == pytest.approx(0.1)
    assert cap.frames_to_capture == 13  # locked on at frame 0
    # Stays captured, zero twist, and never emits a second event (default recapture=False).
    after = [policy.step(frame(14 + i, track("a", "front"), track("b", "left", size=80))) for i in range(5)]
    assert all(o.state == State.CAPTURE and o.capture is None for o in after)
    assert all(o.yaw_rate == 0.0 and o.forward_speed == 0.0 and o.target_track_id == "a" for o in after)
    assert [o.steps_in_state for o in after] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "label, flank, sign",
    [("front-left", "left", 1), ("back-left", "left", -1), ("front-right", "right", -1), ("back-right", "right", 1)],
)
def test_yaw_mode_turns_the_short_way_to_the_nearer_flank(label, flank, sign):
    # h: front-left +45 -> left +90 is +45 (counter-clockwise, + yaw); back-left +135 -> +90 is -45; front-right -45
    # -> right -90 is -45; back-right -135 -> -90 is +45.
    out = run_policy([frame(0, track("a", label))], legacy({"orient.yaw_rate": 0.4}))[0]
    assert out.state == State.ORIENT and out.yaw_rate == pytest.approx(sign * 0.4) and out.flank == flank


def test_flickering_classifier_never_approaches_then_oscillates_when_views_hold_and_break():
    policy = SideProfilePolicy(legacy())
    flicker = [policy.step(frame(i, track("a", "left" if i % 2 else "front"))) for i in range(30)]
    assert all(o.state == State.ORIENT for o in flicker)  # at most 4 of 7 side views: no premature APPROACH
    assert max(o.side_votes for o in flicker) == 4
    # Now: 5 side views -> APPROACH; 3 front views drop it to 4 of 7 -> ORIENT; side again -> APPROACH.
    labels = ["left"] * 5 + ["front"] * 3 + ["left"] * 5
    outs = [policy.step(frame(30 + i, track("a", lab))) for i, lab in enumerate(labels)]
    states = [o.state for o in outs]
    transitions = [(a, b) for a, b in zip(states, states[1:]) if a != b]
    assert transitions == [
        (State.ORIENT, State.APPROACH),
        (State.APPROACH, State.ORIENT),
        (State.ORIENT, State.APPROACH),
    ]
    assert "side view lost" in outs[states.index(State.ORIENT, 5)].reason


def test_lost_target_reselects_largest_box_above_score():
    cfg = config_from_parameters({"target.lost_frames": 3, "target.min_detection_score": 0.5})
    policy = SideProfilePolicy(cfg)
    first = policy.step(frame(0, track("a", "front-left", size=40), track("b", "front", size=30)))
    assert first.target_track_id == "a"  # largest
    policy.step(frame(1, track("a", "front-left", size=40), track("b", "front", size=30)))
    others = (
        track("b", "front", size=30),
        track("c", "left", size=35, score=0.6),
        track("d", "left", size=90, score=0.2),
    )  # d is biggest but below the score threshold
    # a missing for 2 frames: keep it, hold still, not visible.
    for i in (2, 3):
        out = policy.step(frame(i, *others))
        assert out.target_track_id == "a" and out.state == State.ORIENT and not out.target_visible
        assert out.yaw_rate == 0.0 and out.forward_speed == 0.0
    out = policy.step(frame(4, *others))  # third missed frame: lost -> largest eligible box, c
    assert out.target_track_id == "c" and out.state == State.ORIENT and out.transitioned
    assert "a lost" in out.reason and out.steps_in_state == 1 and out.side_votes == 1
    # Everything gone for good -> SEARCH with no target.
    outs = [policy.step(frame(5 + i)) for i in range(3)]
    assert outs[-1].state == State.SEARCH and outs[-1].target_track_id == "" and "c lost" in outs[-1].reason
    assert outs[-1].target_viewpoint == "" and outs[-1].side_votes == 0


def test_target_lost_by_time():
    policy = SideProfilePolicy(config_from_parameters({"target.lost_frames": 100, "target.lost_s": 0.25}))
    policy.step(frame(0, track("a", "front")))
    assert policy.step(frame(2)).state == State.ORIENT  # 0.2 s unseen
    assert policy.step(frame(3)).state == State.SEARCH  # 0.3 s unseen


def test_no_candidate_above_score_stays_in_search():
    outs = run_policy(
        [frame(i, track("a", "left", score=0.1)) for i in range(3)],
        config_from_parameters({"target.min_detection_score": 0.3, "search.yaw_rate": 0.1}),
    )
    assert all(o.state == State.SEARCH and o.target_track_id == "" for o in outs)
    assert all(o.yaw_rate == pytest.approx(0.1) and o.forward_speed == 0.0 for o in outs)


def test_step_budget_captures_best_effort():
    outs = run_policy([frame(i, track("a", "front-left")) for i in range(12)], legacy({"capture.step_budget": 8}))
    captures = [(i, o.capture) for i, o in enumerate(outs) if o.capture is not None]
    assert len(captures) == 1
    i, cap = captures[0]
    assert i == 8 and cap.reason == "step_budget" and cap.frames_to_capture == 8 and cap.viewpoint == "front-left"
    assert all(o.state == State.CAPTURE for o in outs[8:])


def test_capture_by_pixel_size_when_ratio_is_off():
    cfg = config_from_parameters(
        {"capture.size_ratio": 0.0, "capture.size_px": 60.0, "approach.min_side_votes": 2, "approach.window": 3}
    )
    outs = run_policy([frame(i, track("a", "right", size=s)) for i, s in enumerate([50, 55, 59, 60])], cfg)
    assert [o.state for o in outs] == [State.ORIENT, State.APPROACH, State.APPROACH, State.CAPTURE]
    assert outs[-1].capture.reason == "size_pixels"


def test_size_alone_does_not_capture_without_side_view():
    outs = run_policy([frame(i, track("a", "front-left", size=300)) for i in range(5)], legacy())
    assert all(o.state == State.ORIENT and o.capture is None for o in outs)


def test_front_view_scans_and_alternates_direction_without_improvement():
    policy = SideProfilePolicy(
        legacy({"orient.scan_flip_frames": 3, "orient.scan_yaw_rate": 0.2, "orient.scan_direction": "left"})
    )
    yaws = [policy.step(frame(i, track("a", "front"))).yaw_rate for i in range(8)]
    assert yaws == pytest.approx([0.2, 0.2, 0.2, -0.2, -0.2, -0.2, 0.2, 0.2])
    # An improvement (a diagonal view) gives a direct hint and restarts the flip counter: front-right (h = -45) is
    # 45 deg from the right flank, clockwise (negative yaw).
    assert policy.step(frame(8, track("a", "front-right"))).yaw_rate == pytest.approx(-0.3)
    yaws = [policy.step(frame(9 + i, track("a", "back"))).yaw_rate for i in range(4)]
    assert yaws == pytest.approx([0.2, 0.2, 0.2, -0.2])


def test_scan_direction_right_starts_clockwise():
    out = run_policy([frame(0, track("a", "back"))], legacy({"orient.scan_direction": "right"}))[0]
    assert out.yaw_rate == pytest.approx(-0.2)


def test_recapture_searches_for_a_new_target():
    cfg = legacy({"capture.recapture": True, "approach.min_side_votes": 1, "approach.window": 1})
    policy = SideProfilePolicy(cfg)
    first = policy.step(frame(0, track("a", "left", size=60), track("b", "left", size=55)))
    assert first.state == State.CAPTURE and first.capture.track_id == "a"
    second = policy.step(frame(1, track("a", "left", size=60), track("b", "left", size=55)))
    # a is already captured: the largest other box is chosen, and it is big enough to be captured at once.
    assert second.capture is not None and second.capture.track_id == "b"
    third = policy.step(frame(2, track("a", "left", size=60), track("b", "left", size=55)))
    assert third.state == State.SEARCH and third.capture is None  # nothing left to capture


def test_unstable_labels_do_not_count_as_side_views():
    labels = [
        policy_out.side_votes
        for policy_out in run_policy([frame(i, track("a", "left", stable=i >= 3)) for i in range(6)])
    ]
    assert labels == [0, 0, 0, 1, 2, 3]


def test_approach_centering_correction_sign_and_cap():
    cfg = legacy(
        {"approach.min_side_votes": 1, "approach.window": 1, "centering.gain": 0.5, "centering.max_yaw_rate": 0.1}
    )
    right_of_centre = run_policy([frame(0, track("a", "left", cx=600))], cfg)[0]
    assert right_of_centre.state == State.APPROACH and right_of_centre.yaw_rate == pytest.approx(-0.1)
    slightly_left = run_policy([frame(0, track("a", "left", cx=450))], cfg)[0]
    assert slightly_left.yaw_rate == pytest.approx(0.05)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"approach.min_side_votes": 8}, "approach.min_side_votes: must be <= approach.window (7), got 8"),
        ({"capture.size_ratio": 1.5}, "capture.size_ratio: must be in [0.0, 1.0], got 1.5"),
        ({"orient.scan_direction": "up"}, "orient.scan_direction: must be one of left, right, got 'up'"),
        ({"orient.yaw_rate": -0.1}, "orient.yaw_rate: must be in [0.0, 3.0], got -0.1"),
        ({"target.lost_frames": 0}, "target.lost_frames: must be in [1, 100000], got 0"),
        (
            {"capture.target_pixels": 0.0, "capture.size_ratio": 0.0, "capture.size_px": 0.0, "capture.step_budget": 0},
            "never capture",
        ),
        ({"orient.mode": "fly"}, "orient.mode: must be one of orbit, yaw, got 'fly'"),
        ({"orient.flank": "top"}, "orient.flank"),
        ({"capture.size_band": 0.0}, "capture.size_band"),
        ({"capture.step_buget": 5}, "unknown parameter 'capture.step_buget' (did you mean 'capture.step_budget'?)"),
    ],
)
def test_invalid_config_is_rejected_with_the_parameter_named(values, message):
    with pytest.raises(ParameterError) as err:
        config_from_parameters(values)
    assert message in str(err.value)


def test_config_built_in_code_is_checked_like_parameters():
    assert config_from_parameters({"capture.step_budget": 5}).capture.step_budget == 5
    with pytest.raises(ValueError, match=r"orient.scan_direction: must be one of left, right, got 'up'"):
        PolicyConfig(orient=OrientConfig(scan_direction="up"))
    with pytest.raises(ValueError, match=r"approach.min_side_votes: must be <= approach.window \(3\), got 5"):
        replace_values(PolicyConfig(), {"approach.window": 3})


def _bbox(cx, cy, w, h):
    return SimpleNamespace(center=SimpleNamespace(position=SimpleNamespace(x=cx, y=cy), theta=0.0), size_x=w, size_y=h)


def test_frame_from_duck_typed_message():
    msg = SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=3, nanosec=500), frame_id="cam"),
        image_width=640,
        image_height=480,
        viewpoints=[
            SimpleNamespace(
                track_id="7",
                bbox=_bbox(100.0, 50.0, 40.0, 20.0),
                detection_score=0.8,
                smoothed_label=3,
                smoothed_label_name="",
                is_stable=True,
            ),
            SimpleNamespace(
                track_id="8",
                bbox=_bbox(10.0, 10.0, 4.0, 4.0),
                detection_score=0.5,
                smoothed_label=255,
                smoothed_label_name="",
                is_stable=False,
            ),
        ],
    )
    f = frame_from_msg(msg)
    assert (f.stamp_ns, f.width, f.height, f.frame_id) == (3_000_000_500, 640, 480, "cam")
    assert f.tracks[0].box == pytest.approx((80.0, 40.0, 120.0, 60.0))
    assert f.tracks[0].smoothed_label == "left" and f.tracks[0].shorter_side == 20.0
    assert f.tracks[1].smoothed_label == "" and not f.tracks[1].is_stable


def test_frame_from_generated_message():
    msgs = pytest.importorskip("pose_classifier_ros.msg")
    vp = msgs.Viewpoint(
        track_id="x", detection_score=0.9, smoothed_label=6, smoothed_label_name="back-right", is_stable=True
    )
    vp.bbox.center.position.x, vp.bbox.center.position.y = 200.0, 100.0
    vp.bbox.size_x, vp.bbox.size_y = 60.0, 30.0
    arr = msgs.ViewpointArray(image_width=800, image_height=600, viewpoints=[vp])
    arr.header.stamp.sec, arr.header.frame_id = 1, "camera"
    f = frame_from_msg(arr)
    assert f.stamp_ns == 1_000_000_000 and f.tracks[0].smoothed_label == "back-right"
    assert f.tracks[0].box == pytest.approx((170.0, 85.0, 230.0, 115.0))


def test_every_parameter_is_documented_and_in_the_yaml():
    from pathlib import Path

    from pose_classifier_ros.navigation.policy_config import load_params_file, policy_schema

    repo = Path(__file__).resolve().parents[1]
    doc = (repo / "docs" / "node_side_profile_policy.md").read_text()
    missing = [p.name for p in policy_schema().parameters if f"- `{p.name}` (" not in doc]
    assert missing == []
    assert load_params_file(repo / "config" / "side_profile_policy.yaml") == PolicyNodeConfig()
