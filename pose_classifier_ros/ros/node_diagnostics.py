"""The classifier node's counters and its DiagnosticArray (one status: counts, latency, label age, stages).

``NodeCounters`` is what the node's threads add to (executor thread: pairing, observe, publish; worker or
inference thread: decode, classify); ``diagnostics_status`` turns a snapshot of it, the pairer's counters
and the lost-frame watchdog's state into one DiagnosticStatus. docs/node_pose_classifier.md lists the keys.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class NodeCounters:
    """Counters and rolling windows (latency of the last 200 published frames, ms; ages of the last 1000
    published known labels, s; per-stage times of the last 200, ms). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._latency_ms: deque = deque(maxlen=200)
        self._label_age_s: deque = deque(maxlen=1000)
        self._stage_ms: dict[str, deque] = {}

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += int(n)

    def record(self, counts: dict, stages_ms: dict, latency_ms: float | None = None, label_ages_s=()) -> None:
        """Add counts, stage times (ms), one frame's latency (ms) and its published label ages (s)."""
        with self._lock:
            for key, n in counts.items():
                self._counts[key] += int(n)
            self._label_age_s.extend(label_ages_s)
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
            for key, value in stages_ms.items():
                self._stage_ms.setdefault(key, deque(maxlen=200)).append(float(value))

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                dict(self._counts),
                np.asarray(self._latency_ms, dtype=np.float64),
                np.asarray(self._label_age_s, dtype=np.float64),
                {k: float(np.mean(v)) for k, v in self._stage_ms.items() if v},
            )


@dataclass
class Snapshot:
    counts: dict
    latency_ms: np.ndarray
    label_age_s: np.ndarray
    stage_ms: dict = field(default_factory=dict)


def _window_values(prefix: str, values: np.ndarray, digits: int) -> dict[str, str]:
    if not values.size:
        return {}
    return {
        f"{prefix}.median": f"{np.median(values):.{digits}f}",
        f"{prefix}.p95": f"{np.percentile(values, 95):.{digits}f}",
        f"{prefix}.max": f"{values.max():.{digits}f}",
    }


def diagnostics_status(
    name: str,
    hardware_id: str,
    snapshot: Snapshot,
    pairing_stats: dict,
    extra: dict[str, str],
    *,
    image_topic: str,
    pairing_problem: str | None = None,
    watchdog=None,
) -> DiagnosticStatus:
    """The node's DiagnosticStatus. extra: further key -> value strings (tracks, modes, QoS events, ...);
    watchdog: the FrameWatchdog (None when off). WARN when frames are lost, pairing fails, frames fail to
    decode or process, or no image arrived yet; OK otherwise."""
    counts = dict(snapshot.counts)
    counts.update({f"frames_{k}" if k == "paired" else k: v for k, v in pairing_stats.items()})
    counts.setdefault("filtered", 0)
    values = {**{k: str(v) for k, v in sorted(counts.items())}, **extra}
    values.update(_window_values("latency_ms", snapshot.latency_ms, 1))
    if snapshot.latency_ms.size:
        values["latency_frames"] = str(snapshot.latency_ms.size)
    values.update(_window_values("label_age_s", snapshot.label_age_s, 3))
    values.update({f"stage_ms.{k}": f"{v:.2f}" for k, v in snapshot.stage_ms.items()})
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, level=DiagnosticStatus.OK, message="ok")
    errors = counts.get("dropped_undecodable", 0) + counts.get("dropped_error", 0)
    if watchdog is not None:
        values["frames_lost"] = "true" if watchdog.lost else "false"
    if watchdog is not None and watchdog.lost:
        status.level = DiagnosticStatus.WARN
        status.message = f"frames lost on {image_topic}: {watchdog.reason}"
    elif pairing_problem or errors:
        status.level = DiagnosticStatus.WARN
        status.message = pairing_problem or f"{errors} frame(s) failed to decode or process"
    elif not counts.get("images_received"):
        status.level, status.message = DiagnosticStatus.WARN, f"no images on {image_topic}"
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status


__all__ = ["NodeCounters", "Snapshot", "diagnostics_status"]
