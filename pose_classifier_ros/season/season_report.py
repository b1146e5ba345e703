"""The season report (DIR/season/): every input's row, metrics merged over the finished inputs, one
sightings table and contact sheet, throughput per input.

  inputs.csv         one row per manifest input: name, path, metadata, status (done / failed / outdated /
                     running / pending), frames, tracks, crops, seconds, crops_per_s, accuracy,
                     smoothed_accuracy, load_seconds, worker, job, error
  metrics.json       {"season": counts and totals, "per_frame" / "smoothed": {"report":
                     classification_report, "intervals": ..., "groups": {factor: {value: row}}}}
  report.txt         the same in words (evaluation.text's interval and group tables)
  sightings.csv      every track of every finished flight: input, metadata, then the per-flight sightings.csv
                     columns, with dir/file paths relative to DIR
  contact_sheet.png  best views per track, flight after flight (contact_sheet_2.png, ... beyond 100 tracks)
  throughput.png     crops/s per input

Metrics are merged as confusion matrices (each input's metrics.json), so a season of millions of crops
costs no more memory than one flight. Intervals and groups are the evaluation package's (bootstrap widened
to Wilson; rows of evaluation.analysis's group table) over crops. Crops of one track are not independent,
so these intervals are narrower than the truth; the spread over flights (inputs.csv) is the honest view.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.evaluation.uncertainty import DEFAULT_LEVEL, DEFAULT_RESAMPLES, accuracy_interval
from pose_classifier_ros.labels import INDEX, NUM_CLASSES, VIEWPOINTS
from pose_classifier_ros.metrics import (
    classification_report_from_confusion,
    error_structure_from_confusion,
    summary_row,
)
from pose_classifier_ros.season.manifest import InputSpec
from pose_classifier_ros.season.markers import read_marker
from pose_classifier_ros.visualization.best_views import SIGHTINGS_COLUMNS, SLOTS

_logger = logging.getLogger(__name__)

SEASON_DIR = "season"
SHEET_ROWS = 100
KINDS = (("per_frame", "per-frame label (one crop)"), ("smoothed", "smoothed label (track vote)"))
INPUT_COLUMNS = (
    ["name", "path"],
    [
        "status",
        "frames",
        "tracks",
        "crops",
        "seconds",
        "crops_per_s",
        "accuracy",
        "smoothed_accuracy",
        "load_seconds",
        "worker",
        "job",
        "error",
    ],
)


@dataclass
class InputState:
    """One input at merge time. status: done | failed | outdated (finished with other hashes) | running |
    pending; summary: the _SUCCESS.json summary; hashes: the (input, config) hashes this run expects (None
    when they could not be computed)."""

    spec: InputSpec
    status: str
    summary: dict = field(default_factory=dict)
    error: str = ""
    worker: str = ""
    job: str = ""


def input_states(
    out_dir: Path,
    specs: Sequence[InputSpec],
    hashes: Mapping[str, tuple[str, str] | None],
    running: Mapping[str, str] = {},
) -> list[InputState]:
    """Each row's state from its marker, the hashes this run expects, and the SLURM tasks still on it."""
    states = []
    for spec in specs:
        marker = read_marker(Path(out_dir) / spec.name)
        expected = hashes.get(spec.name)
        if spec.name in running:
            state = InputState(spec, "running", job=running[spec.name])
        elif marker is None:
            state = InputState(spec, "pending")
        elif marker.status == "done":
            ok = expected is not None and marker.matches(*expected)
            state = InputState(spec, "done" if ok else "outdated", marker.summary or {})
        else:
            state = InputState(spec, "failed", error=marker.error or "")
        if marker is not None:
            state.worker, state.job = marker.worker or "", marker.job or state.job
        states.append(state)
    return states


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_inputs_csv(path: Path, states: Sequence[InputState], metadata_columns: Sequence[str]) -> Path:
    head, tail = INPUT_COLUMNS
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(head + list(metadata_columns) + tail)
        for s in states:
            m = s.summary
            writer.writerow(
                [s.spec.name, str(s.spec.path)]
                + [s.spec.metadata.get(c, "") for c in metadata_columns]
                + [
                    s.status,
                    _fmt(m.get("frames")),
                    _fmt(m.get("tracks")),
                    _fmt(m.get("crops")),
                    _fmt(m.get("seconds"), 2),
                    _fmt(m.get("crops_per_second"), 2),
                    _fmt(m.get("accuracy"), 4),
                    _fmt(m.get("smoothed_accuracy"), 4),
                    _fmt(m.get("load_seconds"), 2),
                    s.worker,
                    s.job,
                    s.error.replace("\n", " "),
                ]
            )
    return path


# ---------------------------------------------------------------------------------------------
# metrics merged as confusion matrices
# ---------------------------------------------------------------------------------------------
def _confusions(out_dir: Path, done: Sequence[InputState]) -> dict[str, dict[str, np.ndarray]]:
    """{kind: {input name: (8, 8) int64}} from each finished input's metrics.json (inputs with ground truth)."""
    out: dict[str, dict[str, np.ndarray]] = {kind: {} for kind, _ in KINDS}
    for s in done:
        path = Path(out_dir) / s.spec.name / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            _logger.warning("%s: cannot read %s: %s", s.spec.name, path, exc)
            continue
        for kind, _ in KINDS:
            if kind in metrics:
                out[kind][s.spec.name] = np.asarray(metrics[kind]["confusion_matrix"], np.int64)
    return out


def _outcomes(k: int, n: int) -> np.ndarray:
    """(n,) bool with k True: the per-crop outcomes a count stands for (what accuracy_interval resamples)."""
    return np.arange(n) < k


@dataclass
class IntervalOptions:
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0

    def interval(self, k: int, n: int, key: str) -> dict[str, Any]:
        return accuracy_interval(
            _outcomes(k, n), level=self.level, resamples=self.resamples, seed=self.seed, key=key
        ).to_dict()

    def class_interval(self, cm: np.ndarray, cls: int, key: str) -> dict[str, Any]:
        return self.interval(int(cm[cls, cls]), int(cm[cls].sum()), key)


def _intervals(cm: np.ndarray, opt: IntervalOptions) -> dict[str, Any]:
    """evaluation.analysis's "intervals" section of the samples a confusion matrix counts."""
    return {
        "level": opt.level,
        "resamples": opt.resamples,
        "seed": opt.seed,
        "overall": opt.interval(int(np.trace(cm)), int(cm.sum()), "overall"),
        "per_class": {name: opt.class_interval(cm, i, f"class/{name}") for i, name in enumerate(VIEWPOINTS)},
    }


def _group_row(cm: np.ndarray, scope: str, opt: IntervalOptions) -> dict[str, Any]:
    """One row of evaluation.analysis's group table, from the group's summed confusion matrix."""
    rep = classification_report_from_confusion(cm)
    return {
        **summary_row(rep),
        "accuracy_ci": opt.interval(int(np.trace(cm)), int(cm.sum()), f"group/{scope}"),
        "front_ci": opt.class_interval(cm, INDEX["front"], f"group/{scope}/front"),
        "back_ci": opt.class_interval(cm, INDEX["back"], f"group/{scope}/back"),
        "error_structure": error_structure_from_confusion(cm),
        "report": rep,
    }


def season_metrics(
    confusions: Mapping[str, np.ndarray],
    metadata: Mapping[str, Mapping[str, str]],
    factors: Sequence[str],
    opt: IntervalOptions,
) -> dict[str, Any] | None:
    """report, intervals and groups over the inputs of `confusions` ({input: (8, 8)}); groups by the
    metadata columns in `factors` (inputs without the column: "(missing)"). None without inputs."""
    from pose_classifier_ros.evaluation.groups import MISSING

    if not confusions:
        return None
    total = sum(confusions.values(), np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64))
    groups: dict[str, dict[str, Any]] = {}
    for factor in factors:
        by_value: dict[str, np.ndarray] = {}
        for name, cm in confusions.items():
            value = "/".join(metadata.get(name, {}).get(c) or MISSING for c in factor.split("+"))
            by_value[value] = by_value.get(value, 0) + cm
        order = sorted(by_value, key=lambda v: (MISSING in v, v))
        groups[factor] = {v: _group_row(by_value[v], f"{factor}={v}", opt) for v in order}
    return {
        "inputs": len(confusions),
        "report": classification_report_from_confusion(total),
        "intervals": _intervals(total, opt),
        "groups": groups,
    }


# ---------------------------------------------------------------------------------------------
# sightings and the contact sheet
# ---------------------------------------------------------------------------------------------
def _prefixed(row: dict[str, str], prefix: str) -> dict[str, str]:
    out = dict(row)
    for key in ["dir"] + [f"{slot}_file" for slot in SLOTS]:
        if out.get(key):
            out[key] = f"{prefix}/{out[key]}"
    return out


def season_sightings(out_dir: Path, done: Sequence[InputState], metadata_columns: Sequence[str]) -> list[dict]:
    """Every finished input's best_views/sightings.csv rows, with input + metadata, paths relative to DIR."""
    rows = []
    for s in done:
        path = Path(out_dir) / s.spec.name / "best_views" / "sightings.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                meta = {c: s.spec.metadata.get(c, "") for c in metadata_columns}
                rows.append({"input": s.spec.name, **meta, **_prefixed(row, f"{s.spec.name}/best_views")})
    return rows


def _float(value: str, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _sighting_from_row(out_dir: Path, row: dict[str, str]):
    """A best_views.Sighting (crops read back from the JPEGs) for the contact sheet; stamps are made relative
    to the flight's first stamp in the caller."""
    from PIL import Image

    from pose_classifier_ros.visualization.best_views import Sighting, View

    s = Sighting(
        track_id=f"{row['input']}/{row['track_id']}",
        first_stamp_ns=int(_float(row["first_stamp_ns"])),
        last_stamp_ns=int(_float(row["last_stamp_ns"])),
        frame_id=row.get("frame_id", ""),
        frames=int(_float(row["frames"])),
        classified_frames=int(_float(row["classified_frames"])),
        histogram=np.array([int(_float(row.get(f"voted_{n}", "0"))) for n in VIEWPOINTS], np.int64),
    )
    for slot in SLOTS:
        if not row.get(f"{slot}_score"):
            continue
        crop = None
        if row.get(f"{slot}_file"):
            try:
                with Image.open(Path(out_dir) / row[f"{slot}_file"]) as im:
                    crop = np.asarray(im.convert("RGB"))
            except OSError as exc:
                _logger.warning("cannot read %s: %s", row[f"{slot}_file"], exc)
        s.views[slot] = View(
            stamp_ns=int(_float(row[f"{slot}_stamp_ns"])),
            label=INDEX.get(row.get(f"{slot}_label", ""), 0),
            score=_float(row[f"{slot}_score"]),
            confidence=_float(row.get(f"{slot}_confidence", ""), float("nan")),
            size=0.0,
            sharpness=0.0,
            truncated=row.get(f"{slot}_truncated", "") == "1",
            box=np.zeros(4, np.float32),
            crop=crop,
        )
    return s


def write_season_sheets(out_dir: Path, rows: Sequence[dict], folder: Path) -> list[Path]:
    """contact_sheet.png (+ _2, _3, ... every SHEET_ROWS tracks): flight after flight, times within the flight."""
    from pose_classifier_ros.visualization.contact_sheet import write_contact_sheet

    sightings = []
    start_of: dict[str, int] = {}
    for row in rows:
        start_of[row["input"]] = min(start_of.get(row["input"], 2**63), int(_float(row["first_stamp_ns"])))
    for row in rows:
        s = _sighting_from_row(out_dir, row)
        shift = start_of[row["input"]]  # every flight starts at t = 0 on the sheet
        s.first_stamp_ns -= shift
        s.last_stamp_ns -= shift
        for v in s.views.values():
            v.stamp_ns -= shift
        sightings.append(s)
    pages = max(1, -(-len(sightings) // SHEET_ROWS))
    paths = []
    for page in range(pages):
        name = "contact_sheet.png" if page == 0 else f"contact_sheet_{page + 1}.png"
        title = "season: best views per track" + (f", page {page + 1} of {pages}" if pages > 1 else "")
        chunk = sightings[page * SHEET_ROWS : (page + 1) * SHEET_ROWS]
        paths.append(write_contact_sheet(chunk, folder / name, max_rows=SHEET_ROWS, title=title, sort=False))
    return paths


# ---------------------------------------------------------------------------------------------
# throughput plot, text, the whole report
# ---------------------------------------------------------------------------------------------
def plot_throughput(states: Sequence[InputState], path: Path) -> Path | None:
    """Horizontal bars: crops/s per finished input (label: crops and seconds)."""
    done = [s for s in states if s.status == "done" and s.summary.get("crops_per_second")]
    if not done:
        return None
    from pose_classifier_ros.plotting import pyplot, save_figure

    plt = pyplot()
    names = [s.spec.name for s in done]
    rates = [float(s.summary["crops_per_second"]) for s in done]
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.32 * len(done)))
    bars = ax.barh(range(len(done)), rates, color="#4c72b0")
    ax.set_yticks(range(len(done)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("crops per second (replay wall time, model load excluded)")
    ax.set_title("throughput per input")
    for bar, s in zip(bars, done):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {s.summary.get('crops', 0)} crops, {float(s.summary.get('seconds', 0.0)):.1f} s",
            va="center",
            fontsize=7,
        )
    ax.set_xlim(0, max(rates) * 1.35)
    path = save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _totals(states: Sequence[InputState], wall_seconds: float | None) -> dict[str, Any]:
    done = [s.summary for s in states if s.status == "done"]
    counts = {k: sum(s.status == k for s in states) for k in ("done", "failed", "outdated", "running", "pending")}
    crops = sum(int(m.get("crops") or 0) for m in done)
    seconds = sum(float(m.get("seconds") or 0.0) for m in done)
    return {
        "inputs": len(states),
        **counts,
        "frames": sum(int(m.get("frames") or 0) for m in done),
        "tracks": sum(int(m.get("tracks") or 0) for m in done),
        "crops": crops,
        "seconds": seconds,
        "crops_per_second": crops / seconds if seconds > 0 else None,
        "model_loads": sum(1 for m in done if float(m.get("load_seconds") or 0.0) > 0),
        "wall_seconds_this_run": wall_seconds,
    }


def format_season_report(season: Mapping[str, Any], states: Sequence[InputState]) -> str:
    from pose_classifier_ros.evaluation.text import groups_lines, intervals_lines

    t = season["season"]
    rate = f"{t['crops_per_second']:.1f}" if t["crops_per_second"] else "n/a"
    lines = [
        "season report",
        "=============",
        "",
        f"inputs: {t['inputs']} ({t['done']} done, {t['failed']} failed, {t['outdated']} outdated, "
        f"{t['running']} running, {t['pending']} pending)",
        f"finished: {t['frames']} frames, {t['tracks']} tracks, {t['crops']} crops in {t['seconds']:.1f} s of "
        f"replay ({rate} crops/s per worker), {t['model_loads']} model load(s)",
    ]
    for kind, heading in KINDS:
        sec = season.get(kind)
        if not sec:
            continue
        lines += ["", f"{heading}: {sec['inputs']} input(s) with ground truth", ""]
        lines += intervals_lines(sec["intervals"])
        if sec["groups"]:
            lines += [""] + groups_lines(sec["groups"])
    if not any(season.get(kind) for kind, _ in KINDS):
        lines += ["", "no finished input has ground truth: no accuracy"]
    lines += [
        "",
        "note: intervals treat crops as independent; crops of one track are not, so they are too narrow. "
        "The spread over flights (inputs.csv) is the honest view.",
    ]
    failed = [s for s in states if s.status == "failed"]
    if failed:
        lines += ["", "failed inputs:"] + [f"  {s.spec.name}: {s.error}" for s in failed]
    return "\n".join(lines) + "\n"


def write_season_report(
    out_dir: Path,
    states: Sequence[InputState],
    metadata_columns: Sequence[str],
    factors: Sequence[str] | None = None,
    intervals: IntervalOptions | None = None,
    wall_seconds: float | None = None,
) -> list[Path]:
    """Everything in DIR/season/ (see the module docstring); factors: metadata columns to group by (default:
    every metadata column)."""
    from pose_classifier_ros.report import to_jsonable

    out_dir = Path(out_dir)
    folder = out_dir / SEASON_DIR
    folder.mkdir(parents=True, exist_ok=True)
    opt = intervals or IntervalOptions()
    factors = list(metadata_columns) if factors is None else list(factors)
    done = [s for s in states if s.status == "done"]
    metadata = {s.spec.name: s.spec.metadata for s in states}
    season: dict[str, Any] = {"season": _totals(states, wall_seconds), "factors": factors}
    for kind, matrices in _confusions(out_dir, done).items():
        season[kind] = season_metrics(matrices, metadata, factors, opt)
    season["inputs"] = {s.spec.name: {"status": s.status, **s.summary, "error": s.error or None} for s in states}
    paths = [write_inputs_csv(folder / "inputs.csv", states, metadata_columns)]
    paths.append(folder / "metrics.json")
    paths[-1].write_text(json.dumps(to_jsonable(season), indent=2) + "\n")
    paths.append(folder / "report.txt")
    paths[-1].write_text(format_season_report(season, states))
    rows = season_sightings(out_dir, done, metadata_columns)
    columns = ["input", *metadata_columns, *SIGHTINGS_COLUMNS]
    with (folder / "sightings.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    paths.append(folder / "sightings.csv")
    paths += write_season_sheets(out_dir, rows, folder)
    plot = plot_throughput(states, folder / "throughput.png")
    if plot is not None:
        paths.append(plot)
    return paths


__all__ = (
    "InputState",
    "IntervalOptions",
    "SEASON_DIR",
    "format_season_report",
    "input_states",
    "plot_throughput",
    "season_metrics",
    "season_sightings",
    "write_season_report",
)
