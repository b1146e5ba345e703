"""Which inputs a batch run processes: effective options per input, their hashes, and the skip rule.

An input is skipped when DIR/<name>/_SUCCESS.json carries the same input hash and config hash (markers);
it runs when it is new, failed before, or its input or configuration changed, and always with --force.
An input whose files are missing fails here, with its _FAILED.json, without reaching a worker; unless it
was finished with the same configuration before (the bag was archived after processing): its result is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pose_classifier_ros.season.manifest import InputSpec
from pose_classifier_ros.season.markers import Marker, config_hash, input_hash, read_marker, record_failure
from pose_classifier_ros.season.runner import InputTask

_logger = logging.getLogger(__name__)

FILE_OPTIONS = ("checkpoint", "params", "backbone_weights")  # hashed by content into the config hash
INPUT_FILE_OPTIONS = ("ground_truth",)  # per-input data: hashed into the input hash


@dataclass
class PlannedInput:
    """One manifest row's fate in this run. action: "skip" (finished, hashes match), "run", "failed" (could
    not even start: its _FAILED.json is written) or "in_flight" (a SLURM task of an earlier submission is
    still on it). reason: why, in words."""

    spec: InputSpec
    action: str
    reason: str
    task: InputTask | None = None
    marker: Marker | None = None


def effective_options(base: Mapping[str, Any], spec: InputSpec) -> dict[str, Any]:
    """The command line's processing options with the row's overrides on top."""
    return {**base, **spec.options}


def plan_inputs(
    specs: list[InputSpec],
    base_options: Mapping[str, Any],
    out_dir: Path,
    *,
    force: bool = False,
    write_bag: bool = False,
    in_flight: Container[str] = (),
    job: str | None = None,
    record: bool = True,
) -> list[PlannedInput]:
    """Decide every row (see the module docstring). base_options: ReplayOptions keyword arguments from the
    command line (processing options only); record=False writes no _FAILED.json (--merge-only)."""
    planned = []
    for spec in specs:
        if spec.name in in_flight:
            planned.append(PlannedInput(spec, "in_flight", "an earlier SLURM task is still running it"))
            continue
        options = effective_options(base_options, spec)
        try:
            if spec.error:
                raise ValueError(f"manifest row {spec.row}: {spec.error}")
            files = {k: options.get(k) for k in FILE_OPTIONS}
            hashed = {k: v for k, v in options.items() if k not in INPUT_FILE_OPTIONS}
            cfg_h = config_hash(dict(hashed, write_bag=write_bag), files)
            marker = read_marker(out_dir / spec.name)
            if not spec.path.exists() and marker is not None and marker.status == "done" and not force:
                if marker.config_hash == cfg_h:  # the flight was archived after it was processed: keep its result
                    task = _task(spec, options, marker.input_hash, cfg_h, out_dir, write_bag, job)
                    planned.append(PlannedInput(spec, "skip", "finished; its input is gone (kept)", task, marker))
                    continue
            in_h = input_hash([spec.path] + [options.get(k) for k in INPUT_FILE_OPTIONS] + [spec.tracks])
        except (OSError, ValueError) as exc:
            if record:
                record_failure(out_dir, spec.name, str(spec.path), str(exc), error_type=type(exc).__name__, job=job)
            planned.append(PlannedInput(spec, "failed", str(exc), marker=read_marker(out_dir / spec.name)))
            continue
        task = _task(spec, options, in_h, cfg_h, out_dir, write_bag, job)
        if marker is not None and marker.matches(in_h, cfg_h) and not force:
            planned.append(PlannedInput(spec, "skip", "finished, hashes match", task, marker))
            continue
        if force:
            reason = "--force"
        elif marker is None:
            reason = "new"
        elif marker.status != "done":
            reason = f"failed before: {marker.error}"
        elif marker.input_hash != in_h:
            reason = "input changed"
        else:
            reason = "configuration changed"
        planned.append(PlannedInput(spec, "run", reason, task, marker))
    return planned


def _task(spec: InputSpec, options, in_h: str, cfg_h: str, out_dir: Path, write_bag: bool, job) -> InputTask:
    return InputTask(
        name=spec.name,
        path=str(spec.path),
        out_dir=str(out_dir),
        options=options,
        input_hash=in_h,
        config_hash=cfg_h,
        metadata=dict(spec.metadata),
        write_bag=write_bag,
        job=job,
        tracks=str(spec.tracks) if spec.tracks is not None else None,
        tracks_format=spec.tracks_format,
    )


__all__ = ("FILE_OPTIONS", "PlannedInput", "effective_options", "plan_inputs")
