"""The closed-loop simulator (geometry, viewpoint model, command integration), the policy in the loop, nav-sim."""

from __future__ import annotations

import json
import math

import pytest

from pose_classifier_ros import cli
from pose_classifier_ros.labels import HEADING_DEG, VIEWPOINTS
from pose_classifier_ros.navigation.nav_sim import Scenario, make_simulator, policy_config_for, run_episode
from pose_classifier_ros.navigation.policy import PolicyConfig, SideProfilePolicy, State, config_from_parameters
from pose_classifier_ros.navigation.sim import Animal, Drone, SimConfig, Simulator, drone_facing
from pose_classifier_ros.navigation.viewpoint_geometry import class_of_heading, relative_heading_deg

EXACT = {"p_adjacent": 0.0, "p_random": 0.0, "label_latency_s": 0.0, "box_noise_px": 0.0}


def sim_at(relative_heading: float, range_m: float = 20.0, animal_heading: float = 90.0, **cfg) -> Simulator:
    animal = Animal(heading_deg=animal_heading)
    return Simulator(SimConfig(**{**EXACT, **cfg}), animal, drone_facing(animal, relative_heading, range_m))


@pytest.mark.parametrize("name", VIEWPOINTS)
@pytest.mark.parametrize("animal_heading", [90.0, -150.0])
def test_viewpoint_of_each_sector_from_the_relative_angle(name, animal_heading):
    heading = HEADING_DEG[VIEWPOINTS.index(name)]
    for offset in (-20.0, 0.0, 20.0):  # anywhere inside the 45-degree sector
        sim = sim_at(heading + offset, animal_heading=animal_heading)
        assert sim.relative_heading() == pytest.approx(((heading + offset + 180) % 360) - 180, abs=1e-6)
        frame, obs = sim.observe()
        assert VIEWPOINTS[obs.true_class] == name
        assert frame.tracks and frame.tracks[0].smoothed_label == name  # exact model: the label is the truth


def test_left_means_the_animals_left_flank_faces_the_camera():
    # An animal facing north (+y) has its left flank to the west: a camera west of it sees "left" (h = +90).
    assert relative_heading_deg((0.0, 0.0), 90.0, (-10.0, 0.0)) == pytest.approx(90.0)
    assert relative_heading_deg((0.0, 0.0), 90.0, (10.0, 0.0)) == pytest.approx(-90.0)  # right flank
    assert relative_heading_deg((0.0, 0.0), 90.0, (0.0, 10.0)) == pytest.approx(0.0)  # it faces the camera
    assert relative_heading_deg((0.0, 0.0), 90.0, (0.0, -10.0)) == pytest.approx(-180.0)  # back


def test_sector_boundaries_and_the_wrap_at_180():
    assert [VIEWPOINTS[class_of_heading(h)] for h in (22.0, 23.0, -22.0, -23.0, 67.0, 68.0, 112.0, 113.0)] == [
        "front",
        "front-left",
        "front",
        "front-right",
        "front-left",
        "left",
        "left",
        "back-left",
    ]
    for h in (157.6, 179.9, 180.0, -180.0, -179.9, -157.6, 540.0):
        assert VIEWPOINTS[class_of_heading(h)] == "back", h
    assert VIEWPOINTS[class_of_heading(-157.4)] == "back-right" and VIEWPOINTS[class_of_heading(157.4)] == "back-left"


def test_box_geometry_side_wider_than_front_and_shrinking_with_distance():
    side, _ = sim_at(90.0, range_m=20.0).observe()
    front, _ = sim_at(0.0, range_m=20.0).observe()
    far, _ = sim_at(90.0, range_m=40.0).observe()
    w = [f.tracks[0].box[2] - f.tracks[0].box[0] for f in (side, front, far)]
    assert w[0] > 2.5 * w[1]  # 1.6 m long vs 0.5 m wide
    cfg = SimConfig()
    slant20, slant40 = math.hypot(20.0, cfg.altitude_m), math.hypot(40.0, cfg.altitude_m)
    assert w[0] == pytest.approx(cfg.focal_px * 1.6 / slant20) and w[2] == pytest.approx(w[0] * slant20 / slant40)
    cx = (side.tracks[0].box[0] + side.tracks[0].box[2]) / 2
    assert cx == pytest.approx(cfg.image_width / 2)  # facing it: centred


def test_animal_outside_the_field_of_view_gives_no_box():
    sim = sim_at(90.0)
    sim.drone.yaw += math.radians(20.0)  # half field of view is 15 deg: the animal's centre leaves the image
    frame, obs = sim.observe()
    assert frame.tracks == [] and not obs.visible
    sim.drone.yaw -= math.radians(30.0)  # camera 10 deg right of the animal: it is left of centre
    frame, _ = sim.observe()
    cfg = SimConfig()
    assert frame.tracks and frame.tracks[0].center_x == pytest.approx(
        cfg.image_width / 2 - cfg.focal_px * math.tan(math.radians(10.0))
    )


def test_command_integration_acceleration_speed_and_body_frame():
    cfg = SimConfig(max_speed_m_s=4.0, max_accel_m_s2=2.0, dt_s=0.1, substeps=4, **EXACT)
    sim = Simulator(cfg, Animal(x=100.0), Drone(0.0, 0.0, yaw=math.radians(90.0)))
    for _ in range(20):  # 2 s forward at 1 m/s, facing north: 0.5 s ramp at 2 m/s^2, then 1 m/s
        sim.apply(0.0, 1.0, 0.0)
    assert sim.drone.vy == pytest.approx(1.0) and abs(sim.drone.vx) < 1e-9
    assert sim.drone.y == pytest.approx(2.0 - 0.25, abs=0.02) and sim.t == pytest.approx(2.0)
    sim = Simulator(cfg, Animal(x=100.0), Drone(0.0, 0.0, yaw=math.radians(90.0)))
    for _ in range(40):  # lateral + = left: facing north, that is west; 10 m/s is capped at 4 m/s
        sim.apply(0.0, 0.0, 10.0)
    assert sim.drone.vx == pytest.approx(-4.0) and sim.drone.x < -10.0
    sim = Simulator(SimConfig(max_yaw_rate=1.0, max_yaw_accel=2.0, **EXACT), Animal(), Drone(0.0, 0.0, 0.0))
    for _ in range(10):
        sim.apply(3.0, 0.0, 0.0)
    assert sim.drone.yaw_rate == pytest.approx(1.0) and sim.drone.yaw == pytest.approx(0.75, abs=0.02)


def test_counter_clockwise_orbit_command_increases_the_relative_heading():
    sim = sim_at(20.0, range_m=10.0)
    h0 = sim.relative_heading()
    for _ in range(30):  # fly right at 1 m/s while yawing left at v/r: circle counter-clockwise
        sim.apply(0.1, 0.0, -1.0)
    assert sim.relative_heading() - h0 == pytest.approx(math.degrees(3.0 / 10.0), abs=3.0)
    assert sim.distance() == pytest.approx(10.0, abs=0.3)


def test_confusion_model_adjacent_and_random_errors():
    sim = sim_at(0.0, p_adjacent=1.0)
    labels = {VIEWPOINTS[sim.confuse(VIEWPOINTS.index("front"))] for _ in range(200)}
    assert labels == {"front-left", "front-right"}
    sim = sim_at(0.0, p_random=1.0)
    assert {sim.confuse(VIEWPOINTS.index("left")) for _ in range(400)} == set(range(8))


def test_label_latency_and_label_age():
    sim = sim_at(0.0, range_m=15.0, label_latency_s=1.0, animal_heading=90.0)
    sim.animal.turn_rate_deg_s = -60.0  # h grows 60 deg/s: front -> front-left after ~0.4 s
    seen = []
    for _ in range(20):
        frame, obs = sim.observe()
        track = frame.tracks[0]
        seen.append(
            (
                obs.t_s,
                track.smoothed_label,
                (frame.stamp_ns - track.label_stamp_ns) * 1e-9 if track.label_stamp_ns else None,
            )
        )
        sim.apply(0.0, 0.0, 0.0)
    assert all(label == "" and age is None for _, label, age in seen[:10])  # nothing classified 1 s ago yet
    assert all(age == pytest.approx(1.0) for _, _, age in seen[10:])
    assert seen[10][1] == "front" and seen[-1][1] == "front-left"  # the view of 1 s before (voting lags a bit more)
    scheduled = sim_at(90.0, label_period_s=0.5)
    ages = []
    for _ in range(10):
        frame, _ = scheduled.observe()
        ages.append(round((frame.stamp_ns - frame.tracks[0].label_stamp_ns) * 1e-9, 3))
        scheduled.apply(0.0, 0.0, 0.0)
    assert ages == [0.0, 0.1, 0.2, 0.3, 0.4, 0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("start", VIEWPOINTS)
def test_orbit_policy_reaches_a_flank_from_each_start_on_a_static_animal(start):
    sc = Scenario(start, 20.0, "static", "nominal", seed=1, mode="orbit")
    result = run_episode(
        make_simulator(sc), SideProfilePolicy(policy_config_for("orbit", PolicyConfig())), duration_s=40.0
    )
    assert result["success"], result
    assert (
        result["true_view_at_capture"] in ("left", "right")
        and result["capture_flank"] == result["true_view_at_capture"]
    )
    assert abs(abs(result["true_heading_at_capture_deg"]) - 90.0) < 22.5 and not result["too_close"]
    expected = {"front-left": "left", "back-left": "left", "front-right": "right", "back-right": "right"}
    if start in expected:  # the short way round
        assert result["capture_flank"] == expected[start]
    if start in ("left", "right"):
        assert result["lateral_effort_m"] < 5.0  # already there: (almost) no orbit


@pytest.mark.parametrize("start", ["front", "back-right"])
def test_orbit_policy_with_a_published_heading_estimate(start):
    sc = Scenario(start, 25.0, "turning", "nominal", seed=2)
    probe = make_simulator(sc, SimConfig(heading_noise_deg=10.0))
    for _ in range(3):  # past the 0.2 s label latency
        probe.observe()
        probe.apply(0.0, 0.0, 0.0)
    frame, obs = probe.observe()
    assert abs(frame.tracks[0].heading_deg - obs.true_heading_deg) < 45.0  # published track_heading_deg
    sim = make_simulator(sc, SimConfig(heading_noise_deg=10.0))
    result = run_episode(sim, SideProfilePolicy(PolicyConfig()), duration_s=60.0)
    assert result["success"], result


def test_yaw_only_mode_on_a_plain_drone_loses_a_front_start_and_a_self_orbiting_platform_reaches_the_flank():
    plain = run_episode(
        make_simulator(Scenario("front-left", 20.0, "static", "nominal", 1, "yaw")),
        SideProfilePolicy(policy_config_for("yaw", PolicyConfig())),
        duration_s=30.0,
    )
    assert not plain["success"] and plain["lateral_effort_m"] == 0.0
    orbiting = run_episode(
        make_simulator(Scenario("front-left", 20.0, "static", "nominal", 1, "yaw-self-orbit")),
        SideProfilePolicy(policy_config_for("yaw", PolicyConfig())),
        duration_s=40.0,
    )
    assert orbiting["success"] and orbiting["capture_flank"] == "left", orbiting


def test_stale_labels_hold_the_drone_in_the_loop():
    # Labels arrive 3 s late: older than viewpoint.max_age_s (2 s), so the policy never moves the drone.
    sc = Scenario("front-left", 20.0, "static", "nominal", 1, "orbit")
    sim = make_simulator(sc, SimConfig(label_latency_s=3.0))
    sim.cfg.label_latency_s = 3.0
    start = (sim.drone.x, sim.drone.y)
    result = run_episode(sim, SideProfilePolicy(PolicyConfig()), duration_s=8.0)
    assert not result["captured"] and result["path_length_m"] == 0.0
    assert (sim.drone.x, sim.drone.y) == start


def test_fleeing_animal_triggers_the_retreat():
    animal = Animal(heading_deg=90.0, flee_at_s=3.0, flee_speed_m_s=6.0)
    drone = drone_facing(animal, 45.0, 15.0)
    sim = Simulator(SimConfig(vigilance_input=True, **EXACT), animal, drone, seed=0)
    policy = SideProfilePolicy(
        config_from_parameters(
            {"disturbance.retreat_speed": 1.0, "disturbance.retreat_s": 2.0, "disturbance.hold_s": 3.0}
        )
    )
    states, forward = [], []
    for _ in range(60):
        frame, _ = sim.observe()
        out = policy.step(frame)
        states.append(out.state)
        forward.append(out.forward_speed)
        sim.apply(out.yaw_rate, out.forward_speed, out.lateral_speed)
    first = states.index(State.RETREAT)
    assert 28 <= first <= 31  # the vigilance input rises at 3.0 s
    assert all(f == pytest.approx(-1.0) for f in forward[first : first + 20])
    assert all(s == State.RETREAT for s in states[first:])


def test_nav_sim_cli_writes_the_json_report(tmp_path, capsys):
    out = tmp_path / "nav" / "out.json"
    assert (
        cli.main(["nav-sim", "--scenarios", "quick", "--json", str(out), "--modes", "orbit,yaw", "--duration", "40"])
        == 0
    )
    report = json.loads(out.read_text())
    rows = report["scenarios"]
    assert len(rows) == 16 and {r["mode"] for r in rows} == {"orbit", "yaw"}
    assert {r["start"] for r in rows} == set(VIEWPOINTS)
    for key in (
        "success",
        "time_to_capture_s",
        "path_length_m",
        "yaw_effort_rad",
        "lateral_effort_m",
        "oscillations",
        "too_close",
        "min_distance_m",
        "capture_flank",
    ):
        assert key in rows[0], key
    orbit, yaw = report["summary"]["orbit"]["overall"], report["summary"]["yaw"]["overall"]
    assert orbit["success_rate"] == 1.0 and yaw["success_rate"] < 0.5
    assert report["targets"] == [
        {
            "target": report["targets"][0]["target"],
            "mode": "orbit",
            "group": "nominal/static",
            "success_rate": 1.0,
            "threshold": 1.0,
            "met": True,
        }
    ]
    assert report["policy"]["orient"]["mode"] == "orbit" and report["sim"]["hfov_deg"] == 30.0
    printed = capsys.readouterr().out
    assert "target MET" in printed and "orbit" in printed and "yaw" in printed


def test_nav_sim_cli_rejects_bad_arguments(tmp_path, capsys):
    assert cli.main(["nav-sim", "--modes", "hover"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("side_profile_policy:\n  ros__parameters:\n    orient:\n      mode: fly\n")
    assert cli.main(["nav-sim", "--params", str(bad)]) == 2
    assert "orient.mode" in capsys.readouterr().err


def test_simulation_is_deterministic_per_seed():
    def run(seed):
        sc = Scenario("back", 25.0, "turning", "latency1s_adj20", seed=seed)
        return run_episode(make_simulator(sc), SideProfilePolicy(PolicyConfig()), duration_s=30.0)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_nav_sim_disturbance_suite(tmp_path):
    out = tmp_path / "dist.json"
    assert (
        cli.main(["nav-sim", "--scenarios", "disturbance", "--modes", "orbit", "--duration", "30", "--json", str(out)])
        == 0
    )
    summary = json.loads(out.read_text())["summary"]["orbit"]
    fled = summary["vigilance/fleeing"]
    assert fled["scenarios"] == 8 and fled["success_rate"] == 1.0 and fled["retreated"] == 8
    assert summary["vigilance/static"]["false_alarms"] == 0 and summary["vigilance/static"]["success_rate"] == 1.0
    assert summary["box_speed/fleeing"]["retreated"] == 8
