"""Replay metrics and report files: per-frame vs smoothed classification, flip rates, the scheduled-mode
section, groups by species (the tracks' class), confusion matrices, the track timeline and the contact
sheet (metrics.json, report.txt, PNGs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.replay.runner import ReplayResult

_logger = logging.getLogger(__name__)


def build_report(result: ReplayResult) -> dict:
    """Metrics dict: per_frame / smoothed classification reports (if ground truth), temporal flip rates."""
    from pose_classifier_ros.metrics import classification_report, flip_rate

    recs = result.records
    report: dict[str, Any] = {}
    matched = [r for r in recs if r.true is not None]
    for key in ("label", "smoothed"):  # over known labels; the schedule section counts UNKNOWN as wrong
        known = [r for r in matched if getattr(r, key) is not None]
        if known:
            report["per_frame" if key == "label" else key] = classification_report(
                np.array([r.true for r in known]), np.array([getattr(r, key) for r in known])
            )
    tracks = [r.track_id for r in recs]
    stamps = [r.stamp_ns * 1e-9 for r in recs]
    report["temporal"] = {
        "per_frame": flip_rate(tracks, stamps, [r.label for r in recs]),
        "smoothed": flip_rate(tracks, stamps, [r.smoothed for r in recs]),
    }
    if matched:
        report["temporal"]["ground_truth"] = flip_rate(
            [r.track_id for r in matched], [r.stamp_ns * 1e-9 for r in matched], [r.true for r in matched]
        )
    if result.schedule is not None:
        from pose_classifier_ros.replay.schedule_report import schedule_section

        report["schedule"] = schedule_section(result)
    groups = species_groups(matched, getattr(result, "track_classes", {}))
    if groups:
        report["groups"] = groups
    report["replay"] = dict(result.stats, output_bag=result.out_bag)
    return report


def species_groups(matched, track_classes: dict[str, str]) -> dict:
    """Per-frame and smoothed accuracy by the tracks' class (species: the CVAT track label, the detector's
    class_id), as evaluate's groups section; {} when no matched track has a class."""
    from pose_classifier_ros.evaluation.analysis import AnalysisOptions, group_rows

    if not track_classes or not any(r.track_id in track_classes for r in matched):
        return {}
    out = {}
    for key, name in (("label", "species, per-frame label"), ("smoothed", "species, smoothed label")):
        known = [r for r in matched if getattr(r, key) is not None]
        if known:
            meta = [{name: track_classes.get(r.track_id, "")} for r in known]
            rows = group_rows(
                [r.true for r in known], [getattr(r, key) for r in known], meta, AnalysisOptions(factors=[name])
            )
            out.update(rows)
    return out


def format_replay_report(report: dict, title: str) -> str:
    """Text report: report.format_text_report of the per-frame and smoothed parts, then temporal/replay."""
    from pose_classifier_ros.report import format_text_report

    parts = [title, "=" * len(title), ""]
    for key, heading in (("per_frame", "per-frame label (one crop)"), ("smoothed", "smoothed label (track vote)")):
        if key in report:
            parts.append(format_text_report(report[key], heading))
    temporal = report["temporal"]
    parts.append("label flips per second per track (mean over tracks):")
    for key in ("per_frame", "smoothed", "ground_truth"):
        if key in temporal:
            parts.append(f"  {key:<13} {temporal[key]['mean_flips_per_s']:.3f}")
    if "schedule" in report:
        from pose_classifier_ros.replay.schedule_report import format_schedule_section

        parts += ["", format_schedule_section(report["schedule"])]
    if report.get("groups"):
        from pose_classifier_ros.evaluation.text import groups_lines

        parts += [""] + groups_lines(report["groups"])
    stats = report.get("replay", {})
    parts += ["", "replay: " + ", ".join(f"{k}={v}" for k, v in stats.items() if not isinstance(v, dict))]
    return "\n".join(parts) + "\n"


def write_replay_report(report_dir: str | Path, report: dict, result: ReplayResult, title: str) -> list[str]:
    """metrics.json, report.txt, confusion_matrix.png (+ _smoothed) and track_timeline.png in report_dir."""
    import json

    from pose_classifier_ros.plotting import plot_confusion_matrix, plot_track_timeline
    from pose_classifier_ros.report import to_jsonable

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / "metrics.json", report_dir / "report.txt"]
    paths[0].write_text(json.dumps(to_jsonable(dict(report, title=title)), indent=2) + "\n")
    paths[1].write_text(format_replay_report(report, title))
    if "per_frame" in report:
        paths.append(
            plot_confusion_matrix(
                report["per_frame"]["confusion_matrix"],
                report_dir / "confusion_matrix.png",
                title="per-frame viewpoint",
            )
        )
    if "smoothed" in report:
        paths.append(
            plot_confusion_matrix(
                report["smoothed"]["confusion_matrix"],
                report_dir / "confusion_matrix_smoothed.png",
                title="smoothed viewpoint (track vote)",
            )
        )
    recs = [r for r in result.records if r.label is not None and r.smoothed is not None]
    if recs:
        paths.append(
            plot_track_timeline(
                [r.track_id for r in recs],
                [r.stamp_ns * 1e-9 for r in recs],
                [r.label for r in recs],
                [r.smoothed for r in recs],
                report_dir / "track_timeline.png",
                title=f"{title}: viewpoint per track",
            )
        )
    if result.sightings:
        from pose_classifier_ros.visualization.contact_sheet import write_contact_sheet

        paths.append(
            write_contact_sheet(
                result.sightings, report_dir / "contact_sheet.png", title=f"{title}: best views per track"
            )
        )
    return [str(p) for p in paths]


def print_summary(report: dict) -> None:
    for key in ("per_frame", "smoothed"):
        if key in report:
            r = report[key]
            print(
                f"{key:>9}: accuracy {r['accuracy']:.3f} on {r['num_samples']} detections, "
                f"coarse {r['coarse_accuracy']:.3f}, mean angular error {r['mean_angular_error_deg']:.1f} deg"
            )
    t = report["temporal"]
    print(
        f"flip rate: {t['per_frame']['mean_flips_per_s']:.2f}/s per frame, "
        f"{t['smoothed']['mean_flips_per_s']:.2f}/s smoothed"
    )
    if "schedule" in report:
        from pose_classifier_ros.replay.schedule_report import format_schedule_section

        print(format_schedule_section(report["schedule"]))
