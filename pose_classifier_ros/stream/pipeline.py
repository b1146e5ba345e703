"""Frame + detections -> per-detection viewpoints: track ids, classification, voting. No ROS imports.

Two pipelines, shared by the live node and the offline replay so both give the same answers:

- ViewpointPipeline (schedule.mode every_frame): process(frame, detections, stamp) classifies every crop
  of the frame in one batch and votes.
- ScheduledPipeline (schedule.mode scheduled): two paths over one per-track state. The publishing path,
  observe(detections, stamp, width, height), assigns track ids and returns the frame's results at once
  from each track's latest classification and vote (no model call). The inference path,
  classify(frame, observed), classifies the crops the CropScheduler picks on one observed frame, as one
  batch, and updates those tracks (each fresh classification votes once). Thread-safe: the node calls
  observe() from its executor and classify() from an inference thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from pose_classifier_ros.labels import UNKNOWN_LABEL, label_name
from pose_classifier_ros.stream.clock import ClockResetDetector
from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig, keep_mask, truncated_mask
from pose_classifier_ros.stream.scheduler import Candidate, CropScheduler, ScheduleConfig
from pose_classifier_ros.stream.track_state import TrackTable, box_change
from pose_classifier_ros.stream.voting import IouTracker, SmoothedLabel, TrackVoter, VotingConfig


@dataclass
class Detection:
    """One detector box. box: (4,) float32 xyxy pixels; score: detector confidence (0 if none);
    track_id: the detector/tracker's id, or None to let the pipeline assign an "iou-<n>" id;
    class_id: the detector's class of the box (its best hypothesis), None if it gives none."""

    box: np.ndarray
    score: float = 0.0
    track_id: str | None = None
    class_id: str | None = None

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.track_id == "":
            self.track_id = None


@dataclass
class ViewpointResult:
    """Viewpoint of one detection. label: the track's latest per-frame argmax class index (UNKNOWN_LABEL
    before its first classification); probs: (8,) float32 softmax of that classification (zeros when
    unknown); smoothed: the track's vote (None while it has none); label_stamp_ns: stamp of the frame the
    label was computed on (None when unknown); fresh: computed on this frame; voted: this frame's
    prediction was counted as a vote; truncated: the padded crop is cut by the frame edge."""

    track_id: str
    box: np.ndarray
    detection_score: float
    label: int
    probs: np.ndarray
    smoothed: SmoothedLabel | None
    label_stamp_ns: int | None = None
    fresh: bool = True
    voted: bool = True
    truncated: bool = False
    heading_deg: float | None = None  # of `probs`, when already computed (None: conversions computes it)
    heading_spread_deg: float | None = None

    @property
    def label_name(self) -> str:
        return label_name(self.label)

    @property
    def known(self) -> bool:
        return self.label != UNKNOWN_LABEL


@dataclass
class FrameResult:
    """All results of one frame, in detector order. skipped: detections with no result (box invalid,
    too small or outside the frame); filtered: detections left out by filter.class_ids / filter.min_score
    (not in `results`, not in `skipped`); timings_ms: classifier stages plus "vote" and "total"."""

    stamp_ns: int
    width: int
    height: int
    results: list[ViewpointResult] = field(default_factory=list)
    skipped: int = 0
    timings_ms: dict = field(default_factory=dict)
    filtered: int = 0


def _check_frame(frame) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        desc = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame must be an (H, W, 3) uint8 RGB array, got {desc}")


def _boxes(detections: list[Detection]) -> tuple[np.ndarray, np.ndarray]:
    """((N, 4) float32 xyxy boxes, (N,) bool finite with positive size)."""
    boxes = (
        np.stack([d.box for d in detections]).astype(np.float32, copy=False)
        if detections
        else np.zeros((0, 4), np.float32)
    )
    finite = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, finite


def _filtered(detections: list[Detection], cfg: DetectionFilterConfig) -> tuple[list[Detection], int]:
    """(the detections to classify, how many were left out) under filter.class_ids / filter.min_score."""
    if not detections or (not cfg.class_ids and cfg.min_score <= 0.0):
        return list(detections), 0
    keep = keep_mask([d.class_id for d in detections], [d.score for d in detections], cfg)
    return [d for d, k in zip(detections, keep) if k], int((~keep).sum())


def _crop_padding(crop, classifier) -> float:
    from pose_classifier_ros.model.preprocess import CropConfig

    return float((crop or getattr(classifier, "crop", None) or CropConfig()).padding)


def _probs_of(pred, count: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(probs (count, C) float32, valid (count,) bool, timings) of a FramePrediction, checked."""
    p = np.asarray(pred.probs, dtype=np.float32)
    v = np.asarray(pred.valid, dtype=bool).reshape(-1)
    if p.ndim != 2 or p.shape[0] != count or v.shape[0] != count:
        raise RuntimeError(f"classifier returned probs {p.shape} / valid {v.shape} for {count} boxes")
    timings = {k: float(t) for k, t in dict(getattr(pred, "timings_ms", {}) or {}).items()}
    return p, v & np.all(np.isfinite(p), axis=1), timings


class ViewpointPipeline:
    """Classifies every detection of a frame in one batch and smooths labels per track over time.

    classifier: any object with predict_frame(frame, boxes) -> FramePrediction(probs (N, C),
    valid (N,), timings_ms) (ViewpointClassifier, or a fake in tests). detection_filter: which detections
    are classified at all; crop: the classifier's CropConfig (its padding decides `truncated`; default
    classifier.crop).
    """

    def __init__(
        self,
        classifier,
        voting: VotingConfig | None = None,
        iou_threshold: float = 0.3,
        *,
        detection_filter: DetectionFilterConfig | None = None,
        crop=None,
    ):
        self.classifier = classifier
        self.detection_filter = detection_filter or DetectionFilterConfig()
        self.crop_padding = _crop_padding(crop, classifier)
        self.voting = voting or VotingConfig()
        self.voter = TrackVoter(self.voting)
        self.tracker = IouTracker(
            iou_threshold=iou_threshold,
            timeout_s=self.voting.track_timeout_s,
            max_tracks=max(self.voting.max_tracks, 1),
        )

    def reset(self) -> None:
        """Forget all tracks and votes (e.g. after a bag loop or when the camera changes)."""
        self.voter.reset()
        self.tracker.reset()

    def process(self, frame: np.ndarray, detections: list[Detection], stamp_ns: int) -> FrameResult:
        """Classify `detections` on `frame` ((H, W, 3) uint8 RGB) captured at stamp_ns (int ns)."""
        start = time.perf_counter()
        _check_frame(frame)
        height, width = frame.shape[:2]
        stamp_s = int(stamp_ns) * 1e-9
        detections, filtered = _filtered(detections, self.detection_filter)
        n = len(detections)
        boxes, finite = _boxes(detections)
        truncated = truncated_mask(boxes, width, height, self.crop_padding)

        # Ids: keep the detector's; give the others IoU-associated ids. The tracker runs every frame
        # (even with nothing to track) so its tracks expire on time.
        need_id = [i for i, d in enumerate(detections) if d.track_id is None and finite[i]]
        assigned = self.tracker.assign(boxes[need_id], stamp_s)
        track_ids: list[str | None] = [d.track_id for d in detections]
        for i, tid in zip(need_id, assigned):
            track_ids[i] = tid

        probs = np.full((n, 0), np.nan, np.float32)
        valid = np.zeros(n, bool)
        timings: dict = {}
        idx = np.flatnonzero(finite)
        if idx.size:  # one batched call per frame; degenerate boxes never reach the classifier
            p, v, t = _probs_of(self.classifier.predict_frame(frame, boxes[idx]), idx.size)
            probs = np.full((n, p.shape[1]), np.nan, np.float32)
            probs[idx] = p
            valid[idx] = v
            timings.update(t)

        vote_start = time.perf_counter()
        self.voter.expire(stamp_s)  # before voting: a track back after the timeout starts afresh
        results: list[ViewpointResult] = []
        for i, det in enumerate(detections):
            if not valid[i]:
                continue
            smoothed = self.voter.update(track_ids[i], probs[i], stamp_s, truncated=bool(truncated[i]))
            results.append(
                ViewpointResult(
                    track_id=track_ids[i],
                    box=det.box,
                    detection_score=det.score,
                    label=int(np.argmax(probs[i])),
                    probs=probs[i].copy(),
                    smoothed=smoothed,
                    label_stamp_ns=int(stamp_ns),
                    voted=bool(getattr(smoothed, "voted", True)),
                    truncated=bool(truncated[i]),
                )
            )
        now = time.perf_counter()
        timings["vote"] = (now - vote_start) * 1e3
        timings["total"] = (now - start) * 1e3
        return FrameResult(
            stamp_ns=int(stamp_ns),
            width=int(width),
            height=int(height),
            results=results,
            skipped=n - len(results),
            timings_ms=timings,
            filtered=filtered,
        )


@dataclass
class ObservedFrame:
    """A frame as the publishing path saw it; the inference path classifies crops of it.

    track_ids: per detection (None for a non-finite box); valid: (N,) bool, box usable (finite, inside the
    frame, at least crop.min_box_size); generation: the pipeline's reset count when it was observed;
    truncated: (N,) bool, padded crop cut by the frame edge (None: none); filtered: detections left out by
    the input filter (not in `detections`)."""

    stamp_ns: int
    width: int
    height: int
    detections: list[Detection]
    track_ids: list[str | None]
    valid: np.ndarray
    generation: int = 0
    truncated: np.ndarray | None = None
    filtered: int = 0

    def is_truncated(self, i: int) -> bool:
        return bool(self.truncated[i]) if self.truncated is not None else False


@dataclass
class InferenceCycle:
    """One inference cycle: the frame it classified, the tracks it picked (Choice: id + reason), how many
    got a valid classification, and timings_ms (classifier stages, "schedule", "update", "total")."""

    stamp_ns: int
    choices: list = field(default_factory=list)
    classified: int = 0
    timings_ms: dict = field(default_factory=dict)


class ScheduledPipeline:
    """Per-track scheduled classification: publish every frame from track state, classify a few crops per cycle.

    classifier: anything with predict_frame(frame, boxes) -> FramePrediction (as ViewpointPipeline);
    crop: the classifier's CropConfig (decides which boxes are usable; default classifier.crop).
    Votes count only fresh classifications; a track not classified yet is reported with UNKNOWN_LABEL.
    """

    def __init__(
        self,
        classifier,
        voting: VotingConfig | None = None,
        iou_threshold: float = 0.3,
        schedule: ScheduleConfig | None = None,
        crop=None,
        *,
        detection_filter: DetectionFilterConfig | None = None,
    ):
        from pose_classifier_ros.model.preprocess import CropConfig

        self.classifier = classifier
        self.detection_filter = detection_filter or DetectionFilterConfig()
        self.voting = voting or VotingConfig()
        self.schedule = schedule or ScheduleConfig()
        self.crop = crop or getattr(classifier, "crop", None) or CropConfig()
        self.voter = TrackVoter(self.voting)
        self.tracker = IouTracker(
            iou_threshold=iou_threshold,
            timeout_s=self.voting.track_timeout_s,
            max_tracks=max(self.voting.max_tracks, 1),
        )
        self.tracks = TrackTable(self.voting.track_timeout_s, self.voting.max_tracks)
        self.scheduler = CropScheduler(self.schedule)
        self.generation = 0
        self.crops_classified = 0
        self._clock = ClockResetDetector()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.tracks)

    def reset(self) -> None:
        """Forget all tracks, labels and votes (results of a cycle already running are dropped)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self.voter.reset()
        self.tracker.reset()
        self.tracks.reset()
        self.scheduler.reset()
        self.generation += 1

    # -- publishing path ----------------------------------------------------------------------------
    def observe(
        self, detections: list[Detection], stamp_ns: int, width: int, height: int
    ) -> tuple[ObservedFrame, FrameResult]:
        """Associate a frame's detections with tracks and return its results from track state (no model).

        width, height: frame size, px. Boxes unusable for a crop are skipped (FrameResult.skipped)."""
        from pose_classifier_ros.model.preprocess import expand_and_clamp_boxes

        start = time.perf_counter()
        stamp_ns = int(stamp_ns)
        detections, filtered = _filtered(detections, self.detection_filter)
        boxes, finite = _boxes(detections)
        valid = finite & expand_and_clamp_boxes(boxes, int(width), int(height), self.crop)[1]
        truncated = truncated_mask(boxes, int(width), int(height), float(self.crop.padding))
        with self._lock:
            if self._clock.update(stamp_ns):
                self._reset()  # bag loop or clock reset: tracks "seen in the future" are meaningless
            need_id = [i for i, d in enumerate(detections) if d.track_id is None and finite[i]]
            assigned = self.tracker.assign(boxes[need_id], stamp_ns * 1e-9)
            track_ids: list[str | None] = [d.track_id for d in detections]
            for i, tid in zip(need_id, assigned):
                track_ids[i] = tid
            for i in np.flatnonzero(valid):
                self.tracks.see(track_ids[i], boxes[i], stamp_ns)
            for tid in self.tracks.expire(stamp_ns):
                self.voter.discard(tid)
            observed = ObservedFrame(
                stamp_ns,
                int(width),
                int(height),
                list(detections),
                track_ids,
                valid,
                self.generation,
                truncated=truncated,
                filtered=filtered,
            )
            result = self._result(observed)
        result.timings_ms["total"] = (time.perf_counter() - start) * 1e3
        return observed, result

    def result(self, observed: ObservedFrame) -> FrameResult:
        """The observed frame's results from the current track state (e.g. again after classify())."""
        with self._lock:
            return self._result(observed)

    def _result(self, observed: ObservedFrame) -> FrameResult:
        results = []
        for i in np.flatnonzero(observed.valid):
            det, tid = observed.detections[i], observed.track_ids[i]
            state = self.tracks.get(tid) if observed.generation == self.generation else None
            truncated = observed.is_truncated(i)
            if state is None or not state.classified:
                results.append(
                    ViewpointResult(
                        tid,
                        det.box,
                        det.score,
                        UNKNOWN_LABEL,
                        np.zeros(8, np.float32),
                        None,
                        label_stamp_ns=None,
                        fresh=False,
                        voted=False,
                        truncated=truncated,
                    )
                )
                continue
            fresh = state.label_stamp_ns == observed.stamp_ns
            results.append(
                ViewpointResult(
                    tid,
                    det.box,
                    det.score,
                    state.label,
                    state.probs.copy(),
                    state.vote,
                    label_stamp_ns=state.label_stamp_ns,
                    fresh=fresh,
                    voted=fresh and state.voted,
                    truncated=truncated,
                    heading_deg=state.heading_deg,
                    heading_spread_deg=state.heading_spread_deg,
                )
            )
        return FrameResult(
            stamp_ns=observed.stamp_ns,
            width=observed.width,
            height=observed.height,
            results=results,
            skipped=len(observed.detections) - len(results),
            timings_ms={},
            filtered=observed.filtered,
        )

    # -- inference path -----------------------------------------------------------------------------
    def _candidates(self, observed: ObservedFrame) -> dict[str, tuple[int, Candidate]]:
        out: dict[str, tuple[int, Candidate]] = {}
        for i in np.flatnonzero(observed.valid):
            tid, box = observed.track_ids[i], observed.detections[i].box
            state = self.tracks.get(tid)
            if state is None or tid in out:
                continue
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            vote = self.voter.get(tid) if state.classified else None
            unsettled = state.classified and (vote is None or not vote.is_stable or vote.label != state.label)
            change = box_change(state.classified_box, box) if state.classified else 0.0
            out[tid] = (
                int(i),
                Candidate(tid, w * h, state.label_stamp_ns, state.attempted_ns, bool(unsettled), change),
            )
        return out

    def classify(self, frame: np.ndarray, observed: ObservedFrame, max_crops: int | None = None) -> InferenceCycle:
        """Classify, as one batch, the crops the scheduler picks on `observed` (its decoded (H, W, 3) uint8
        RGB `frame`), and store each result in its track (one vote each). max_crops: this cycle's budget
        (default schedule.max_crops)."""
        start = time.perf_counter()
        _check_frame(frame)
        cycle = InferenceCycle(stamp_ns=int(observed.stamp_ns))
        with self._lock:
            if observed.generation != self.generation:
                return cycle  # observed before a reset
            candidates = self._candidates(observed)
            limit = self.schedule.max_crops if max_crops is None else min(int(max_crops), self.schedule.max_crops)
            cycle.choices = self.scheduler.select([c for _, c in candidates.values()], observed.stamp_ns, limit)
        cycle.timings_ms["schedule"] = (time.perf_counter() - start) * 1e3
        if not cycle.choices:
            cycle.timings_ms["total"] = cycle.timings_ms["schedule"]
            return cycle
        idx = [candidates[c.track_id][0] for c in cycle.choices]
        boxes = np.stack([observed.detections[i].box for i in idx]).astype(np.float32, copy=False)
        probs, valid, timings = _probs_of(self.classifier.predict_frame(frame, boxes), len(idx))
        cycle.timings_ms.update(timings)
        update_start = time.perf_counter()
        stamp_s = observed.stamp_ns * 1e-9
        with self._lock:
            if observed.generation == self.generation:
                for i, choice, box, p, ok in zip(idx, cycle.choices, boxes, probs, valid):
                    if self.tracks.record(choice.track_id, p if ok else None, observed.stamp_ns, box):
                        vote = self.voter.update(
                            choice.track_id,
                            p,
                            stamp_s,  # a fresh label votes once
                            truncated=observed.is_truncated(i),
                        )
                        state = self.tracks.get(choice.track_id)
                        state.voted = bool(getattr(vote, "voted", True))
                        state.vote = self.voter.get(choice.track_id)  # cached: the publishing path reads it
                        cycle.classified += 1
                self.crops_classified += cycle.classified
        now = time.perf_counter()
        cycle.timings_ms["update"] = (now - update_start) * 1e3
        cycle.timings_ms["total"] = (now - start) * 1e3
        return cycle


__all__ = (
    "UNKNOWN_LABEL",
    "Detection",
    "ViewpointResult",
    "FrameResult",
    "ViewpointPipeline",
    "ObservedFrame",
    "InferenceCycle",
    "ScheduledPipeline",
)
