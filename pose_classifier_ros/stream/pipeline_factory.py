"""The one place a TrackPipeline is built from the classifier node's configuration (node and replay call it).

The node builds it from its parameters at activation; `pose-classifier replay` from the same YAML read
through the same schema, with its command line on top (--schedule, --max-crops). Both get the same
voting, tracking, schedule, crop and filter settings, so both publish the same labels for the same frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pose_classifier_ros.stream.clock import ClockReset
from pose_classifier_ros.stream.node_config import NodeConfig
from pose_classifier_ros.stream.pipeline import TrackPipeline


def build_pipeline(
    config: NodeConfig,
    classifier,
    *,
    mode: str | None = None,
    max_crops: int | None = None,
    on_clock_reset: Callable[[ClockReset], None] | None = None,
) -> TrackPipeline:
    """TrackPipeline of `classifier` with config.s voting, tracking.iou_threshold, schedule, crop and filter.

    mode: "every_frame" | "scheduled" overrides schedule.mode; max_crops overrides schedule.max_crops;
    on_clock_reset: see TrackPipeline (the node passes its logger)."""
    schedule = config.schedule
    if mode is not None or max_crops is not None:
        schedule = replace(
            schedule,
            mode=mode if mode is not None else schedule.mode,
            max_crops=max_crops if max_crops is not None else schedule.max_crops,
        )
    return TrackPipeline(
        classifier,
        voting=config.voting,
        iou_threshold=config.tracking.iou_threshold,
        schedule=schedule,
        crop=config.crop,
        detection_filter=config.filter,
        on_clock_reset=on_clock_reset,
    )


__all__ = ["build_pipeline"]
