"""The track pipeline: detections -> tracks -> viewpoint labels -> votes, shared by the node and the replay.

One pipeline, one per-track state, three verbs (no ROS imports):

- ``observe(detections, stamp_ns, width, height)``: filter the detections, give them track ids (the
  detector's, else IoU-associated "iou-<n>"), forget tracks unseen for voting.track_timeout_s, and
  return the frame's results from track state (no model call).
- ``classify(frame, observed, max_crops=None)``: classify, as one batch, the crops of the tracks this
  cycle picks on an observed frame and store each in its track (one vote each). schedule.mode
  ``scheduled``: the CropScheduler's choice under the crop budget, a share reserved for the tracks in
  ``pipeline.focus`` (stream/focus.py: the navigation policy's target); ``every_frame``: every visible track.
- ``step(frame, detections, stamp_ns, max_crops=None)``: both on one thread, then the frame's results.

schedule.mode every_frame is "classify every visible track right after observing": a frame's results
hold only the labels computed on it. scheduled is the same pipeline with observe() on the publishing
thread and classify() on an inference thread: results carry each track's latest label (UNKNOWN before
its first). Thread-safe (one lock around the track state). A clock reset (stamps going back past
stream/clock.py's threshold) forgets every track and is reported once through ``on_clock_reset``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from pose_classifier_ros.stream.clock import ClockReset, ClockResetDetector, log_clock_reset
from pose_classifier_ros.stream.detection_filter import DetectionFilterConfig, keep_mask, truncated_mask
from pose_classifier_ros.stream.focus import Focus
from pose_classifier_ros.stream.pipeline_types import (
    UNKNOWN_LABEL,
    Detection,
    FrameResult,
    InferenceCycle,
    ObservedFrame,
    ViewpointResult,
)
from pose_classifier_ros.stream.scheduler import Candidate, Choice, CropScheduler, ScheduleConfig
from pose_classifier_ros.stream.track_state import TrackState, TrackTable, box_change
from pose_classifier_ros.stream.voting import IouTracker, TrackVoter, VotingConfig

EVERY_TRACK = "every_frame"  # Choice.reason in every_frame mode: every visible track is classified


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


def _probs_of(pred, count: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(probs (count, C) float32, valid (count,) bool, timings) of a FramePrediction, checked."""
    p = np.asarray(pred.probs, dtype=np.float32)
    v = np.asarray(pred.valid, dtype=bool).reshape(-1)
    if p.ndim != 2 or p.shape[0] != count or v.shape[0] != count:
        raise RuntimeError(f"classifier returned probs {p.shape} / valid {v.shape} for {count} boxes")
    timings = {k: float(t) for k, t in dict(getattr(pred, "timings_ms", {}) or {}).items()}
    return p, v & np.all(np.isfinite(p), axis=1), timings


def _unknown(tid: str, det: Detection, truncated: bool) -> ViewpointResult:
    return ViewpointResult(
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


def _from_state(tid: str, det: Detection, state: TrackState, stamp_ns: int, truncated: bool) -> ViewpointResult:
    fresh = state.label_stamp_ns == stamp_ns
    return ViewpointResult(
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


class TrackPipeline:
    """Per-track viewpoint classification with voting; observe / classify / step (see the module docstring).

    classifier: any object with predict_frame(frame (H, W, 3) uint8, boxes (N, 4)) -> FramePrediction
    (probs (N, C), valid (N,), timings_ms): ViewpointClassifier, or a fake in tests. schedule.mode picks
    what classify() classifies (every_frame: every visible track; scheduled: the scheduler's choice, at most
    schedule.max_crops); crop: the classifier's CropConfig (which boxes are usable, and `truncated`; default
    classifier.crop); detection_filter: which detections are classified at all; on_clock_reset: called once
    per clock reset with a ClockReset (default: log_clock_reset, Python logging); focus: the Focus whose
    tracks get schedule.focus_share of each scheduled cycle (default: an empty one with
    schedule.focus_timeout_s; set it from any thread, e.g. ``pipeline.focus.set(ids, stamp_ns)``).
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
        on_clock_reset: Callable[[ClockReset], None] | None = None,
        focus: Focus | None = None,
    ):
        from pose_classifier_ros.model.preprocess import CropConfig

        self.classifier = classifier
        self.detection_filter = detection_filter or DetectionFilterConfig()
        self.voting = voting or VotingConfig()
        self.schedule = schedule or ScheduleConfig()
        self.crop = crop or getattr(classifier, "crop", None) or CropConfig()
        self.on_clock_reset = on_clock_reset or log_clock_reset
        self.voter = TrackVoter(self.voting)
        self.tracker = IouTracker(
            iou_threshold=iou_threshold,
            timeout_s=self.voting.track_timeout_s,
            max_tracks=max(self.voting.max_tracks, 1),
        )
        self.tracks = TrackTable(self.voting.track_timeout_s, self.voting.max_tracks)
        self.scheduler = CropScheduler(self.schedule)
        self.focus = focus if focus is not None else Focus(self.schedule.focus_timeout_s)
        self.generation = 0
        self.crops_classified = 0
        self._clock = ClockResetDetector()
        self._lock = threading.Lock()

    @property
    def classifies_every_track(self) -> bool:
        """schedule.mode every_frame: classify() takes every visible track and a frame's results hold only
        the labels computed on it."""
        return self.schedule.mode == "every_frame"

    def crop_limit(self, max_crops: int | None = None) -> int | None:
        """Crops one classify() may take: None = every visible track (every_frame), else
        min(max_crops, schedule.max_crops) (max_crops None: schedule.max_crops)."""
        if self.classifies_every_track:
            return None
        return self.schedule.max_crops if max_crops is None else max(0, min(int(max_crops), self.schedule.max_crops))

    def __len__(self) -> int:
        return len(self.tracks)

    def reset(self) -> None:
        """Forget all tracks, labels and votes (results of a cycle already running are dropped)."""
        with self._lock:
            self._reset()
            self._clock.reset()

    def _reset(self) -> None:
        self.voter.reset()
        self.tracker.reset()
        self.tracks.reset()
        self.scheduler.reset()
        self.generation += 1

    # -- observe: track association, expiry, results from track state ------------------------------
    def observe(
        self, detections: list[Detection], stamp_ns: int, width: int, height: int
    ) -> tuple[ObservedFrame, FrameResult]:
        """Associate a frame's detections with tracks and return its results from track state (no model).

        width, height: frame size, px. Boxes unusable for a crop are skipped (FrameResult.skipped). Tracks
        unseen for more than voting.track_timeout_s are forgotten before this frame's detections count, so a
        track back after the timeout starts afresh (no old label, no old votes)."""
        observed = self.associate(detections, stamp_ns, width, height)
        result = self.result(observed)
        result.timings_ms.update(observed.timings_ms, total=observed.timings_ms["observe"])
        return observed, result

    def associate(self, detections: list[Detection], stamp_ns: int, width: int, height: int) -> ObservedFrame:
        """observe() without building the frame's results (step() builds them after classifying)."""
        from pose_classifier_ros.model.preprocess import expand_and_clamp_boxes

        start = time.perf_counter()
        stamp_ns = int(stamp_ns)
        detections, filtered = _filtered(detections, self.detection_filter)
        boxes, finite = _boxes(detections)
        valid = finite & expand_and_clamp_boxes(boxes, int(width), int(height), self.crop)[1]
        truncated = truncated_mask(boxes, int(width), int(height), float(self.crop.padding))
        reset = None
        with self._lock:
            if self._clock.update(stamp_ns):  # bag loop or clock reset: tracks "seen in the future" mean nothing
                reset = ClockReset("track pipeline", self._clock.last_back_s, stamp_ns, f"forgot {len(self)} track(s)")
                self._reset()
            # Ids: keep the detector's; give the others IoU-associated ids. The tracker runs every frame
            # (even with nothing to track) so its tracks expire on time.
            need_id = [i for i, d in enumerate(detections) if d.track_id is None and finite[i]]
            assigned = self.tracker.assign(boxes[need_id], stamp_ns * 1e-9)
            track_ids: list[str | None] = [d.track_id for d in detections]
            for i, tid in zip(need_id, assigned):
                track_ids[i] = tid
            for tid in self.tracks.expire(stamp_ns):  # before seeing: a track back after the timeout is new
                self.voter.discard(tid)
            for i in np.flatnonzero(valid):
                self.tracks.see(track_ids[i], boxes[i], stamp_ns)
            for tid in self.tracks.evict():
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
        if reset is not None:
            self.on_clock_reset(reset)
        observed.timings_ms["observe"] = (time.perf_counter() - start) * 1e3
        return observed

    def result(self, observed: ObservedFrame) -> FrameResult:
        """The observed frame's results from the current track state (e.g. again after classify())."""
        with self._lock:
            return self._result(observed)

    def _result(self, observed: ObservedFrame) -> FrameResult:
        results = []
        current = observed.generation == self.generation
        for i in np.flatnonzero(observed.valid):
            det, tid = observed.detections[i], observed.track_ids[i]
            state = self.tracks.get(tid) if current else None
            truncated = observed.is_truncated(i)
            if state is not None and state.classified:
                result = _from_state(tid, det, state, observed.stamp_ns, truncated)
            else:
                result = _unknown(tid, det, truncated)
            if result.fresh or not self.classifies_every_track:
                results.append(result)
        return FrameResult(
            stamp_ns=observed.stamp_ns,
            width=observed.width,
            height=observed.height,
            results=results,
            skipped=len(observed.detections) - len(results),
            timings_ms={},
            filtered=observed.filtered,
        )

    # -- classify: one batch of crops, one vote each ------------------------------------------------
    def _candidates(self, observed: ObservedFrame, focused: frozenset[str]) -> dict[str, tuple[int, Candidate]]:
        """Visible tracks of `observed` (first detection of each id): (detection index, Candidate)."""
        out: dict[str, tuple[int, Candidate]] = {}
        for i in np.flatnonzero(observed.valid):
            tid, box = observed.track_ids[i], observed.detections[i].box
            state = self.tracks.get(tid)
            if state is None or tid in out:
                continue
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            vote = state.vote  # the voter's vote as of the track's last classification (see classify)
            unsettled = state.classified and (vote is None or not vote.is_stable or vote.label != state.label)
            change = box_change(state.classified_box, box) if state.classified else 0.0
            out[tid] = (
                int(i),
                Candidate(
                    tid, w * h, state.label_stamp_ns, state.attempted_ns, bool(unsettled), change, tid in focused
                ),
            )
        return out

    def _choose(self, observed: ObservedFrame, max_crops) -> tuple[list[Choice], dict[str, int]]:
        """(this cycle's choices, detection index of each chosen track)."""
        limit = self.crop_limit(max_crops)
        if limit is None:  # every visible track, in detector order (first detection of each id)
            index: dict[str, int] = {}
            for i in np.flatnonzero(observed.valid):
                tid = observed.track_ids[i]
                if tid not in index and tid in self.tracks:
                    index[tid] = int(i)
            return [Choice(tid, EVERY_TRACK) for tid in index], index
        focused = self.focus.tracks_at(observed.stamp_ns) if self.schedule.focus_share > 0 else frozenset()
        candidates = self._candidates(observed, focused)
        choices = self.scheduler.select([c for _, c in candidates.values()], observed.stamp_ns, limit)
        return choices, {tid: i for tid, (i, _) in candidates.items()}

    def classify(self, frame: np.ndarray, observed: ObservedFrame, max_crops: int | None = None) -> InferenceCycle:
        """Classify, as one batch, the crops this cycle picks on `observed` (its decoded (H, W, 3) uint8 RGB
        `frame`) and store each result in its track (one vote each). max_crops: this cycle's budget (default
        and cap: schedule.max_crops; 0: nothing; the focus share and new tracks may exceed it, see
        stream/scheduler.py; ignored in every_frame mode, which takes every visible track)."""
        start = time.perf_counter()
        _check_frame(frame)
        cycle = InferenceCycle(stamp_ns=int(observed.stamp_ns))
        with self._lock:
            if observed.generation != self.generation:
                return cycle  # observed before a reset
            cycle.choices, index = self._choose(observed, max_crops)
        cycle.timings_ms["schedule"] = (time.perf_counter() - start) * 1e3
        if not cycle.choices:
            cycle.timings_ms["total"] = cycle.timings_ms["schedule"]
            return cycle
        idx = [index[c.track_id] for c in cycle.choices]
        boxes = np.stack([observed.detections[i].box for i in idx]).astype(np.float32, copy=False)
        probs, valid, timings = _probs_of(self.classifier.predict_frame(frame, boxes), len(idx))
        cycle.timings_ms.update(timings)
        update_start = time.perf_counter()
        stamp_s = observed.stamp_ns * 1e-9
        with self._lock:
            if observed.generation == self.generation:
                for i, choice, box, p, ok in zip(idx, cycle.choices, boxes, probs, valid):
                    if self.tracks.record(choice.track_id, p if ok else None, observed.stamp_ns, box):
                        vote = self.voter.update(choice.track_id, p, stamp_s, truncated=observed.is_truncated(i))
                        state = self.tracks.get(choice.track_id)
                        state.voted = bool(vote.voted)
                        state.vote = vote if vote.num_votes > 0 else None  # cached: read on every observed frame
                        cycle.classified += 1
                self.crops_classified += cycle.classified
        now = time.perf_counter()
        cycle.timings_ms["update"] = (now - update_start) * 1e3
        cycle.timings_ms["total"] = (now - start) * 1e3
        return cycle

    # -- step: both on one thread -------------------------------------------------------------------
    def step(
        self, frame: np.ndarray, detections: list[Detection], stamp_ns: int, max_crops: int | None = None
    ) -> FrameResult:
        """observe() then classify() on one frame ((H, W, 3) uint8 RGB captured at stamp_ns, int ns); returns
        the frame's results after the classification. timings_ms: "observe", classifier stages, "schedule",
        "update", "total"."""
        start = time.perf_counter()
        _check_frame(frame)
        height, width = frame.shape[:2]
        observed = self.associate(detections, stamp_ns, width, height)
        cycle = self.classify(frame, observed, max_crops)
        result = self.result(observed)
        result.timings_ms.update(observed.timings_ms)
        result.timings_ms.update(cycle.timings_ms)
        result.timings_ms["total"] = (time.perf_counter() - start) * 1e3
        return result


__all__ = ("EVERY_TRACK", "TrackPipeline")
