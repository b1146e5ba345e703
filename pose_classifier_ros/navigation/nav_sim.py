"""`pose-classifier nav-sim`: run the side-profile policy in the closed-loop simulator over a scenario suite.

    pose-classifier nav-sim --scenarios default --json out.json [--params config/side_profile_policy.yaml]

A scenario is a start (relative heading of the animal as seen from the drone, range), an animal motion
(static, turning 10 deg/s, walking 1 m/s), a viewpoint condition (``nominal``: 0.2 s label latency,
5 % adjacent-class and 1 % random errors; ``latency1s_adj20``: 1 s latency, 20 % adjacent-class errors),
a seed, and a policy mode (``orbit``: the policy's own orbit on a velocity-controlled drone; ``yaw``: the
yaw-only mode on the same drone; ``yaw-self-orbit``: yaw-only on a platform that orbits by itself). The ``disturbance`` suite checks the retreat override instead.

Success: the policy captured on the target size while the true view was a side view (left/right)
for the last 0.5 s (``SIDE_HOLD_S``), the true box longer side was within the capture band, and the drone
never came closer than ``min_distance_m``; all within ``duration_s`` of simulated time.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..labels import HEADING_DEG, SIDE_VIEWS, VIEWPOINTS
from ..parameters import replace_values
from .policy import SideProfilePolicy, State
from .policy_config import PolicyConfig, load_params_file
from .sim import Animal, SimConfig, Simulator, drone_facing

_logger = logging.getLogger(__name__)

FLEE_AT_S = 4.0
MOTIONS = {
    "static": {},
    "turning": {"turn_rate_deg_s": 10.0},
    "walking": {"speed_m_s": 1.0},
    "fleeing": {"flee_at_s": FLEE_AT_S},
}  # fleeing: runs away from the drone at 6 m/s from FLEE_AT_S on
DEFAULT_MOTIONS = ("static", "turning", "walking")
_NOMINAL = {"label_latency_s": 0.2, "p_adjacent": 0.05, "p_random": 0.01}
CONDITIONS = {
    "nominal": _NOMINAL,
    "latency1s_adj20": {"label_latency_s": 1.0, "p_adjacent": 0.2, "p_random": 0.01},
    # Disturbance suite: a vigilance input (1 while fleeing), or none and the policy's box-speed detector.
    "vigilance": {**_NOMINAL, "vigilance_input": True},
    "box_speed": _NOMINAL,
}
# Policy changes per condition (on top of the configured policy).
POLICY_CHANGES = {"box_speed": {"disturbance.box_speed_jump": 2.0, "disturbance.camera_hfov_deg": SimConfig().hfov_deg}}
RETREAT_WITHIN_S = 1.0  # disturbance suite: success = RETREAT within this of the flight start, no false alarm
MODES = {"orbit": ("orbit", "velocity"), "yaw": ("yaw", "velocity"), "yaw-self-orbit": ("yaw", "self-orbit")}
RANGES_M = (15.0, 25.0, 40.0)
# The true view must have been a side view this long at capture: the K=5 frames (10 Hz) of evidence the
# policy's default approach.min_side_votes needs, so a capture on a view that only flickered counts as a failure.
SIDE_HOLD_S = 0.5
# (name, mode, condition, motion, threshold): the targets, checked on every run of the suite.
TARGETS = (
    ("static, nominal: success from every start within 60 s", "orbit", "nominal", "static", 1.0),
    ("turning 10 deg/s, nominal", "orbit", "nominal", "turning", 0.9),
    ("static, 1 s latency + 20 % adjacent confusion", "orbit", "latency1s_adj20", "static", 0.9),
)


@dataclass(frozen=True)
class Scenario:
    start: str  # viewpoint class at the start (the true relative heading's sector)
    range_m: float
    motion: str  # key of MOTIONS
    condition: str  # key of CONDITIONS
    seed: int
    mode: str = "orbit"  # key of MODES

    @property
    def name(self) -> str:
        return f"{self.mode}/{self.condition}/{self.motion}/{self.start}@{self.range_m:g}m/s{self.seed}"


SUITES = ("default", "quick", "disturbance")


def build_suite(name: str = "default", seeds: int = 1, modes=("orbit", "yaw")) -> list[Scenario]:
    """`default`: 8 starts x 3 ranges x 3 motions x 2 conditions x seeds x modes; `quick`: one range, static;
    `disturbance`: 8 starts at 25 m, fleeing and static animals, with a vigilance input or the box-speed detector."""
    if name not in SUITES:
        raise ValueError(f"unknown scenario suite {name!r}; known: {', '.join(SUITES)}")
    ranges = RANGES_M if name == "default" else (25.0,)
    motions = {"default": DEFAULT_MOTIONS, "quick": ("static",), "disturbance": ("fleeing", "static")}[name]
    conditions = {
        "default": ("nominal", "latency1s_adj20"),
        "quick": ("nominal",),
        "disturbance": ("vigilance", "box_speed"),
    }[name]
    return [
        Scenario(start, r, motion, cond, seed, mode)
        for mode in modes
        for cond in conditions
        for motion in motions
        for start in VIEWPOINTS
        for r in ranges
        for seed in range(seeds)
    ]


def make_simulator(scenario: Scenario, sim_config: SimConfig | None = None) -> Simulator:
    """The scenario's world: the seed jitters the start heading (+-10 deg), the yaw (+-3 deg), the turn sign."""
    rng = random.Random(zlib.crc32(f"{scenario.start}/{scenario.range_m}/{scenario.motion}/{scenario.seed}".encode()))
    cfg = replace(sim_config or SimConfig(), platform=MODES[scenario.mode][1], **CONDITIONS[scenario.condition])
    motion = dict(MOTIONS[scenario.motion])
    if "turn_rate_deg_s" in motion and rng.random() < 0.5:
        motion["turn_rate_deg_s"] = -motion["turn_rate_deg_s"]
    if "flee_at_s" in motion:  # away from the drone, 30..70 deg to either side
        motion["flee_turn_deg"] = rng.choice((-1.0, 1.0)) * rng.uniform(30.0, 70.0)
    animal = Animal(heading_deg=rng.uniform(-180.0, 180.0), **motion)
    start_h = HEADING_DEG[VIEWPOINTS.index(scenario.start)] + rng.uniform(-10.0, 10.0)
    drone = drone_facing(animal, start_h, scenario.range_m, rng.uniform(-3.0, 3.0))
    return Simulator(cfg, animal, drone, seed=scenario.seed)


def run_episode(
    sim: Simulator, policy: SideProfilePolicy, duration_s: float | None = None, side_hold_s: float = SIDE_HOLD_S
) -> dict:
    """Run the closed loop until capture or `duration_s`; returns the scenario's metrics."""
    cfg = policy.config
    duration = sim.cfg.duration_s if duration_s is None else duration_s
    path = yaw_effort = lateral_effort = 0.0
    min_dist = math.inf
    reversals = drops = 0
    last_sign = 0
    side_since = None
    prev_state = policy.state
    result = {
        "captured": False,
        "capture_reason": "",
        "capture_flank": "",
        "time_to_capture_s": math.nan,
        "true_heading_at_capture_deg": math.nan,
        "true_view_at_capture": "",
        "side_held_s": 0.0,
        "size_in_band": False,
        "retreats": 0,
        "first_retreat_s": math.nan,
    }
    steps = int(round(duration / sim.cfg.dt_s))
    for _ in range(steps):
        frame, obs = sim.observe()
        min_dist = min(min_dist, obs.distance_m)
        side = VIEWPOINTS[obs.true_class] in SIDE_VIEWS
        side_since = (side_since if side_since is not None else obs.t_s) if side else None
        out = policy.step(frame)
        drops += prev_state == State.APPROACH and out.state == State.ORIENT
        if out.state == State.RETREAT and out.transitioned:
            result["retreats"] += 1
            if result["retreats"] == 1:
                result["first_retreat_s"] = round(obs.t_s, 2)
        prev_state = out.state
        # Direction reversals of the orbit command (ignoring creeping below 10 % of the orbit speed / yaw rate).
        value, floor = (
            (out.lateral_speed, 0.1 * cfg.orient.orbit_speed)
            if cfg.orient.mode == "orbit"
            else (out.yaw_rate, 0.1 * cfg.orient.yaw_rate)
        )
        sign = (value > floor) - (value < -floor)
        if sign and last_sign and sign != last_sign:
            reversals += 1
        last_sign = sign or last_sign
        if out.capture is not None:
            # The band, widened by the detector's pixel noise (3 sigma of a box side's two edges).
            band = cfg.capture.size_band * cfg.capture.target_pixels + 3 * math.sqrt(2) * sim.cfg.box_noise_px
            result.update(
                captured=True,
                capture_reason=out.capture.reason,
                capture_flank=out.capture.flank,
                time_to_capture_s=round(obs.t_s, 2),
                true_heading_at_capture_deg=round(obs.true_heading_deg, 1),
                true_view_at_capture=VIEWPOINTS[obs.true_class],
                side_held_s=round(obs.t_s - side_since, 2) if side_since is not None else 0.0,
                size_in_band=cfg.capture.target_pixels > 0
                and abs(obs.true_longer_side_px - cfg.capture.target_pixels) <= band,
            )
            break
        drone = sim.drone
        x0, y0 = drone.x, drone.y
        sim.apply(out.yaw_rate, out.forward_speed, out.lateral_speed)
        path += math.hypot(drone.x - x0, drone.y - y0)
        yaw_effort += abs(out.yaw_rate) * sim.cfg.dt_s
        lateral_effort += abs(out.lateral_speed) * sim.cfg.dt_s
    too_close = min_dist < sim.cfg.min_distance_m
    success = (
        result["captured"]
        and result["capture_reason"] != "step_budget"
        and result["size_in_band"]
        and result["side_held_s"] >= side_hold_s - 1e-9
        and not too_close
    )
    return {
        "success": bool(success),
        **result,
        "final_state": policy.state.name,
        "path_length_m": round(path, 2),
        "yaw_effort_rad": round(yaw_effort, 3),
        "lateral_effort_m": round(lateral_effort, 2),
        "direction_reversals": reversals,
        "approach_drops": drops,
        "oscillations": reversals + drops,
        "min_distance_m": round(min_dist, 2),
        "too_close": bool(too_close),
    }


def policy_config_for(mode: str, base: PolicyConfig, condition: str = "") -> PolicyConfig:
    """The suite's policy: `base` (as configured; a best-effort step-budget capture counts as a failure) in the
    scenario's motion mode, with the condition's POLICY_CHANGES."""
    return replace_values(base, {"orient.mode": MODES[mode][0], **POLICY_CHANGES.get(condition, {})})


def score_disturbance(sc: Scenario, row: dict) -> dict:
    """Disturbance suite: retreat latency and false alarms; fleeing scenarios succeed on a prompt retreat."""
    flee_at = MOTIONS[sc.motion].get("flee_at_s", math.inf)
    first = row["first_retreat_s"]
    false_alarm = math.isfinite(first) and first < flee_at
    latency = first - flee_at if math.isfinite(first) and math.isfinite(flee_at) and not false_alarm else math.nan
    success = row["success"] and not false_alarm  # a static animal: the capture, without a false alarm
    if math.isfinite(flee_at):
        success = math.isfinite(latency) and latency <= RETREAT_WITHIN_S
    return {
        **row,
        "success": bool(success),
        "false_alarm": bool(false_alarm),
        "retreat_latency_s": round(latency, 2) if math.isfinite(latency) else math.nan,
    }


def run_suite(
    scenarios: list[Scenario],
    base: PolicyConfig | None = None,
    sim_config: SimConfig | None = None,
    progress: bool = False,
) -> dict:
    """Run every scenario; returns {"scenarios": rows, "summary": groups, "targets": [...]}."""
    base = base or PolicyConfig()
    rows = []
    iterator = scenarios
    if progress:
        try:
            from tqdm import tqdm

            iterator = tqdm(scenarios, desc="nav-sim", unit="scenario", disable=not sys.stderr.isatty())
        except ImportError:
            pass
    for sc in iterator:
        policy = SideProfilePolicy(policy_config_for(sc.mode, base, sc.condition))
        row = run_episode(make_simulator(sc, sim_config), policy)
        if sc.condition in ("vigilance", "box_speed"):
            row = score_disturbance(sc, row)
        rows.append({"scenario": sc.name, **asdict(sc), **row})
    summary = summarize(rows)
    return {"scenarios": rows, "summary": summary, "targets": check_targets(summary)}


def _aggregate(rows: list[dict]) -> dict:
    times = [r["time_to_capture_s"] for r in rows if r["success"]]
    flank_errors = [abs(abs(r["true_heading_at_capture_deg"]) - 90.0) for r in rows if r["success"]]
    n = len(rows)

    def mean(key):
        return round(sum(r[key] for r in rows) / n, 3) if n else math.nan

    return {
        "scenarios": n,
        "successes": sum(r["success"] for r in rows),
        "success_rate": round(sum(r["success"] for r in rows) / n, 4) if n else math.nan,
        "mean_time_to_capture_s": round(sum(times) / len(times), 2) if times else math.nan,
        "max_time_to_capture_s": max(times) if times else math.nan,
        "mean_abs_flank_error_deg": round(sum(flank_errors) / len(flank_errors), 1) if flank_errors else math.nan,
        "mean_path_length_m": mean("path_length_m"),
        "mean_yaw_effort_rad": mean("yaw_effort_rad"),
        "mean_lateral_effort_m": mean("lateral_effort_m"),
        "mean_oscillations": mean("oscillations"),
        "retreated": sum(r["retreats"] > 0 for r in rows),
        "false_alarms": sum(r.get("false_alarm", False) for r in rows),
        "too_close": sum(r["too_close"] for r in rows),
        "min_distance_m": min((r["min_distance_m"] for r in rows), default=math.nan),
    }


def summarize(rows: list[dict]) -> dict:
    """Aggregates per mode ("overall") and per mode/condition/motion."""
    groups: dict[str, dict] = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mode_rows = [r for r in rows if r["mode"] == mode]
        groups[mode] = {"overall": _aggregate(mode_rows)}
        for cond in dict.fromkeys(r["condition"] for r in mode_rows):
            for motion in dict.fromkeys(r["motion"] for r in mode_rows):
                sel = [r for r in mode_rows if r["condition"] == cond and r["motion"] == motion]
                if sel:
                    groups[mode][f"{cond}/{motion}"] = _aggregate(sel)
    return groups


def check_targets(summary: dict) -> list[dict]:
    out = []
    for name, mode, cond, motion, threshold in TARGETS:
        group = summary.get(mode, {}).get(f"{cond}/{motion}")
        if group is None:
            continue
        out.append(
            {
                "target": name,
                "mode": mode,
                "group": f"{cond}/{motion}",
                "success_rate": group["success_rate"],
                "threshold": threshold,
                "met": group["success_rate"] >= threshold,
            }
        )
    return out


def format_summary(report: dict) -> str:
    lines = [
        f"{'mode':<15} {'group':<26} {'n':>4} {'success':>8} {'t_cap s':>8} {'path m':>7} {'yaw rad':>8} "
        f"{'lat m':>6} {'osc':>5} {'close':>5}"
    ]
    for mode, groups in report["summary"].items():
        for group, g in groups.items():
            lines.append(
                f"{mode:<15} {group:<26} {g['scenarios']:>4} {g['success_rate']:>8.1%} "
                f"{g['mean_time_to_capture_s']:>8.1f} {g['mean_path_length_m']:>7.1f} "
                f"{g['mean_yaw_effort_rad']:>8.2f} {g['mean_lateral_effort_m']:>6.1f} "
                f"{g['mean_oscillations']:>5.2f} {g['too_close']:>5}"
            )
    for t in report["targets"]:
        lines.append(
            f"target {'MET ' if t['met'] else 'MISSED'} {t['success_rate']:.1%} >= {t['threshold']:.0%}: "
            f"{t['target']} ({t['mode']})"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenarios",
        default="default",
        choices=SUITES,
        help="scenario suite: default = 8 starts x 3 ranges x static/turning/walking x 2 viewpoint "
        "conditions; quick = 8 static starts at 25 m; disturbance = 8 starts at 25 m, an animal "
        "that flees at 4 s (success: RETREAT within 1 s) or stays (success: capture, no false "
        "alarm), with a vigilance input or the box-speed detector",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the per-scenario rows and summary here")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per scenario")
    parser.add_argument(
        "--modes", default="orbit,yaw", help=f"comma-separated policy modes to compare: {', '.join(MODES)}"
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="policy parameter YAML (the node's format); default: built-in defaults",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per scenario")
    parser.add_argument(
        "--heading-noise",
        type=float,
        default=None,
        metavar="DEG",
        help="also publish a per-track heading estimate (Viewpoint.track_heading_deg) with this "
        "Gaussian noise, deg; default: none (labels only, as the classifier does today)",
    )


def run(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes or args.seeds < 1 or args.duration <= 0:
        print(f"nav-sim: modes must be among {list(MODES)}, seeds >= 1, duration > 0", file=sys.stderr)
        return 2
    try:
        base = load_params_file(args.params) if args.params else PolicyConfig()
    except ValueError as exc:
        print(f"nav-sim: {exc}", file=sys.stderr)
        return 2
    sim_config = SimConfig(duration_s=args.duration)
    if args.heading_noise is not None:
        sim_config = replace(sim_config, heading_noise_deg=args.heading_noise)
    report = run_suite(build_suite(args.scenarios, args.seeds, modes), base, sim_config, progress=True)
    report = {
        "suite": args.scenarios,
        "seeds": args.seeds,
        "modes": modes,
        "params_file": str(args.params) if args.params else None,
        "policy": base.to_dict(),
        "sim": sim_config.to_dict(),
        "conditions": CONDITIONS,
        "motions": MOTIONS,
        **report,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_finite(report), indent=1) + "\n")
    print(format_summary(report))
    return 0


def _finite(value):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
