"""Replay report section for the scheduled mode: label age and the accuracy of the *published* labels.

In scheduled mode a published label may be cached (computed on an earlier frame) or UNKNOWN (track not
classified yet). Accuracy here is over every published detection: UNKNOWN counts as wrong, cached labels
are judged against the current frame's ground truth. Beside it, the every_frame run on the same frames.

Per track (``per_track``): each track's published smoothed accuracy, scheduled and every_frame. With a focus
(``replay --focus-track`` / ``--focus-topic``), the ``focus`` part judges the detections whose track was in
focus on their frame against every_frame's labels of the same detections: the figure the focus is for.
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


def _per_track(records, baseline) -> dict[str, dict[str, Any]]:
    """{track: {detections, smoothed, every_frame_smoothed}} over the detections with ground truth."""
    base_by_track: dict[str, list] = {}
    for r in baseline:
        if r.true is not None:
            base_by_track.setdefault(r.track_id, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.true is not None:
            out.setdefault(r.track_id, {"records": []})["records"].append(r)
    for track, entry in sorted(out.items()):
        recs = entry.pop("records")
        entry.update(
            detections=len(recs),
            smoothed=_accuracy((x.smoothed, x.true) for x in recs),
            every_frame_smoothed=_accuracy((x.smoothed, x.true) for x in base_by_track.get(track, [])),
        )
    return dict(sorted(out.items()))


def _focus_part(records, baseline) -> dict[str, Any] | None:
    """The focused detections (DetectionRecord.focused): label age, published accuracy, and every_frame's
    accuracy on the same (frame, track) detections; None without any."""
    focused = [r for r in records if r.focused]
    if not focused:
        return None
    keys = {(r.stamp_ns, r.track_id) for r in focused}
    base = [r for r in baseline if (r.stamp_ns, r.track_id) in keys]
    acc, base_acc = _accuracies(focused), _accuracies(base)
    part = {
        "tracks": sorted({r.track_id for r in focused}),
        "detections": len(focused),
        "unknown_fraction": sum(r.label is None for r in focused) / len(focused),
        "fresh_fraction": sum(r.fresh for r in focused) / len(focused),
        "label_age_s": label_age_stats(r.label_age_s for r in focused),
        "per_frame": acc["per_frame"],
        "smoothed": acc["smoothed"],
        "detections_with_truth": acc["detections_with_truth"],
        "every_frame": {"per_frame": base_acc["per_frame"], "smoothed": base_acc["smoothed"]} if base else None,
    }
    if base and acc["smoothed"] is not None and base_acc["smoothed"] is not None:
        part["smoothed_accuracy_difference_points"] = 100.0 * (acc["smoothed"] - base_acc["smoothed"])
    return part


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
    base_records = result.baseline.records if result.baseline is not None else []
    section["per_track"] = _per_track(recs, base_records)
    focus = _focus_part(recs, base_records)
    if focus is not None:
        section["focus_tracks"] = focus
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
    if section.get("focus"):
        lines.append(
            f"  focus: {section['focus']}, share {section.get('focus_share')}; "
            f"{section.get('crops_focus')} focus crops, {section.get('crops_new')} new-track crops"
        )
    focus = section.get("focus_tracks")
    if focus:
        fage, fbase = focus.get("label_age_s") or {}, focus.get("every_frame") or {}
        lines += [
            f"  focused detections ({', '.join(focus['tracks'])}): {focus['detections']}, label age, s: median "
            f"{_f(fage.get('median'))}  p95 {_f(fage.get('p95'))}  max {_f(fage.get('max'))}; fresh "
            f"{_f(100 * focus['fresh_fraction'], 1)} %",
            f"  {'  per-frame label (focused)':<30} {_f(focus['per_frame']):>9} {_f(fbase.get('per_frame')):>11}",
            f"  {'  smoothed label (focused)':<30} {_f(focus['smoothed']):>9} {_f(fbase.get('smoothed')):>11}",
        ]
        if "smoothed_accuracy_difference_points" in focus:
            lines.append(
                f"  focused smoothed accuracy, scheduled - every_frame: "
                f"{focus['smoothed_accuracy_difference_points']:+.2f} points"
            )
    return "\n".join(lines)


__all__ = ["format_schedule_section", "label_age_stats", "schedule_section"]
