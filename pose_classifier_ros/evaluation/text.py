"""report.txt sections for the keys ``analysis.analyse`` adds (intervals, targets, groups, calibration,
selective prediction, error structure); ``report.format_text_report`` places them (and appends the
per-group reports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pose_classifier_ros.evaluation.selective import NODE_PARAMETER


def _pct(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100.0 * float(v):.{digits}f}%"


def _ci(ci: Mapping[str, Any] | None) -> str:
    if not ci or ci.get("low") is None:
        return "[n/a]"
    return f"[{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"


def _num(v: Any, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(float(v), fmt)


def intervals_lines(sec: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{sec['level']:.0%} confidence intervals of accuracy (bootstrap, {sec['resamples']} resamples, "
        f"seed {sec['seed']}; widened to Wilson where that is wider):"
    ]
    rows = [("overall", sec["overall"])] + list(sec["per_class"].items())
    for name, ci in rows:
        lines.append(f"  {name:<12}{_pct(ci['estimate']):>8}  {_ci(ci):<14} n={ci['n']}")
    return lines


def targets_lines(sec: Mapping[str, Any]) -> list[str]:
    goals = ", ".join(f"{k} > {v:.0%}" for k, v in sec["targets"].items())
    lines = [
        f"Targets ({goals}); {sec['rule']}:",
        f"  {'scope':<28}{'metric':<9}{'target':>7}{'accuracy':>10}  {'interval':<14}{'n':>5}  decision",
    ]
    for r in sec["rows"]:
        lines.append(
            f"  {r['scope'][:27]:<28}{r['metric']:<9}{_pct(r['target'], 0):>7}{_pct(r['estimate']):>10}  "
            f"{_ci(r):<14}{r['n']:>5}  {r['decision'].upper()}"
        )
    counts = sec["counts"]
    lines.append(f"  => {counts['pass']} pass, {counts['fail']} fail, {counts['not enough data']} not enough data")
    return lines


def groups_lines(sec: Mapping[str, Any]) -> list[str]:
    lines = []
    head = (
        f"  {'group':<22}{'support':>8}{'accuracy':>10}  {'95% interval':<14}{'coarse':>8}{'ang.err':>9}"
        f"{'front':>8}{'back':>8}{'expected err':>14}"
    )
    for factor, rows in sec.items():
        lines += [
            f"By {factor} (accuracy interval: bootstrap; ang.err: mean deg; expected err: share of errors "
            "that are adjacent or mirror classes):",
            head,
        ]
        for value, r in rows.items():
            exp = r["error_structure"]["expected"]["share"]
            lines.append(
                f"  {value[:21]:<22}{r['support']:>8}{_pct(r['accuracy']):>10}  {_ci(r['accuracy_ci']):<14}"
                f"{_pct(r['coarse_accuracy']):>8}{_num(r['mean_angular_error_deg']):>9}"
                f"{_pct(r['front_accuracy'], 0):>8}{_pct(r['back_accuracy'], 0):>8}{_pct(exp, 0):>14}"
            )
        total = sum(r["support"] for r in rows.values())
        lines += [f"  {'(sum)':<22}{total:>8}", ""]
    return lines[:-1]


def calibration_lines(sec: Mapping[str, Any]) -> list[str]:
    t = sec["temperature"]
    lines = [
        f"Calibration ({sec['bins']} equal-width confidence bins; reliability.png):",
        f"  temperature:          {t:.4g}" + ("  (none stored: train with --fit-temperature)" if t == 1.0 else ""),
        f"  ECE:                  {_num(sec['ece_before'], '.4f')} at T = 1, {_num(sec['ece_after'], '.4f')} "
        f"at T = {t:.4g}",
        f"  NLL:                  {_num(sec['nll_before'], '.4f')} at T = 1, {_num(sec['nll_after'], '.4f')} "
        f"at T = {t:.4g}",
        f"  mean confidence:      {_pct(sec['mean_confidence_before'])} at T = 1, "
        f"{_pct(sec['mean_confidence_after'])} at T = {t:.4g}",
    ]
    return lines


def selective_lines(sec: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Selective prediction (confidence = {sec['confidence']}; accuracy_coverage.png/.csv):",
        f"  {NODE_PARAMETER + ' >=':<26}{'coverage':>9}{'accuracy':>10}{'kept':>7}",
    ]
    for r in sec["table"]:
        lines.append(f"  {r['min_confidence']:<26.2f}{_pct(r['coverage']):>9}{_pct(r['accuracy']):>10}{r['kept']:>7}")
    chosen = sec.get("chosen")
    if chosen is not None:
        if chosen["reached"]:
            lines += [
                f"  target accuracy {_pct(chosen['target'])}: {NODE_PARAMETER}: {chosen['min_confidence']:g}",
                f"    keeps {_pct(chosen['coverage'])} of crops ({chosen['kept']}/{chosen['n']}), kept accuracy "
                f"{_pct(chosen['accuracy'])} {_ci(chosen.get('accuracy_ci'))} (interval)",
            ]
            if not chosen.get("supported", True):
                lines.append(
                    f"    WARNING: the kept accuracy's interval reaches down to {_pct(chosen['accuracy_ci']['low'])}, "
                    "below the target: the threshold may not hold on new crops (more data, or a higher "
                    "target)"
                )
        elif chosen["n"]:
            lines.append(
                f"  target accuracy {_pct(chosen['target'])}: no confidence threshold reaches it on this data "
                f"(best {_pct(chosen['accuracy'])} at {NODE_PARAMETER} {chosen['min_confidence']:g}, "
                f"coverage {_pct(chosen['coverage'])})"
            )
    return lines


def errors_lines(sec: Mapping[str, Any]) -> list[str]:
    n = sec["errors"]
    lines = [f"Error structure ({n} errors of {sec['num_samples']}; shares of the errors):"]
    if not n:
        return lines + ["  no errors"]
    for key, what in (
        ("adjacent", "adjacent classes (45 deg)"),
        ("flip_symmetric", "mirror classes (left <-> right)"),
        ("opposite", "opposite (180 deg)"),
        ("expected", "expected: adjacent or mirror"),
        ("unexpected", "unexpected: any other"),
    ):
        lines.append(f"  {what:<34}{sec[key]['count']:>5}  {_pct(sec[key]['share'])}")
    by = ", ".join(f"{a} deg {v['count']}" for a, v in sec["by_angle_deg"].items())
    return lines + [f"  by angle: {by}"]


def format_sections(report: Mapping[str, Any]) -> list[str]:
    """Lines for every analysis section present in `report` (empty list when none is)."""
    lines: list[str] = []
    for key, render in (
        ("targets", targets_lines),
        ("intervals", intervals_lines),
        ("groups", groups_lines),
        ("calibration", calibration_lines),
        ("selective", selective_lines),
        ("error_structure", errors_lines),
    ):
        if report.get(key):
            lines += [""] + render(report[key])
    return lines


__all__ = ["format_sections"]
