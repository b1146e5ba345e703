#!/usr/bin/env python3
"""Stamp-to-output latency and drops of pose_classifier_node under a live camera load.

    .venv/bin/python scripts/latency_under_load.py                    # small model, 20 s per policy
    .venv/bin/python scripts/latency_under_load.py --model test-tiny --duration 5 --json out.json

Starts the real node executable as a subprocess (random-weight checkpoint of the chosen size: the cost
is the architecture, not the weights), publishes 1920x1080 rgb8 frames at 30 Hz with 8 animals each
(reliable, as a camera driver does) plus their Detection2DArray, and records every ViewpointArray the
way a consumer would. Latency = consumer receipt time - image header stamp. Drops = frames published
- ViewpointArrays received. It runs once per processing.policy (latest, all) and prints a table, plus
the node's CPU and memory in the unconfigured, inactive and active states (for the node's docs).

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
    p.add_argument("--model", default="small", help="backbone size of the random-weight checkpoint (small, test-tiny, ...)")
    p.add_argument("--checkpoint", help="use this checkpoint instead of a random-weight one")
    p.add_argument("--backend", default="auto")
    p.add_argument("--num-threads", type=int, default=0, help="model.num_threads of the node (0: torch default)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per policy")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    p.add_argument("--animals", type=int, default=8)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--policies", default="latest,all")
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
    return save_checkpoint(out_dir / f"random_{size}.pt", build_model(config, pretrained=False), config,
                           purpose="latency benchmark, random weights")


def make_frame(width: int, height: int, animals: int, seed: int = 0):
    """(rgb frame (H, W, 3) uint8, boxes (N, 4) xyxy px) with `animals` textured boxes of 120-360 px."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    boxes = []
    for k in range(animals):
        w, h = rng.integers(120, 360, 2)
        x, y = rng.integers(0, width - w), rng.integers(0, height - h)
        frame[y:y + h, x:x + w] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
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
        return {"cpu_percent": round(100 * (self.cpu_seconds() - c0) / (time.monotonic() - t0), 1),
                "rss_mb": round(self.rss_mb(), 1)}


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

        from pose_classifier_ros.stream.image_codec import encode_rgb
        from pose_classifier_ros.msg import ViewpointArray

        self.rclpy, self.args = rclpy, args
        self.node = rclpy.create_node("latency_load")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "/bench/image", reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, "/bench/detections", reliable)
        self.node.create_subscription(ViewpointArray, "/bench/viewpoints", self._on_viewpoints, QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/bench/diagnostics", self._on_diagnostics, reliable)
        self.change_state = self.node.create_client(ChangeState, "/bench/pose_classifier/change_state")
        self._Image, self._Detection2D, self._Detection2DArray = Image, Detection2D, Detection2DArray
        self._data, self._step = encode_rgb(frame, "rgb8")
        self._shape, self._boxes = frame.shape, boxes
        self.received: list[tuple[int, float]] = []  # (stamp ns, latency ms)
        self.published: list[int] = []
        self.diagnostics: dict = {}
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    def _on_viewpoints(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.received.append((stamp, (self.node.get_clock().now().nanoseconds - stamp) / 1e6))

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
        while (now := time.monotonic()) < start + seconds:
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


def run_policy(args, policy: str, checkpoint: Path, env: dict, frame, boxes, measure_resources: bool) -> dict:
    from lifecycle_msgs.msg import Transition

    cmd = [sys.executable, "-m", "pose_classifier_ros.ros.pose_classifier_node", "--ros-args",
           "-r", "__ns:=/bench", "--params-file", str(REPO / "config" / "pose_classifier.yaml"),
           "-p", f"model.checkpoint:={checkpoint}", "-p", f"model.backend:={args.backend}",
           "-p", f"model.num_threads:={args.num_threads}", "-p", f"processing.policy:={policy}",
           "-p", "autostart:=false", "-p", "sync.tolerance_s:=0.001"]
    log = tempfile.NamedTemporaryFile("w+", prefix=f"pose_classifier_{policy}_", suffix=".log", delete=False)
    node = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc, client, result = Process(node.pid), LoadClient(args, frame, boxes), {"policy": policy}
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
        c0 = proc.cpu_seconds()
        t0 = time.monotonic()
        client.publish_for(args.duration)
        cpu = 100 * (proc.cpu_seconds() - c0) / (time.monotonic() - t0)
        rss = proc.rss_mb()
        time.sleep(3.0)  # let queued frames ("all") finish and the next diagnostics arrive
        if measure_resources:
            resources[f"active, {args.rate:g} Hz load"] = {"cpu_percent": round(cpu, 1), "rss_mb": round(rss, 1)}
            client.transition(Transition.TRANSITION_DEACTIVATE)
            resources["deactivated"] = proc.sample(3.0)
        published = [s for s in client.published if s >= first_ns]
        received = [(s, lat) for s, lat in client.received if s >= first_ns]
        lat = np.asarray([lat for _, lat in received])
        result.update(
            published=len(published), received=len(received), dropped=len(published) - len(received),
            processed_hz=round(len(received) / args.duration, 2),
            latency_ms={"median": round(float(np.median(lat)), 1), "p95": round(float(np.percentile(lat, 95)), 1),
                        "max": round(float(lat.max()), 1)} if lat.size else None,
            node_counters={k: v for k, v in client.diagnostics.items()
                           if k.startswith(("dropped", "frames_", "stage_ms."))},
            node_cpu_percent=round(cpu, 1), node_rss_mb=round(rss, 1), log=log.name)
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
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(args.domain_id),
               FASTDDS_DEFAULT_PROFILES_FILE=str(profile), PYTHONUNBUFFERED="1")
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID",
                                           "FASTDDS_DEFAULT_PROFILES_FILE")})
    checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(args.model, work)
    frame, boxes = make_frame(args.width, args.height, args.animals)
    import rclpy
    rclpy.init()
    results = []
    try:
        for i, policy in enumerate(p.strip() for p in args.policies.split(",")):
            print(f"policy {policy}: {args.duration:g} s of {args.width}x{args.height} at {args.rate:g} Hz with "
                  f"{args.animals} animals ({args.model}, backend {args.backend}) ...", flush=True)
            results.append(run_policy(args, policy, checkpoint, env, frame, boxes, measure_resources=i == 0))
    finally:
        rclpy.shutdown()
    print(f"\n{'policy':8} {'published':>9} {'received':>8} {'dropped':>7} {'out Hz':>6} {'median ms':>9} "
          f"{'p95 ms':>8} {'max ms':>8} {'node CPU %':>10} {'RSS MB':>7}")
    for r in results:
        lat = r["latency_ms"] or {"median": float("nan"), "p95": float("nan"), "max": float("nan")}
        print(f"{r['policy']:8} {r['published']:9d} {r['received']:8d} {r['dropped']:7d} {r['processed_hz']:6.2f} "
              f"{lat['median']:9.1f} {lat['p95']:8.1f} {lat['max']:8.1f} {r['node_cpu_percent']:10.1f} "
              f"{r['node_rss_mb']:7.1f}")
    for r in results:
        print(f"{r['policy']}: node counters {r['node_counters']}")
    if results and "resources" in results[0]:
        print("\nnode resources (first policy):")
        for state, value in results[0]["resources"].items():
            print(f"  {state:24} CPU {value['cpu_percent']:6.1f} %   RSS {value['rss_mb']:7.1f} MB")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
