"""Orbit mode, range control, stale/unknown viewpoints and the retreat override of the policy (no ROS)."""

from __future__ import annotations

import math

import pytest

from pose_classifier_ros.navigation.policy import (
    PolicyConfig,
    PolicyFrame,
    SideProfilePolicy,
    State,
    TrackObservation,
    config_from_parameters,
    run_policy,
)
from pose_classifier_ros.navigation.viewpoint_geometry import (
    LABEL_HEADING_DEG,
    class_of_heading,
    nearest_flank,
    wrap_deg,
)
from pose_classifier_ros.parameters import replace_values

W, H = 1920, 1080
DT_NS = 100_000_000  # 10 Hz
T0 = 5_000_000_000


def track(
    label: str,
    size: float = 200.0,
    cx: float = W / 2,
    stable: bool = True,
    label_age_s: float = 0.0,
    heading: float = math.nan,
    i: int = 0,
    tid: str = "a",
) -> TrackObservation:
    """A side-view-shaped box (width = size, height = size / 2) centred at cx."""
    stamp = T0 + i * DT_NS - int(label_age_s * 1e9)
    return TrackObservation(
        tid,
        (cx - size / 2, H / 2 - size / 4, cx + size / 2, H / 2 + size / 4),
        0.9,
        label,
        stable,
        label_stamp_ns=stamp,
        heading_deg=heading,
    )


def frame(i: int, *tracks: TrackObservation, vigilance: float | None = None) -> PolicyFrame:
    return PolicyFrame(
        stamp_ns=T0 + i * DT_NS, width=W, height=H, tracks=list(tracks), frame_id="cam", vigilance=vigilance
    )


def run_labels(labels, config=None, **kw):
    return run_policy([frame(i, track(lab, i=i, **kw)) for i, lab in enumerate(labels)], config or PolicyConfig())


@pytest.mark.parametrize(
    "label, flank, direction",
    [
        ("front-left", "left", 1),
        ("back-left", "left", -1),
        ("front-right", "right", -1),
        ("back-right", "right", 1),
        ("front", "left", 1),  # exactly between the flanks: orient.scan_direction left = counter-clockwise
        ("back", "right", 1),  # ... which from the back reaches the right flank
    ],
)
def test_orbit_goes_the_short_way_round_to_the_nearer_flank(label, flank, direction):
    # direction +1 = increase h = circle counter-clockwise = fly right (linear.y < 0) while yawing left.
    out = run_labels([label], config_from_parameters({"orient.orbit_speed": 2.5}))[0]
    assert out.state == State.ORIENT and out.flank == flank and out.label_fresh
    assert out.lateral_speed == pytest.approx(-direction * 2.5)
    assert out.yaw_rate == 0.0  # box centred: no centering correction


def test_orbit_scan_direction_right_and_fixed_flank():
    assert run_labels(["front"], config_from_parameters({"orient.scan_direction": "right"}))[0].flank == "right"
    out = run_labels(["front-right"], config_from_parameters({"orient.flank": "left", "orient.orbit_speed": 1.0}))[0]
    assert out.flank == "left" and out.lateral_speed == pytest.approx(-1.0)  # the long way, as asked: h -45 -> +90


def test_flank_is_kept_on_front_back_views_and_switched_when_the_other_is_clearly_nearer():
    outs = run_labels(
        ["front-left", "front", "front", "front-right"], config_from_parameters({"orient.orbit_speed": 2.0})
    )
    assert [o.flank for o in outs] == ["left", "left", "left", "right"]
    assert [o.lateral_speed for o in outs] == pytest.approx([-2.0, -2.0, -2.0, 2.0])


def test_centering_yaw_keeps_the_target_in_the_middle():
    cfg = config_from_parameters({"centering.gain": 1.0, "centering.max_yaw_rate": 0.3})
    right_of_centre = run_policy([frame(0, track("front-left", cx=W / 2 + 0.2 * W / 2))], cfg)[0]
    assert right_of_centre.yaw_rate == pytest.approx(-0.2)  # box right of centre: turn right (REP-103)
    far_left = run_policy([frame(0, track("front-left", cx=10.0))], cfg)[0]
    assert far_left.yaw_rate == pytest.approx(0.3)  # capped


def test_heading_estimate_is_used_and_slows_the_orbit_near_the_flank():
    cfg = config_from_parameters({"orient.orbit_speed": 2.0, "orient.orbit_slowdown_deg": 20.0})
    far = run_labels(["front-left"], cfg, heading=30.0)[0]
    near = run_labels(["left"], cfg, heading=80.0)[0]
    assert far.heading_deg == 30.0 and far.lateral_speed == pytest.approx(-2.0)
    assert near.heading_deg == 80.0 and near.lateral_speed == pytest.approx(-1.0)  # 10 deg left of 20: half speed
    past = run_labels(["left"], cfg, heading=95.0)[0]
    assert past.lateral_speed == pytest.approx(0.5)  # 5 deg past the flank: circle back, clockwise


def test_label_only_orbit_overshoots_into_the_side_sector_by_the_centering_yaw():
    # Off-centre box: the centering yaw (0.5 rad/s, what keeps an orbiting camera on target) measures the orbit.
    cfg = config_from_parameters(
        {
            "orient.orbit_speed": 2.0,
            "orient.side_overshoot_deg": 10.0,
            "centering.gain": 1.0,
            "centering.max_yaw_rate": 0.5,
        }
    )
    frames = [frame(i, track("front-left" if i < 3 else "left", i=i, cx=10.0)) for i in range(10)]
    lateral = [o.lateral_speed for o in run_policy(frames, cfg)]
    # 0.5 rad/s = 2.86 deg per frame: 10 deg are done after 4 frames of the side view (the first one included).
    assert lateral[:3] == pytest.approx([-2.0] * 3)
    assert lateral[3:7] == pytest.approx([-1.0] * 4) and lateral[7:] == pytest.approx([0.0] * 3)


def test_range_control_closes_in_backs_off_and_captures_in_band_with_the_flank():
    cfg = config_from_parameters(
        {
            "capture.target_pixels": 500.0,
            "capture.size_band": 0.1,
            "approach.speed": 2.0,
            "approach.speed_gain": 3.0,
            "approach.min_side_votes": 2,
            "approach.window": 3,
        }
    )
    small = run_policy([frame(0, track("left", size=250.0))], cfg)[0]
    assert small.forward_speed == pytest.approx(1.5) and small.lateral_speed == 0.0  # 3 * (1 - 250/500)
    big = run_policy([frame(0, track("front-left", size=700.0))], cfg)[0]
    assert big.forward_speed == pytest.approx(-1.2)  # too close: back off, 3 * (1 - 700/500)
    sizes = [300.0, 400.0, 440.0, 460.0, 470.0]
    outs = run_policy([frame(i, track("right", size=s, i=i)) for i, s in enumerate(sizes)], cfg)
    assert [o.state for o in outs] == [State.ORIENT, State.APPROACH, State.APPROACH, State.CAPTURE, State.CAPTURE]
    cap = outs[3].capture
    assert cap is not None and cap.reason == "target_size" and cap.flank == "right"
    assert cap.target_size_px == pytest.approx(460.0) and outs[4].capture is None
    assert outs[3].forward_speed == outs[3].lateral_speed == outs[3].yaw_rate == 0.0


def test_no_capture_in_band_without_a_side_view_as_latest_label():
    cfg = config_from_parameters({"approach.min_side_votes": 2, "approach.window": 3})
    script = [("left", 300.0), ("left", 300.0), ("back-left", 500.0), ("left", 500.0)]
    outs = run_policy([frame(i, track(lab, size=size, i=i)) for i, (lab, size) in enumerate(script)], cfg)
    assert [o.state for o in outs] == [State.ORIENT, State.APPROACH, State.APPROACH, State.CAPTURE]
    assert outs[2].capture is None  # 2 of the last 3 are side views, in band, but the latest is back-left
    assert outs[3].capture.reason == "target_size" and outs[3].capture.flank == "left"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label_age_s": 2.5},  # older than viewpoint.max_age_s (2.0): stale
        {"stable": False},  # not stable yet (target.require_stable)
    ],
)
def test_stale_or_unstable_viewpoints_hold_all_motion(kwargs):
    for mode in ("orbit", "yaw"):
        outs = run_labels(
            ["front-left"] * 3, config_from_parameters({"orient.mode": mode}), cx=100.0, size=100.0, **kwargs
        )
        assert all(o.state == State.ORIENT and not o.label_fresh for o in outs)
        assert all((o.yaw_rate, o.forward_speed, o.lateral_speed) == (0.0, 0.0, 0.0) for o in outs)


def test_unknown_label_and_missing_target_hold_and_fresh_label_moves_again():
    cfg = config_from_parameters({"approach.min_side_votes": 1, "approach.window": 1})
    frames = [
        frame(0, track("left", size=200.0, i=0)),  # APPROACH, moving forward
        frame(1, track("", size=200.0, i=1)),  # UNKNOWN (255) -> ""
        frame(2),  # target not in the frame
        frame(3, track("left", size=200.0, i=3, label_age_s=1.0)),
    ]  # 1 s old: still fresh enough
    outs = run_policy(frames, cfg)
    assert outs[0].forward_speed > 0
    assert all((o.yaw_rate, o.forward_speed, o.lateral_speed) == (0.0, 0.0, 0.0) for o in outs[1:3])
    assert outs[3].forward_speed > 0 and outs[3].label_fresh


def test_max_age_zero_turns_the_age_check_off_and_zero_label_stamp_counts_as_fresh():
    old = run_labels(["front-left"], config_from_parameters({"viewpoint.max_age_s": 0.0}), label_age_s=100.0)[0]
    assert old.label_fresh and old.lateral_speed != 0.0
    no_stamp = SideProfilePolicy().step(frame(0, TrackObservation("a", (900, 500, 1000, 550), 0.9, "front-left")))
    assert no_stamp.label_fresh and no_stamp.lateral_speed != 0.0


def test_vigilance_retreats_holds_and_resumes():
    cfg = config_from_parameters(
        {
            "disturbance.retreat_speed": 1.5,
            "disturbance.retreat_s": 0.3,
            "disturbance.hold_s": 0.5,
            "disturbance.vigilance_threshold": 0.5,
        }
    )
    policy = SideProfilePolicy(cfg)
    assert policy.step(frame(0, track("front-left", i=0), vigilance=0.2)).state == State.ORIENT
    alarm = policy.step(frame(1, track("front-left", i=1), vigilance=0.9))
    assert alarm.state == State.RETREAT and alarm.transitioned and "vigilance 0.90" in alarm.reason
    outs = [alarm] + [policy.step(frame(i, track("front-left", i=i), vigilance=0.0)) for i in range(2, 11)]
    # Back off for 0.3 s (frames 1..3), hold for 0.5 s (4..7), ORIENT again at frame 9 (0.8 s after the alarm).
    assert [o.forward_speed for o in outs[:3]] == pytest.approx([-1.5] * 3)
    assert all(o.lateral_speed == 0.0 and o.yaw_rate == 0.0 for o in outs[:8])
    assert [o.state for o in outs[3:8]] == [State.RETREAT] * 5 and outs[3].forward_speed == 0.0
    assert outs[8].state == State.ORIENT and "disturbance over" in outs[8].reason
    assert outs[9].lateral_speed != 0.0  # orbiting again


def test_vigilance_while_holding_extends_the_hold():
    cfg = config_from_parameters({"disturbance.retreat_s": 0.0, "disturbance.hold_s": 0.3})
    policy = SideProfilePolicy(cfg)
    states = [policy.step(frame(i, track("front", i=i), vigilance=1.0 if i in (1, 3) else 0.0)).state for i in range(9)]
    assert states == [State.ORIENT] + [State.RETREAT] * 5 + [State.ORIENT] * 3


def test_box_speed_jump_retreats_without_vigilance_input():
    cfg = config_from_parameters(
        {
            "disturbance.box_speed_jump": 2.0,
            "disturbance.retreat_s": 1.0,
            "disturbance.hold_s": 1.0,
            "centering.gain": 0.0,
        }
    )
    policy = SideProfilePolicy(cfg)
    # 200 px box: a steady 40 px per frame (the drone's own smooth motion) is no jump; then the box suddenly moves
    # 100 px per frame: its velocity changes by 600 px/s = 3 box sizes/s.
    xs = [960.0, 1000.0, 1040.0, 1080.0, 1180.0]
    outs = [policy.step(frame(i, track("front-left", cx=x, i=i))) for i, x in enumerate(xs)]
    assert [o.state for o in outs] == [State.ORIENT] * 4 + [State.RETREAT]
    assert "box speed jump 3.0 box sizes/s" in outs[4].reason and outs[4].forward_speed < 0


def test_box_speed_jump_discounts_the_own_yaw():
    # Frames 0-1: stale labels, the policy holds (yaw 0) with the box left of centre. Frame 2: a fresh label, the
    # centering yaw starts (0.479 rad/s); with a 60 deg camera (focal 1663 px) the scene then moves right by
    # 80 px per frame: the box doing just that is the drone's own motion, not a jump.
    cfg = config_from_parameters(
        {
            "disturbance.box_speed_jump": 2.0,
            "disturbance.camera_hfov_deg": 60.0,
            "centering.gain": 1.0,
            "centering.max_yaw_rate": 0.5,
        }
    )
    focal = W / 2 / math.tan(math.radians(30.0))
    yaw = (W / 2 - 500.0) / (W / 2)
    script = [(500.0, 2.5), (500.0, 2.5), (500.0, 0.0), (500.0 + focal * yaw * 0.1, 0.0)]

    def run(config):
        return run_policy(
            [frame(i, track("front-left", cx=x, i=i, label_age_s=age)) for i, (x, age) in enumerate(script)], config
        )

    outs = run(cfg)
    assert [o.yaw_rate for o in outs[:3]] == pytest.approx([0.0, 0.0, yaw])
    assert all(o.state == State.ORIENT for o in outs)
    # Without the correction (a 170 deg lens makes the yaw's image motion negligible) the same start is a jump.
    assert run(replace_values(cfg, {"disturbance.camera_hfov_deg": 170.0}))[3].state == State.RETREAT


def test_geometry_helpers_are_consistent_with_labels():
    for heading in LABEL_HEADING_DEG.values():
        assert class_of_heading(heading) == class_of_heading(heading + 20) == class_of_heading(heading - 20)
        assert -180.0 <= heading < 180.0 and wrap_deg(heading + 360) == heading
    assert LABEL_HEADING_DEG["left"] == 90.0 and LABEL_HEADING_DEG["right"] == -90.0
    assert nearest_flank(10.0) == "left" and nearest_flank(-170.0) == "right"
    assert nearest_flank(-10.0, current="left", margin_deg=60.0) == "left"
