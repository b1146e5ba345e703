"""Best views per track for re-identification, and sighting records for sighting-quality scoring.

Per track it keeps the best crop of each flank (left and right apart: stripe patterns differ) and the best
crop of any viewpoint, the histogram of voted viewpoints and first/last stamps. A view's score, 0..1, is

    (w_c * confidence + w_s * size + w_h * sharpness) / (w_c + w_s + w_h), x truncated_factor if truncated

confidence: the per-frame probability of the slot's class (left / right; any slot: of the predicted class);
size: sqrt(box area) / size_full_px, capped at 1; sharpness: v / (v + sharpness_half) with v the variance
of the 4-neighbour Laplacian of the grey box crop resized to 128 px on its long side (so it measures blur,
not crop size); truncated: the box touches the frame edge (the animal is probably cut). Only fresh
classifications (made on this frame) are candidates. When a track has not been seen for timeout_s (frame
stamps) it expires into a ``Sighting`` (maps onto msg/TrackSummary.msg). No ROS imports.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pose_classifier_ros.labels import INDEX, NUM_CLASSES, UNKNOWN_LABEL, VIEWPOINTS
from pose_classifier_ros.stream.clock import ClockResetDetector
from pose_classifier_ros.stream.conversions import ns_to_stamp

_logger = logging.getLogger(__name__)

SLOTS = ("left", "right", "best")
_SLOT_CLASS = {"left": INDEX["left"], "right": INDEX["right"]}
_SHARPNESS_SIDE = 128


@dataclass
class BestViewConfig:
    """Weights of the view score and the scales of its terms (see the module docstring)."""

    weight_confidence: float = 0.4
    weight_size: float = 0.3
    weight_sharpness: float = 0.3
    size_full_px: float = 224.0  # sqrt(box area), px, at which the size term reaches 1 (the model's input)
    sharpness_half: float = 100.0  # Laplacian variance (grey 0..255 at 128 px) scoring 0.5
    truncated_factor: float = 0.5  # multiplier for a box within edge_margin_px of the frame edge
    edge_margin_px: float = 2.0
    crop_padding: float = 0.1  # fraction of box width/height added on each side of saved crops
    keep_crops: bool = True  # keep the crop pixels (needed to write images; summaries need only scores)
    timeout_s: float = 2.0  # a track unseen this long (frame stamps) expires
    max_tracks: int = 512  # memory bound: beyond it the least recently seen track expires

    def __post_init__(self):
        weights = (self.weight_confidence, self.weight_size, self.weight_sharpness)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"best-view weights must be >= 0 with a positive sum, got {weights}")
        if not (self.size_full_px > 0 and self.sharpness_half > 0 and self.timeout_s > 0):
            raise ValueError("size_full_px, sharpness_half and timeout_s must be > 0")
        if not 0.0 <= self.truncated_factor <= 1.0:
            raise ValueError(f"truncated_factor must be in 0..1, got {self.truncated_factor}")


@dataclass
class View:
    """One candidate view. box: (4,) float32 xyxy px; crop: (h, w, 3) uint8 RGB with padding, or None."""

    stamp_ns: int
    label: int
    score: float
    confidence: float
    size: float
    sharpness: float
    truncated: bool
    box: np.ndarray
    crop: np.ndarray | None = None


@dataclass
class Sighting:
    """A track from first to last frame. histogram: (8,) int voted viewpoint per frame (class order);
    frames: frames the track was seen on; classified_frames: of those, classified on that frame;
    views: slot ("left", "right", "best") -> best View (absent when no such view was seen)."""

    track_id: str
    first_stamp_ns: int
    last_stamp_ns: int
    frame_id: str = ""
    frames: int = 0
    classified_frames: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    views: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.last_stamp_ns - self.first_stamp_ns) * 1e-9


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a (h, w) float image (0 for images under 3x3)."""
    g = np.asarray(grey, np.float32)
    if g.ndim != 2 or min(g.shape) < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def sharpness_of(crop: np.ndarray) -> float:
    """Laplacian variance of an RGB crop's grey image resized to 128 px on its long side."""
    from PIL import Image

    h, w = crop.shape[:2]
    if min(h, w) < 3:
        return 0.0
    scale = _SHARPNESS_SIDE / max(h, w)
    grey = Image.fromarray(np.ascontiguousarray(crop)).convert("L")
    grey = grey.resize((max(3, round(w * scale)), max(3, round(h * scale))), Image.Resampling.BILINEAR)
    return laplacian_variance(np.asarray(grey, np.float32))


def _clamped(box, width: int, height: int, pad: float = 0.0) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = pad * (x2 - x1), pad * (y2 - y1)
    return (
        int(max(0, np.floor(x1 - px))),
        int(max(0, np.floor(y1 - py))),
        int(min(width, np.ceil(x2 + px))),
        int(min(height, np.ceil(y2 + py))),
    )


class BestViewTracker:
    """Feed every processed frame with ``update``; collect expired tracks' Sightings (and ``flush`` at the end)."""

    def __init__(self, cfg: BestViewConfig | None = None):
        self.cfg = cfg or BestViewConfig()
        self._live: dict[str, Sighting] = {}  # insertion order = least recently seen first
        self._clock = ClockResetDetector()  # stream/clock.py: the one clock-reset rule

    def __len__(self) -> int:
        return len(self._live)

    def live(self) -> list[Sighting]:
        return list(self._live.values())

    def update(self, frame: np.ndarray | None, result, frame_id: str = "") -> list[Sighting]:
        """observe + consider for one frame ((H, W, 3) uint8 RGB; None when it could not be decoded) and its
        FrameResult, when both come from the same result (every_frame); returns the Sightings that expired."""
        expired = self.observe(result, frame_id)
        self.consider(frame, result)
        return expired

    def observe(self, result, frame_id: str = "") -> list[Sighting]:
        """Count a published frame: tracks seen (frames, first/last stamp) and their voted viewpoint; returns
        the Sightings that expired. Scheduled mode calls it for every published frame."""
        stamp = int(result.stamp_ns)
        expired = self._expire(stamp)
        for r in result.results:
            track = str(r.track_id)
            s = self._live.pop(track, None) or Sighting(track, stamp, stamp, frame_id)
            self._live[track] = s  # most recently seen last
            s.frames += 1
            s.last_stamp_ns, s.frame_id = max(s.last_stamp_ns, stamp), frame_id or s.frame_id
            voted = int(getattr(r.smoothed, "label", -1)) if r.smoothed is not None else -1
            if 0 <= voted < NUM_CLASSES:
                s.histogram[voted] += 1
        while len(self._live) > self.cfg.max_tracks:
            expired.append(self._live.pop(next(iter(self._live))))
        return expired

    def consider(self, frame: np.ndarray | None, result) -> None:
        """Offer the fresh classifications of `result` (made on `frame`) as best-view candidates of their live
        tracks (counted as classified frames). Scheduled mode calls it with the result after an inference."""
        stamp = int(result.stamp_ns)
        for r in result.results:
            s = self._live.get(str(r.track_id))
            if s is None or not getattr(r, "fresh", True) or not 0 <= int(r.label) < NUM_CLASSES:
                continue
            s.classified_frames += 1
            if frame is not None:
                self._consider(s, frame, r, stamp)

    def flush(self) -> list[Sighting]:
        """Every live track as a Sighting (end of a bag, deactivation); the tracker is then empty."""
        out, self._live = list(self._live.values()), {}
        return out

    def _expire(self, stamp: int) -> list[Sighting]:
        if self._clock.update(stamp):
            return self.flush()  # the clock was reset: a new recording, every sighting is over
        limit = stamp - int(self.cfg.timeout_s * 1e9)
        gone = [t for t, s in self._live.items() if s.last_stamp_ns < limit]
        return [self._live.pop(t) for t in gone]

    def _consider(self, s: Sighting, frame: np.ndarray, r, stamp: int) -> None:
        cfg = self.cfg
        height, width = frame.shape[:2]
        probs = np.asarray(r.probs, np.float32).reshape(-1)
        label = int(r.label)
        slots = [slot for slot, cls in _SLOT_CLASS.items() if label == cls] + ["best"]
        x1, y1, x2, y2 = _clamped(r.box, width, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return
        size = min(1.0, float(np.sqrt((x2 - x1) * (y2 - y1))) / cfg.size_full_px)
        m = cfg.edge_margin_px
        bx1, by1, bx2, by2 = (float(v) for v in r.box)
        truncated = bool(getattr(r, "truncated", False)) or (
            bx1 <= m or by1 <= m or bx2 >= width - m or by2 >= height - m
        )
        factor = cfg.truncated_factor if truncated else 1.0
        total = cfg.weight_confidence + cfg.weight_size + cfg.weight_sharpness
        conf = {slot: float(probs[_SLOT_CLASS.get(slot, label)]) for slot in slots}

        def score(slot: str, sharp: float) -> float:
            return (
                factor
                * (cfg.weight_confidence * conf[slot] + cfg.weight_size * size + cfg.weight_sharpness * sharp)
                / total
            )

        # Sharpness costs a resize: skip it when even a perfectly sharp crop could not win a slot.
        slots = [slot for slot in slots if slot not in s.views or score(slot, 1.0) > s.views[slot].score]
        if not slots:
            return
        v = sharpness_of(frame[y1:y2, x1:x2])
        sharp = v / (v + cfg.sharpness_half)
        crop = None
        for slot in slots:
            value = score(slot, sharp)
            if slot in s.views and value <= s.views[slot].score:
                continue
            if crop is None and cfg.keep_crops:
                px1, py1, px2, py2 = _clamped(r.box, width, height, cfg.crop_padding)
                crop = frame[py1:py2, px1:px2].copy()
            s.views[slot] = View(
                stamp, label, value, conf[slot], size, sharp, truncated, np.asarray(r.box, np.float32).copy(), crop
            )


# ---------------------------------------------------------------------------------------------
# Output: TrackSummary messages, crops and sightings.csv
# ---------------------------------------------------------------------------------------------


def sighting_to_msg(s: Sighting, types, header=None):
    """Sighting -> TrackSummary from `types` (TrackSummary, Header, Time): header stamp = last frame."""

    def view(slot: str) -> tuple:  # (stamp, score); zero stamp and score for an empty slot
        v = s.views.get(slot)
        stamp_ns, score = (v.stamp_ns, float(v.score)) if v is not None else (0, 0.0)
        return ns_to_stamp(stamp_ns, types.Time), score

    header = header or types.Header(stamp=ns_to_stamp(s.last_stamp_ns, types.Time), frame_id=s.frame_id)
    (left_t, left_s), (right_t, right_s), (best_t, best_s) = view("left"), view("right"), view("best")
    best = s.views.get("best")
    return types.TrackSummary(
        header=header,
        track_id=s.track_id,
        first_stamp=ns_to_stamp(s.first_stamp_ns, types.Time),
        last_stamp=ns_to_stamp(s.last_stamp_ns, types.Time),
        frames=int(s.frames),
        classified_frames=int(s.classified_frames),
        viewpoint_histogram=np.asarray(s.histogram, np.uint32).reshape(NUM_CLASSES),
        best_left_stamp=left_t,
        best_left_score=left_s,
        best_right_stamp=right_t,
        best_right_score=right_s,
        best_stamp=best_t,
        best_score=best_s,
        best_label=int(best.label) if best is not None else UNKNOWN_LABEL,
    )


def safe_dir_name(track_id: str) -> str:
    """A file-system-safe folder name for a track id ("iou-3" stays, "a/b c" -> "a_b_c")."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(track_id)).strip("._") or "track"
    return name[:100]


SIGHTINGS_COLUMNS = (
    ["track_id", "dir", "frame_id", "first_stamp_ns", "last_stamp_ns", "duration_s", "frames", "classified_frames"]
    + [f"voted_{name}" for name in VIEWPOINTS]
    + [f"{slot}_{key}" for slot in SLOTS for key in ("score", "stamp_ns", "label", "file", "confidence", "truncated")]
)


def _save_sighting(out: Path, s: Sighting, name: str, quality: int) -> dict:
    """Write s's crops into out/name/ and return its sightings.csv row."""
    from PIL import Image

    row = {
        "track_id": s.track_id,
        "dir": name,
        "frame_id": s.frame_id,
        "first_stamp_ns": s.first_stamp_ns,
        "last_stamp_ns": s.last_stamp_ns,
        "duration_s": f"{s.duration_s:.3f}",
        "frames": s.frames,
        "classified_frames": s.classified_frames,
    }
    row.update({f"voted_{n}": int(c) for n, c in zip(VIEWPOINTS, s.histogram)})
    for slot in SLOTS:
        v = s.views.get(slot)
        file = ""
        if v is not None and v.crop is not None and v.crop.size:
            (out / name).mkdir(exist_ok=True)
            file = f"{name}/{slot}.jpg"
            Image.fromarray(v.crop).save(out / file, quality=quality)
        row.update(
            {
                f"{slot}_score": f"{v.score:.4f}" if v else "",
                f"{slot}_stamp_ns": v.stamp_ns if v else "",
                f"{slot}_label": VIEWPOINTS[v.label] if v else "",
                f"{slot}_file": file,
                f"{slot}_confidence": f"{v.confidence:.4f}" if v else "",
                f"{slot}_truncated": int(v.truncated) if v else "",
            }
        )
    return row


def _free_name(out: Path, track_id: str, used: dict[str, int], skip_existing: bool = False) -> str:
    base = safe_dir_name(track_id)
    while True:
        used[base] = used.get(base, 0) + 1
        name = base if used[base] == 1 else f"{base}~{used[base]}"
        if not (skip_existing and (out / name).exists()):
            return name


def write_best_views(out_dir: str | Path, sightings: list[Sighting], quality: int = 92) -> Path:
    """DIR/<track>/{left,right,best}.jpg (those that exist) and DIR/sightings.csv; returns the CSV path.

    A track id seen in two sightings (it expired and came back) gets a second folder "<track>~2".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    used: dict[str, int] = {}
    rows = [
        _save_sighting(out, s, _free_name(out, s.track_id, used), quality)
        for s in sorted(sightings, key=lambda s: (s.first_stamp_ns, s.track_id))
    ]
    path = out / "sightings.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SIGHTINGS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


class SightingWriter:
    """Live counterpart of write_best_views: each expired Sighting's crops go into a new folder under
    `out_dir` at once and its row is appended to out_dir/sightings.csv (header written when new)."""

    def __init__(self, out_dir: str | Path, quality: int = 92):
        self.out = Path(out_dir)
        self.quality = quality
        self._used: dict[str, int] = {}

    def write(self, s: Sighting) -> str:
        """Save one Sighting; returns its folder name."""
        self.out.mkdir(parents=True, exist_ok=True)
        name = _free_name(self.out, s.track_id, self._used, skip_existing=True)  # never mix two runs
        row = _save_sighting(self.out, s, name, self.quality)
        path = self.out / "sightings.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SIGHTINGS_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        return name


__all__ = (
    "BestViewConfig",
    "BestViewTracker",
    "SIGHTINGS_COLUMNS",
    "SLOTS",
    "Sighting",
    "SightingWriter",
    "View",
    "laplacian_variance",
    "safe_dir_name",
    "sharpness_of",
    "sighting_to_msg",
    "write_best_views",
)
