"""`pose-classifier`: the offline command line (train, evaluate, replay, play, ...).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
only the chosen one is imported, so ``pose-classifier train`` never loads rclpy.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("pose_classifier_ros.training.train", "train a viewpoint head on pose-labelled images"),
    "evaluate": ("pose_classifier_ros.training.evaluate", "evaluate a checkpoint on a labelled folder or CSV"),
    "replay": (
        "pose_classifier_ros.replay.cli",
        "classify a rosbag, or a video with its track file, offline: report, best views, output bag or video",
    ),
    "batch": (
        "pose_classifier_ros.season.batch_cli",
        "a season: every input of a manifest on a local pool or SLURM, resumable, one report",
    ),
    "play": ("pose_classifier_ros.ros.bag_player", "publish a bag live (with /clock) for the node"),
    "make-sample-bag": ("pose_classifier_ros.bags.sample_bag", "generate the synthetic sample flight bag"),
    "make-sample-video": (
        "pose_classifier_ros.video.sample_video",
        "generate the synthetic flight as an MP4 with CVAT, MOT and CSV tracks",
    ),
    "policy-eval": (
        "pose_classifier_ros.navigation.policy_eval",
        "run the side-profile policy over a bag's viewpoints",
    ),
    "nav-sim": ("pose_classifier_ros.navigation.nav_sim", "closed-loop side-profile navigation scenario suite"),
    "annotate": (
        "pose_classifier_ros.visualization.annotate",
        "classify the boxes of one image, write the overlay and crops",
    ),
}


def _usage() -> str:
    lines = ["usage: pose-classifier {" + ",".join(SUBCOMMANDS) + "} ...", "", "subcommands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `pose-classifier SUBCOMMAND --help` for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"pose-classifier: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(
        prog=f"pose-classifier {name}",
        description=SUBCOMMANDS[name][1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
