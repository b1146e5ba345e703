"""`pose-classifier policy-eval BAG... --out DIR`: run the side-profile policy over recorded viewpoints.

Reads each bag's ``ViewpointArray`` stream (from a replay or a live recording) with rosbags, feeds
it to a fresh :class:`~pose_classifier_ros.navigation.policy.SideProfilePolicy` configured from the node's YAML,
and reports one row per bag (flight) so parameter sets and classifier versions can be compared:

- ``frames_to_first_side_view``: frame index (0 = first frame) of the first stable left/right label of the target
- ``frames_to_approach`` / ``frames_to_capture``: frame index of the first APPROACH / the capture (-1 = never)
- ``capture_reason`` (size_ratio, size_pixels, step_budget, or "" if none), ``capture_frames_since_lock``
- ``oscillations``: APPROACH -> ORIENT transitions (each is one swing of the ORIENT/APPROACH oscillation)
- ``capture_flank`` (left/right), ``capture_size_px`` (box longer side); frames per state incl. RETREAT

Outputs in DIR: ``policy_eval.csv`` and ``policy_eval.json`` (rows + parameters), and per bag
``<bag>.states.csv`` with the state, target and command of every frame.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from .policy import PolicyConfig, PolicyFrame, PolicyOutput, SideProfilePolicy, State, frame_from_msg, load_params_file

_logger = logging.getLogger(__name__)

VIEWPOINT_ARRAY_TYPE = "pose_classifier_ros/msg/ViewpointArray"
SUMMARY_FIELDS = (
    "bag",
    "frames",
    "skipped_messages",
    "duration_s",
    "first_lock_frame",
    "frames_to_first_side_view",
    "frames_to_approach",
    "frames_to_capture",
    "capture_frames_since_lock",
    "capture_reason",
    "capture_track_id",
    "capture_viewpoint",
    "capture_flank",
    "capture_size_px",
    "capture_size_ratio",
    "captures",
    "oscillations",
    "target_switches",
    "frames_search",
    "frames_orient",
    "frames_approach",
    "frames_capture",
    "frames_retreat",
    "final_state",
)
STATE_FIELDS = (
    "frame",
    "stamp_ns",
    "state",
    "target_track_id",
    "target_viewpoint",
    "side_votes",
    "target_size_ratio",
    "target_size_px",
    "flank",
    "yaw_rate",
    "forward_speed",
    "lateral_speed",
    "label_fresh",
    "reason",
    "capture_reason",
)


def summarize_flight(frames: Sequence[PolicyFrame], outputs: Sequence[PolicyOutput], name: str = "") -> dict:
    """One summary row (SUMMARY_FIELDS) for a flight; ``frames[i]`` produced ``outputs[i]``."""
    states = [o.state for o in outputs]

    def first(pred) -> int:
        return next((i for i, o in enumerate(outputs) if pred(i, o)), -1)

    def side_view(i: int, o: PolicyOutput) -> bool:
        if not o.target_visible:
            return False
        target = next(t for t in frames[i].tracks if t.track_id == o.target_track_id)
        return target.is_stable and target.smoothed_label in ("left", "right")

    captures = [o.capture for o in outputs if o.capture is not None]
    cap = captures[0] if captures else None
    # A lock-on is a frame whose target differs from the previous frame's (and is not "none").
    locks = [
        i
        for i, o in enumerate(outputs)
        if o.target_track_id and (i == 0 or outputs[i - 1].target_track_id != o.target_track_id)
    ]
    duration = (frames[-1].stamp_ns - frames[0].stamp_ns) * 1e-9 if frames else 0.0
    return {
        "bag": name,
        "frames": len(outputs),
        "skipped_messages": 0,
        "duration_s": round(duration, 3),
        "first_lock_frame": locks[0] if locks else -1,
        "frames_to_first_side_view": first(side_view),
        "frames_to_approach": first(lambda i, o: o.state == State.APPROACH),
        "frames_to_capture": first(lambda i, o: o.capture is not None),
        "capture_frames_since_lock": cap.frames_to_capture if cap else -1,
        "capture_reason": cap.reason if cap else "",
        "capture_track_id": cap.track_id if cap else "",
        "capture_viewpoint": cap.viewpoint if cap else "",
        "capture_flank": cap.flank if cap else "",
        "capture_size_px": round(cap.target_size_px, 1) if cap else 0.0,
        "capture_size_ratio": round(cap.target_size_ratio, 4) if cap else 0.0,
        "captures": len(captures),
        "oscillations": sum(1 for a, b in zip(states, states[1:]) if a == State.APPROACH and b == State.ORIENT),
        "target_switches": max(0, len(locks) - 1),
        **{f"frames_{s.name.lower()}": states.count(s) for s in State},
        "final_state": states[-1].name if states else "",
    }


def read_viewpoint_frames(bag: Path, topic: str) -> tuple[list[PolicyFrame], int]:
    """PolicyFrames of ``topic`` in bag order, and how many messages were skipped as malformed.

    Raises bagio.BagError when the bag cannot be read or lacks the topic.
    """
    from ..bags import bagio  # rosbags is needed only here

    frames: list[PolicyFrame] = []
    skipped = 0
    with bagio.open_reader(bag) as reader:
        info = reader.require_topic(topic, [VIEWPOINT_ARRAY_TYPE])
        for _, _, raw, msgtype in _progress(reader.messages([topic]), info.count, bag.name):
            try:
                frames.append(frame_from_msg(reader.deserialize(raw, msgtype)))
            except (bagio.BagError, AttributeError, TypeError, ValueError) as exc:
                skipped += 1
                _logger.warning("%s: skipping a malformed %s message: %s", bag.name, topic, exc)
    return frames, skipped


def _progress(iterable: Iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="frame", disable=not sys.stderr.isatty(), leave=False)


def evaluate_bag(bag: Path, topic: str, config: PolicyConfig, states_csv: Path | None = None) -> dict:
    """Run a fresh policy over one bag's viewpoints; returns the summary row."""
    frames, skipped = read_viewpoint_frames(bag, topic)
    policy = SideProfilePolicy(config)
    outputs = [policy.step(frame) for frame in frames]
    row = summarize_flight(frames, outputs, name=bag.name)
    row["skipped_messages"] = skipped
    if states_csv is not None:
        with open(states_csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=STATE_FIELDS)
            writer.writeheader()
            for i, o in enumerate(outputs):
                writer.writerow(
                    {
                        "frame": i,
                        "stamp_ns": o.stamp_ns,
                        "state": o.state.name,
                        "target_track_id": o.target_track_id,
                        "target_viewpoint": o.target_viewpoint,
                        "side_votes": o.side_votes,
                        "target_size_ratio": round(o.target_size_ratio, 4),
                        "target_size_px": round(o.target_size_px, 1),
                        "flank": o.flank,
                        "yaw_rate": round(o.yaw_rate, 4),
                        "forward_speed": round(o.forward_speed, 4),
                        "lateral_speed": round(o.lateral_speed, 4),
                        "label_fresh": o.label_fresh,
                        "reason": o.reason,
                        "capture_reason": o.capture.reason if o.capture else "",
                    }
                )
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bags",
        nargs="+",
        type=Path,
        metavar="BAG",
        help="rosbag2 bag(s) (directory, .mcap or .db3) holding a ViewpointArray stream; one row each",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory for the CSV/JSON reports")
    parser.add_argument("--viewpoints-topic", default="/viewpoints", help="ViewpointArray topic in the bag(s)")
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="policy parameter YAML (the node's format, e.g. config/side_profile_policy.yaml); "
        "default: the built-in defaults, which that file mirrors",
    )


def run(args: argparse.Namespace) -> int:
    from ..bags.bagio import BagError

    try:
        config = load_params_file(args.params) if args.params else PolicyConfig()
    except ValueError as exc:
        print(f"policy-eval: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for bag in args.bags:
        try:
            row = evaluate_bag(bag, args.viewpoints_topic, config, args.out / f"{bag.name}.states.csv")
        except BagError as exc:
            print(f"policy-eval: {exc}", file=sys.stderr)
            return 1
        if row["frames"] == 0:
            print(
                f"policy-eval: topic {args.viewpoints_topic!r} in {str(bag)!r} has no readable messages",
                file=sys.stderr,
            )
            return 1
        _logger.info(
            "%s: %d frames, capture %s at frame %d, %d oscillations",
            bag.name,
            row["frames"],
            row["capture_reason"] or "none",
            row["frames_to_capture"],
            row["oscillations"],
        )
        rows.append(row)

    with open(args.out / "policy_eval.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    report = {
        "viewpoints_topic": args.viewpoints_topic,
        "params_file": str(args.params) if args.params else None,
        "config": config.to_dict(),
        "flights": rows,
    }
    (args.out / "policy_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0
