"""Ground truth for replay: true viewpoints per (stamp or frame index, track id) from a CSV or a bag topic."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pose_classifier_ros.labels import normalize_label

_logger = logging.getLogger(__name__)


@dataclass
class GroundTruth:
    """True class index per (stamp_ns, track_id) or (frame_index, track_id)."""

    by_stamp: dict[tuple[int, str], int] = field(default_factory=dict)
    by_frame: dict[tuple[int, str], int] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.by_stamp) + len(self.by_frame)

    def lookup(self, stamp_ns: int, frame_index: int, track_id: str) -> int | None:
        label = self.by_stamp.get((stamp_ns, track_id))
        return self.by_frame.get((frame_index, track_id)) if label is None else label

    def label(self, records, baseline_records, stats: dict) -> None:
        """Set ``true`` on every DetectionRecord (the run's and its every_frame baseline's) and note in `stats`
        where the truth came from and how many of the run's detections it matched."""
        for rec in [*records, *baseline_records]:
            rec.true = self.lookup(rec.stamp_ns, rec.frame_index, rec.track_id)
        stats["ground_truth_source"] = self.source
        stats["ground_truth_matched"] = sum(r.true is not None for r in records)


def load_ground_truth_csv(path: str | Path) -> GroundTruth:
    """Read ``stamp_ns,frame_index,track_id,pose`` (stamp_ns or frame_index may be empty/absent)."""
    gt = GroundTruth(source=str(path))
    try:
        with Path(path).open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())
            if not {"track_id", "pose"} <= columns or not columns & {"stamp_ns", "frame_index"}:
                raise ValueError(
                    f"ground truth {str(path)!r} needs columns track_id, pose and stamp_ns or "
                    f"frame_index; it has {sorted(columns)}"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    label = normalize_label(row["pose"])
                    track = str(row["track_id"]).strip()
                    if (row.get("stamp_ns") or "").strip():
                        gt.by_stamp[(int(row["stamp_ns"]), track)] = label
                    elif (row.get("frame_index") or "").strip():
                        gt.by_frame[(int(row["frame_index"]), track)] = label
                    else:
                        raise ValueError("neither stamp_ns nor frame_index is set")
                except (ValueError, TypeError) as exc:
                    _logger.warning("ground truth %s line %d skipped: %s", path, line, exc)
    except OSError as exc:
        raise ValueError(f"cannot read ground truth {str(path)!r}: {exc}") from None
    if not len(gt):
        raise ValueError(f"ground truth {str(path)!r} has no usable rows")
    return gt
