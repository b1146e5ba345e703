#!/usr/bin/env python3
"""Stamp-to-output latency, output rate and label age of pose_classifier_node under a live camera load.

    .venv/bin/python scripts/latency_under_load.py                  # ViT-S, 8 animals, 20 s per mode
    .venv/bin/python scripts/latency_under_load.py --animals 32 --duration 30 --json out.json
    .venv/bin/python scripts/latency_under_load.py --model test-tiny --duration 5 --schedule scheduled
    .venv/bin/python scripts/latency_under_load.py --animals 32 --duration 30 --schedule scheduled \
        --with-policy --focus on,off          # issue 24: the policy's target with and without focus

Starts the real node executable as a subprocess (random-weight checkpoint of the chosen size: the cost
is the architecture, not the weights), publishes 1920x1080 rgb8 frames at 30 Hz with --animals animals
each (reliable, as a camera driver does) plus their Detection2DArray, and records every ViewpointArray the
way a consumer would. It runs once per --schedule mode (every_frame with processing.policy --policy, and
scheduled), in the same run, and prints them side by side:

  frames_out_hz  ViewpointArrays received per second of load
  latency_ms     consumer receipt time - image header stamp (median, p95, max)
  node_latency_ms  the node's own stamp-to-publish latency (diagnostics latency_ms.*, last 200 frames)
  label_age_s    header stamp - label_stamp over every published known label (0 in every_frame)
  unknown_share  published viewpoints with an UNKNOWN label (not classified yet)
  first_label_s  longest time, over the tracks, from a track's first message to its first known label
  crops_per_s    crops the node classified per second (diagnostics counters)
  CPU, RSS       of the node process during the load

--with-policy also runs side_profile_policy_node on the node's viewpoints (every detection scores 0.9, so
the policy locks on the largest box by itself; the script reports which track it locked on and whether it
switched) and adds, per run, the target's label age (target_label_age_s) and every other track's
(others_label_age_s: pooled, and the worst track's p95). --focus on,off measures the scheduled mode with
and without the node's focus (schedule.focus_share --focus-share, or 0 = off) in the same run, the policy
running in both.

plus the node's CPU and memory in the unconfigured, inactive and active states (first mode only).

Raw 1080p frames (6.2 MB) exceed Fast DDS's default 512 KB shared-memory segment; best-effort samples
then go over UDP fragments and, measured here, none arrive. The script therefore runs both processes
with a Fast DDS profile that enlarges the shared-memory segment (printed with --print-fastdds-profile);
use the same profile, image_transport compressed, or a reliable qos override for big raw images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The shipped profile for large raw images (larger shared-memory segment), also used by real deployments.
FASTDDS_PROFILE = (REPO / "config" / "fastdds_large_images.xml").read_text()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="small", help="backbone size of the random-weight checkpoint (small, test-tiny, ...)"
    )
    p.add_argument("--checkpoint", help="use this checkpoint instead of a random-weight one")
    p.add_argument("--backend", default="auto")
    p.add_argument("--num-threads", type=int, default=0, help="model.num_threads of the node (0: torch default)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per mode")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    p.add_argument("--animals", type=int, default=8)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument(
        "--schedule", default="every_frame,scheduled", help="comma-separated schedule.mode values to measure, in order"
    )
    p.add_argument("--policy", default="latest", help="processing.policy of every_frame (latest or all)")
    p.add_argument("--max-crops", type=int, default=None, help="schedule.max_crops (default: the YAML's)")
    p.add_argument(
        "--with-policy", action="store_true", help="also run side_profile_policy_node on the node's viewpoints"
    )
    p.add_argument(
        "--focus",
        default="on",
        help="comma-separated on/off: scheduled runs with the node's focus on (schedule.focus_share "
        "--focus-share) and/or off (0); every_frame runs once",
    )
    p.add_argument("--focus-share", type=float, default=None, help="schedule.focus_share when on (default: YAML's)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 0)) or 42 + os.getpid() % 50)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--print-fastdds-profile", action="store_true", help="print the Fast DDS XML profile and exit")
    return p.parse_args(argv)


def make_checkpoint(size: str, out_dir: Path) -> Path:
    import torch

    from pose_classifier_ros.model.checkpoint import save_checkpoint
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(backbone=size)
    return save_checkpoint(
        out_dir / f"random_{size}.pt",
        build_model(config, pretrained=False),
        config,
        purpose="latency benchmark, random weights",
    )


def make_frame(width: int, height: int, animals: int, seed: int = 0):
    """(rgb frame (H, W, 3) uint8, boxes (N, 4) xyxy px) with `animals` textured boxes of 120-360 px."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    boxes = []
    for _ in range(animals):
        w, h = rng.integers(120, 360, 2)
        x, y = rng.integers(0, width - w), rng.integers(0, height - h)
        frame[y : y + h, x : x + w] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
    return frame, np.asarray(boxes, np.float32)


class Process:
    """CPU % and resident memory of one process from /proc (Linux)."""

    def __init__(self, pid: int):
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def sample(self, seconds: float) -> dict:
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        return {
            "cpu_percent": round(100 * (self.cpu_seconds() - c0) / (time.monotonic() - t0), 1),
            "rss_mb": round(self.rss_mb(), 1),
        }


class LoadClient:
    """Camera + detector publisher, viewpoint consumer and lifecycle client in one rclpy node."""

    def __init__(self, args, frame: np.ndarray, boxes: np.ndarray):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

        from pose_classifier_ros.msg import PolicyState, ViewpointArray
        from pose_classifier_ros.stream.image_codec import encode_rgb

        self.rclpy, self.args = rclpy, args
        self.node = rclpy.create_node("latency_load")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "/bench/image", reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, "/bench/detections", reliable)
        self.node.create_subscription(
            ViewpointArray,
            "/bench/viewpoints",
            self._on_viewpoints,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.node.create_subscription(DiagnosticArray, "/bench/diagnostics", self._on_diagnostics, reliable)
        self.node.create_subscription(PolicyState, "/bench/policy_state", self._on_policy_state, reliable)
        self.change_state = self.node.create_client(ChangeState, "/bench/pose_classifier/change_state")
        self._Image, self._Detection2D, self._Detection2DArray = Image, Detection2D, Detection2DArray
        self._Hypothesis = ObjectHypothesisWithPose
        self._data, self._step = encode_rgb(frame, "rgb8")
        self._shape, self._boxes = frame.shape, boxes
        self.received: list[tuple[int, float]] = []  # (stamp ns, latency ms)
        self.label_ages: list[tuple[int, str, float]] = []  # (stamp ns, track, label age s) of every known label
        self.unknown: list[tuple[int, int, int]] = []  # (stamp ns, viewpoints, of which UNKNOWN) per message
        self.targets: list[tuple[int, str]] = []  # (stamp ns, policy target id) per PolicyState
        self.first_seen: dict[str, tuple[float, float | None]] = {}  # track -> (first message s, first label s)
        self.published: list[int] = []
        self.diagnostics: dict = {}
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    def _on_viewpoints(self, msg) -> None:
        now_ns = self.node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.received.append((stamp, (now_ns - stamp) / 1e6))
        self.unknown.append((stamp, len(msg.viewpoints), sum(v.label == 255 for v in msg.viewpoints)))
        for v in msg.viewpoints:
            known = v.label != 255
            first = self.first_seen.setdefault(v.track_id, (now_ns * 1e-9, None))
            if known:
                label_ns = v.label_stamp.sec * 10**9 + v.label_stamp.nanosec
                self.label_ages.append((stamp, v.track_id, (stamp - label_ns) * 1e-9))
                if first[1] is None:
                    self.first_seen[v.track_id] = (first[0], now_ns * 1e-9)

    def _on_policy_state(self, msg) -> None:
        self.targets.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.target_track_id))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.diagnostics = {kv.key: kv.value for kv in status.values}

    def transition(self, transition_id: int, timeout: float = 120.0) -> bool:
        from lifecycle_msgs.srv import ChangeState

        if not self.change_state.wait_for_service(timeout_sec=timeout):
            raise RuntimeError("the node's change_state service never appeared")
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self.change_state.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(future.done() and future.result().success)

    def publish_for(self, seconds: float) -> None:
        """Publish frame + detections at args.rate for `seconds`, on a fixed schedule (no drift)."""
        period, start = 1.0 / self.args.rate, time.monotonic()
        n = 0
        while time.monotonic() < start + seconds:
            stamp = self.node.get_clock().now().to_msg()
            img = self._Image(height=self._shape[0], width=self._shape[1], encoding="rgb8", step=self._step)
            img.header.stamp, img.header.frame_id = stamp, "camera"
            img.data = self._data
            det = self._Detection2DArray()
            det.header = img.header
            for k, (x1, y1, x2, y2) in enumerate(self._boxes):
                d = self._Detection2D(id=f"animal-{k}")
                hypothesis = self._Hypothesis()  # a score above the policy's target.min_detection_score
                hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = "animal", 0.9
                d.results.append(hypothesis)
                d.bbox.center.position.x, d.bbox.center.position.y = float(x1 + x2) / 2, float(y1 + y2) / 2
                d.bbox.size_x, d.bbox.size_y = float(x2 - x1), float(y2 - y1)
                det.detections.append(d)
            self.image_pub.publish(img)
            self.det_pub.publish(det)
            self.published.append(stamp.sec * 10**9 + stamp.nanosec)
            n += 1
            time.sleep(max(0.0, start + n * period - time.monotonic()))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _stats(values, digits: int) -> dict | None:
    a = np.asarray(values, np.float64)
    if not a.size:
        return None
    return {
        "median": round(float(np.median(a)), digits),
        "p95": round(float(np.percentile(a, 95)), digits),
        "max": round(float(a.max()), digits),
    }


def _crops(diagnostics: dict, mode: str, animals: int) -> int:
    """Crops classified so far, from the node's diagnostics counters."""
    if mode == "scheduled":
        return int(diagnostics.get("crops_classified", 0))
    return int(diagnostics.get("frames_processed", 0)) * animals


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the process group, then SIGKILL if it does not end."""
    os.killpg(proc.pid, 2)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def start_policy(env: dict, tag: str) -> tuple[subprocess.Popen, str]:
    """side_profile_policy_node in /bench with the shipped parameters (reads viewpoints, publishes policy_state)."""
    cmd = [
        sys.executable,
        "-m",
        "pose_classifier_ros.ros.side_profile_policy_node",
        "--ros-args",
        "-r",
        "__ns:=/bench",
        "--params-file",
        str(REPO / "config" / "side_profile_policy.yaml"),
    ]
    log = tempfile.NamedTemporaryFile("w+", prefix=f"side_profile_policy_{tag}_", suffix=".log", delete=False)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log.name


def target_figures(client: LoadClient, first_ns: int) -> dict:
    """The policy's target over the measured frames (most frequent id, switches) and the label ages of the
    target and of every other track (pooled, and the worst track's p95)."""
    targets = [t for stamp, t in client.targets if stamp >= first_ns]
    ids = [t for t in targets if t]
    if not ids:
        return {"target": None, "target_frames": 0, "policy_states": len(targets)}
    target = max(set(ids), key=ids.count)
    switches = sum(a != b for a, b in zip(targets, targets[1:]))
    ages = [(track, age) for stamp, track, age in client.label_ages if stamp >= first_ns]
    per_track: dict[str, list[float]] = {}
    for track, age in ages:
        per_track.setdefault(track, []).append(age)
    others = {track: float(np.percentile(a, 95)) for track, a in per_track.items() if track != target}
    worst = max(others, key=others.get) if others else None
    return {
        "target": target,
        "target_frames": ids.count(target),
        "policy_states": len(targets),
        "target_switches": switches,
        "target_label_age_s": _stats(per_track.get(target, []), 3),
        "others_label_age_s": _stats([age for track, age in ages if track != target], 3),
        "others_worst_p95_s": round(others[worst], 3) if worst else None,
        "others_worst_track": worst,
    }


def run_mode(
    args, mode: str, focus: str | None, checkpoint: Path, env: dict, frame, boxes, measure_resources: bool
) -> dict:
    """One run of the node in schedule.mode `mode`; focus "on" / "off" (scheduled; None: every_frame)."""
    from lifecycle_msgs.msg import Transition

    cmd = [
        sys.executable,
        "-m",
        "pose_classifier_ros.ros.pose_classifier_node",
        "--ros-args",
        "-r",
        "__ns:=/bench",
        "--params-file",
        str(REPO / "config" / "pose_classifier.yaml"),
        "-p",
        f"model.checkpoint:={checkpoint}",
        "-p",
        f"model.backend:={args.backend}",
        "-p",
        f"model.num_threads:={args.num_threads}",
        "-p",
        f"processing.policy:={args.policy}",
        "-p",
        f"schedule.mode:={mode}",
        "-p",
        "autostart:=false",
        "-p",
        "sync.tolerance_s:=0.001",
    ]
    if args.max_crops:
        cmd += ["-p", f"schedule.max_crops:={args.max_crops}"]
    if focus == "off":
        cmd += ["-p", "schedule.focus_share:=0.0"]
    elif focus == "on" and args.focus_share is not None:
        cmd += ["-p", f"schedule.focus_share:={float(args.focus_share)}"]
    tag = mode + (f"_focus_{focus}" if focus else "")
    log = tempfile.NamedTemporaryFile("w+", prefix=f"pose_classifier_{tag}_", suffix=".log", delete=False)
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    policy, policy_log = start_policy(env, tag) if args.with_policy else (None, None)
    proc, client = Process(node.pid), LoadClient(args, frame, boxes)
    result = {
        "mode": mode,
        "policy": args.policy if mode == "every_frame" else None,
        "focus": focus,
        "animals": args.animals,
    }
    try:
        resources = {}
        if not client.change_state.wait_for_service(timeout_sec=120):
            raise RuntimeError(f"node did not start; log: {log.name}")
        if measure_resources:
            resources["unconfigured"] = proc.sample(2.0)
        if not client.transition(Transition.TRANSITION_CONFIGURE):
            raise RuntimeError(f"configure failed; log: {log.name}")
        if measure_resources:
            resources["inactive"] = proc.sample(3.0)
        if not client.transition(Transition.TRANSITION_ACTIVATE):
            raise RuntimeError(f"activate failed; log: {log.name}")
        if measure_resources:
            resources["active, no input"] = proc.sample(3.0)
        while client.image_pub.get_subscription_count() < 1 or client.det_pub.get_subscription_count() < 1:
            time.sleep(0.05)
        if policy is not None:
            deadline = time.monotonic() + 60
            while not client.node.count_publishers("/bench/policy_state") and time.monotonic() < deadline:
                time.sleep(0.05)
        client.publish_for(args.warmup)
        first_ns = client.node.get_clock().now().nanoseconds
        c0, crops0 = proc.cpu_seconds(), _crops(client.diagnostics, mode, args.animals)
        t0 = time.monotonic()
        client.publish_for(args.duration)
        elapsed = time.monotonic() - t0
        cpu = 100 * (proc.cpu_seconds() - c0) / elapsed
        rss = proc.rss_mb()
        crops1 = _crops(client.diagnostics, mode, args.animals)
        time.sleep(3.0)  # let queued frames ("all") finish and the next diagnostics arrive
        if measure_resources:
            resources[f"active, {args.rate:g} Hz load"] = {"cpu_percent": round(cpu, 1), "rss_mb": round(rss, 1)}
            client.transition(Transition.TRANSITION_DEACTIVATE)
            resources["deactivated"] = proc.sample(3.0)
        published = [s for s in client.published if s >= first_ns]
        received = [(s, lat) for s, lat in client.received if s >= first_ns]
        ages = [age for s, _, age in client.label_ages if s >= first_ns]
        counts = [(n, unknown) for s, n, unknown in client.unknown if s >= first_ns]
        first_label = [labelled - seen for seen, labelled in client.first_seen.values() if labelled is not None]
        diagnostics = client.diagnostics
        result.update(
            published=len(published),
            received=len(received),
            dropped=len(published) - len(received),
            frames_out_hz=round(len(received) / args.duration, 2),
            latency_ms=_stats([lat for _, lat in received], 1),
            node_latency_ms={
                k: float(diagnostics[f"latency_ms.{k}"])
                for k in ("median", "p95", "max")
                if f"latency_ms.{k}" in diagnostics
            }
            or None,
            label_age_s=_stats(ages, 3),
            unknown_share=round(sum(u for _, u in counts) / max(1, sum(n for n, _ in counts)), 4),
            first_label_s=round(max(first_label), 3) if first_label else None,
            tracks_never_labelled=sum(labelled is None for _, labelled in client.first_seen.values()),
            crops_per_s=round(max(crops1 - crops0, 0) / elapsed, 2),
            node_counters={
                k: v
                for k, v in diagnostics.items()
                if k.startswith(("dropped", "frames_", "stage_ms.", "crops_", "inference", "label_age", "focus"))
            },
            node_cpu_percent=round(cpu, 1),
            node_rss_mb=round(rss, 1),
            log=log.name,
        )
        if policy is not None:
            result.update(target_figures(client, first_ns), policy_log=policy_log)
        if resources:
            result["resources"] = resources
    finally:
        client.close()
        _stop(node)
        if policy is not None:
            _stop(policy)
    return result


def runs_of(args) -> list[tuple[str, str | None]]:
    """(schedule.mode, focus) of each run, in order: every_frame once, scheduled once per --focus value."""
    focus = [f.strip() for f in args.focus.split(",") if f.strip()]
    bad = [f for f in focus if f not in ("on", "off")]
    if bad or not focus:
        raise SystemExit(f"--focus takes on and/or off, got {args.focus!r}")
    runs = []
    for mode in (m.strip() for m in args.schedule.split(",")):
        runs += [(mode, None)] if mode == "every_frame" else [(mode, f) for f in focus]
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_fastdds_profile:
        print(FASTDDS_PROFILE)
        return 0
    work = Path(tempfile.mkdtemp(prefix="pose_classifier_latency_"))
    profile = work / "fastdds_large_shm.xml"
    profile.write_text(FASTDDS_PROFILE)
    env = dict(
        os.environ,
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(args.domain_id),
        FASTDDS_DEFAULT_PROFILES_FILE=str(profile),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    os.environ.update(
        {k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE")}
    )
    runs = runs_of(args)
    if not args.with_policy and any(focus == "off" for _, focus in runs):
        print("note: without --with-policy nothing publishes a focus; focus on and off measure the same", flush=True)
    checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(args.model, work)
    frame, boxes = make_frame(args.width, args.height, args.animals)
    import rclpy

    rclpy.init()
    results = []
    load_before = os.getloadavg()
    try:
        for i, (mode, focus) in enumerate(runs):
            print(
                f"schedule {mode}{f', focus {focus}' if focus else ''}: {args.duration:g} s of {args.width}x"
                f"{args.height} at {args.rate:g} Hz with {args.animals} animals ({args.model}, backend "
                f"{args.backend}){', policy running' if args.with_policy else ''} ...",
                flush=True,
            )
            results.append(run_mode(args, mode, focus, checkpoint, env, frame, boxes, measure_resources=i == 0))
    finally:
        rclpy.shutdown()
    load = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print_table(results, args)
    print(f"load average (1/5/15 min) before {load['before']}, after {load['after']} on {load['cpus']} CPUs")
    for r in results:
        print(f"{_name(r)}: node counters {r['node_counters']}")
        if r.get("policy_log"):
            print(
                f"{_name(r)}: policy target {r.get('target')} ({r.get('target_frames')} of "
                f"{r.get('policy_states')} policy states, {r.get('target_switches', 0)} switches); "
                f"worst other track {r.get('others_worst_track')}; policy log {r['policy_log']}"
            )
    if results and "resources" in results[0]:
        print("\nnode resources (first policy):")
        for state, value in results[0]["resources"].items():
            print(f"  {state:24} CPU {value['cpu_percent']:6.1f} %   RSS {value['rss_mb']:7.1f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load": load, "results": results}, indent=2)
        )
    return 0


def _name(r: dict) -> str:
    return (
        r["mode"]
        + (f" ({r['policy']})" if r.get("policy") else "")
        + (f" focus {r['focus']}" if r.get("focus") else "")
    )


def print_table(results: list[dict], args) -> None:
    """One column per run, one row per figure."""

    def trio(value, digits):
        return "-" if not value else " / ".join(f"{value[k]:.{digits}f}" for k in ("median", "p95", "max"))

    def p95(value):
        return "-" if not value else f"{value['p95']:.2f}"

    rows = [
        ("frames in / out", lambda r: f"{r['published']} / {r['received']}"),
        ("ViewpointArrays/s", lambda r: f"{r['frames_out_hz']:.2f}"),
        ("latency ms med/p95/max", lambda r: trio(r["latency_ms"], 0)),
        ("node stamp-to-publish ms", lambda r: trio(r["node_latency_ms"], 0)),
        ("label age s med/p95/max", lambda r: trio(r["label_age_s"], 2)),
        ("unknown viewpoints %", lambda r: f"{100 * r['unknown_share']:.1f}"),
        ("first label s (worst track)", lambda r: "-" if r["first_label_s"] is None else f"{r['first_label_s']:.2f}"),
        ("crops/s", lambda r: f"{r['crops_per_s']:.1f}"),
        ("node CPU % / RSS MB", lambda r: f"{r['node_cpu_percent']:.0f} / {r['node_rss_mb']:.0f}"),
    ]
    if args.with_policy:
        rows += [
            ("policy target", lambda r: str(r.get("target"))),
            ("target label age s p95", lambda r: p95(r.get("target_label_age_s"))),
            ("others label age s p95", lambda r: p95(r.get("others_label_age_s"))),
            (
                "worst other track p95 s",
                lambda r: "-" if r.get("others_worst_p95_s") is None else f"{r['others_worst_p95_s']:.2f}",
            ),
        ]
    names = [_name(r) for r in results]
    width = max([24] + [len(n) + 2 for n in names])
    print(
        f"\n{args.animals} animals, {args.model}, backend {args.backend}, {args.width}x{args.height} at "
        f"{args.rate:g} Hz, {args.duration:g} s per run{', policy running' if args.with_policy else ''}"
    )
    print(f"{'':28}" + "".join(f"{n:>{width}}" for n in names))
    for label, fmt in rows:
        print(f"{label:28}" + "".join(f"{fmt(r):>{width}}" for r in results))


if __name__ == "__main__":
    sys.exit(main())
