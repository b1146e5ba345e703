"""Replay report section for the scheduled mode: label age and the accuracy of the *published* labels.

In scheduled mode a published label may be cached (computed on an earlier frame) or UNKNOWN (track not
classified yet). Accuracy here is over every published detection: UNKNOWN counts as wrong, cached labels
are judged against the current frame's ground truth. Beside it, the every_frame run on the same frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _accuracy(pairs) -> float | None:
    pairs = list(pairs)
    return float(np.mean([pred == true for pred, true in pairs])) if pairs else None


def _flips(records, key: str) -> float:
    from pose_classifier_ros.metrics import flip_rate

    return float(
        flip_rate(
            [r.track_id for r in records], [r.stamp_ns * 1e-9 for r in records], [getattr(r, key) for r in records]
        )["mean_flips_per_s"]
    )


def _accuracies(records) -> dict[str, Any]:
    matched = [r for r in records if r.true is not None]
    known = [r for r in matched if r.label is not None]
    return {
        "per_frame": _accuracy((r.label, r.true) for r in matched),
        "per_frame_fresh": _accuracy((r.label, r.true) for r in known if r.fresh),
        "per_frame_cached": _accuracy((r.label, r.true) for r in known if not r.fresh),
        "smoothed": _accuracy((r.smoothed, r.true) for r in matched),
        "detections_with_truth": len(matched),
    }


def label_age_stats(ages) -> dict[str, float] | None:
    """{"median", "p95", "max"} of label ages, s (None without any)."""
    a = np.asarray([x for x in ages if x is not None], np.float64)
    if not a.size:
        return None
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def schedule_section(result) -> dict[str, Any]:
    """The "schedule" part of the replay report (ReplayResult of a scheduled replay)."""
    recs = result.records
    frames = max(int(result.stats.get("frames_processed", 0)), 1)
    n = len(recs)
    section = dict(result.schedule or {})
    section.update(
        detections=n,
        crops_per_frame=section.get("crops_classified", 0) / frames,
        unknown_fraction=sum(r.label is None for r in recs) / n if n else None,
        fresh_fraction=sum(r.fresh for r in recs) / n if n else None,
        label_age_s=label_age_stats(r.label_age_s for r in recs),
        published_accuracy=_accuracies(recs),
        flips_per_s={"per_frame": _flips(recs, "label"), "smoothed": _flips(recs, "smoothed")},
    )
    if result.baseline is not None:
        base = result.baseline.records
        acc = _accuracies(base)
        section["every_frame"] = {
            "detections": len(base),
            "per_frame": acc["per_frame"],
            "smoothed": acc["smoothed"],
            "flips_per_s": {"per_frame": _flips(base, "label"), "smoothed": _flips(base, "smoothed")},
        }
        ours, theirs = section["published_accuracy"]["smoothed"], acc["smoothed"]
        if ours is not None and theirs is not None:
            section["smoothed_accuracy_difference_points"] = 100.0 * (ours - theirs)
    return section


def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_schedule_section(section: dict) -> str:
    """Text lines of the schedule section for report.txt."""
    rate = section.get("crops_per_second")
    budget = f"{rate:g} crops/s simulated" if rate else "no budget (max_crops every frame)"
    ages = section.get("label_age_s") or {}
    acc, base = section["published_accuracy"], section.get("every_frame") or {}
    lines = [
        "scheduled classification (labels as published)",
        f"  budget: {budget}, at most {section.get('max_crops')} crops per cycle; {section.get('crops_classified')} "
        f"crops in {section.get('inference_cycles')} cycles ({_f(section.get('crops_per_frame'), 2)} per frame)",
        f"  label age, s: median {_f(ages.get('median'))}  p95 {_f(ages.get('p95'))}  max {_f(ages.get('max'))}; "
        f"unknown {_f(100 * (section.get('unknown_fraction') or 0), 1)} % of detections, fresh "
        f"{_f(100 * (section.get('fresh_fraction') or 0), 1)} %",
        f"  {'accuracy':<30} {'scheduled':>9} {'every_frame':>11}",
        f"  {'per-frame label (all)':<30} {_f(acc['per_frame']):>9} {_f(base.get('per_frame')):>11}",
        f"  {'  fresh / cached':<30} {_f(acc['per_frame_fresh']):>9} / {_f(acc['per_frame_cached'])}",
        f"  {'smoothed label':<30} {_f(acc['smoothed']):>9} {_f(base.get('smoothed')):>11}",
        f"  {'smoothed flips/s per track':<30} {_f(section['flips_per_s']['smoothed']):>9} "
        f"{_f((base.get('flips_per_s') or {}).get('smoothed')):>11}",
    ]
    if "smoothed_accuracy_difference_points" in section:
        lines.append(
            f"  smoothed accuracy, scheduled - every_frame: "
            f"{section['smoothed_accuracy_difference_points']:+.2f} points"
        )
    return "\n".join(lines)


__all__ = ["format_schedule_section", "label_age_stats", "schedule_section"]
