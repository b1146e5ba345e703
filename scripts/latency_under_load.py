#!/usr/bin/env python3
"""Stamp-to-output latency, output rate and label age of pose_classifier_node under a live camera load.

    .venv/bin/python scripts/latency_under_load.py                  # ViT-S, 8 animals, 20 s per mode
    .venv/bin/python scripts/latency_under_load.py --animals 32 --duration 30 --json out.json
    .venv/bin/python scripts/latency_under_load.py --model test-tiny --duration 5 --schedule scheduled

Starts the real node executable as a subprocess (random-weight checkpoint of the chosen size: the cost
is the architecture, not the weights), publishes 1920x1080 rgb8 frames at 30 Hz with --animals animals
each (reliable, as a camera driver does) plus their Detection2DArray, and records every ViewpointArray the
way a consumer would. It runs once per --schedule mode (every_frame with processing.policy --policy, and
scheduled), in the same run, and prints them side by side:

  frames_out_hz  ViewpointArrays received per second of load
  latency_ms     consumer receipt time - image header stamp (median, p95, max)
  label_age_s    header stamp - label_stamp over every published known label (0 in every_frame)
  first_label_s  longest time, over the tracks, from a track's first message to its first known label
  crops_per_s    crops the node classified per second (diagnostics counters)
  CPU, RSS       of the node process during the load

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
        from vision_msgs.msg import Detection2D, Detection2DArray

        from pose_classifier_ros.msg import ViewpointArray
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
        self.change_state = self.node.create_client(ChangeState, "/bench/pose_classifier/change_state")
        self._Image, self._Detection2D, self._Detection2DArray = Image, Detection2D, Detection2DArray
        self._data, self._step = encode_rgb(frame, "rgb8")
        self._shape, self._boxes = frame.shape, boxes
        self.received: list[tuple[int, float]] = []  # (stamp ns, latency ms)
        self.label_ages: list[tuple[int, float]] = []  # (stamp ns, label age s) of every known label
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
        for v in msg.viewpoints:
            known = v.label != 255
            first = self.first_seen.setdefault(v.track_id, (now_ns * 1e-9, None))
            if known:
                label_ns = v.label_stamp.sec * 10**9 + v.label_stamp.nanosec
                self.label_ages.append((stamp, (stamp - label_ns) * 1e-9))
                if first[1] is None:
                    self.first_seen[v.track_id] = (first[0], now_ns * 1e-9)

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


def run_mode(args, mode: str, checkpoint: Path, env: dict, frame, boxes, measure_resources: bool) -> dict:
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
    log = tempfile.NamedTemporaryFile("w+", prefix=f"pose_classifier_{mode}_", suffix=".log", delete=False)
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc, client = Process(node.pid), LoadClient(args, frame, boxes)
    result = {"mode": mode, "policy": args.policy if mode == "every_frame" else None, "animals": args.animals}
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
        ages = [age for s, age in client.label_ages if s >= first_ns]
        first_label = [labelled - seen for seen, labelled in client.first_seen.values() if labelled is not None]
        result.update(
            published=len(published),
            received=len(received),
            dropped=len(published) - len(received),
            frames_out_hz=round(len(received) / args.duration, 2),
            latency_ms=_stats([lat for _, lat in received], 1),
            label_age_s=_stats(ages, 3),
            first_label_s=round(max(first_label), 3) if first_label else None,
            tracks_never_labelled=sum(labelled is None for _, labelled in client.first_seen.values()),
            crops_per_s=round(max(crops1 - crops0, 0) / elapsed, 2),
            node_counters={
                k: v
                for k, v in client.diagnostics.items()
                if k.startswith(("dropped", "frames_", "stage_ms.", "crops_", "inference", "label_age"))
            },
            node_cpu_percent=round(cpu, 1),
            node_rss_mb=round(rss, 1),
            log=log.name,
        )
        if resources:
            result["resources"] = resources
    finally:
        client.close()
        os.killpg(node.pid, 2)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, 9)
            node.wait(5)
    return result


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
    checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(args.model, work)
    frame, boxes = make_frame(args.width, args.height, args.animals)
    import rclpy

    rclpy.init()
    results = []
    load_before = os.getloadavg()
    try:
        for i, mode in enumerate(m.strip() for m in args.schedule.split(",")):
            print(
                f"schedule {mode}: {args.duration:g} s of {args.width}x{args.height} at {args.rate:g} Hz with "
                f"{args.animals} animals ({args.model}, backend {args.backend}) ...",
                flush=True,
            )
            results.append(run_mode(args, mode, checkpoint, env, frame, boxes, measure_resources=i == 0))
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
        print(f"{r['mode']}: node counters {r['node_counters']}")
    if results and "resources" in results[0]:
        print("\nnode resources (first policy):")
        for state, value in results[0]["resources"].items():
            print(f"  {state:24} CPU {value['cpu_percent']:6.1f} %   RSS {value['rss_mb']:7.1f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load": load, "results": results}, indent=2)
        )
    return 0


def print_table(results: list[dict], args) -> None:
    """One column per mode, one row per figure."""

    def trio(value, digits):
        return "-" if not value else " / ".join(f"{value[k]:.{digits}f}" for k in ("median", "p95", "max"))

    rows = [
        ("frames in / out", lambda r: f"{r['published']} / {r['received']}"),
        ("ViewpointArrays/s", lambda r: f"{r['frames_out_hz']:.2f}"),
        ("latency ms med/p95/max", lambda r: trio(r["latency_ms"], 0)),
        ("label age s med/p95/max", lambda r: trio(r["label_age_s"], 2)),
        ("first label s (worst track)", lambda r: "-" if r["first_label_s"] is None else f"{r['first_label_s']:.2f}"),
        ("crops/s", lambda r: f"{r['crops_per_s']:.1f}"),
        ("node CPU % / RSS MB", lambda r: f"{r['node_cpu_percent']:.0f} / {r['node_rss_mb']:.0f}"),
    ]
    names = [r["mode"] + (f" ({r['policy']})" if r.get("policy") else "") for r in results]
    width = max([24] + [len(n) + 2 for n in names])
    print(
        f"\n{args.animals} animals, {args.model}, backend {args.backend}, {args.width}x{args.height} at "
        f"{args.rate:g} Hz, {args.duration:g} s per mode"
    )
    print(f"{'':28}" + "".join(f"{n:>{width}}" for n in names))
    for label, fmt in rows:
        print(f"{label:28}" + "".join(f"{fmt(r):>{width}}" for r in results))


if __name__ == "__main__":
    sys.exit(main())
