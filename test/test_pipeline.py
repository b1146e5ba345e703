"""TrackPipeline in every_frame mode (step): ids (detector's kept, IoU assigned otherwise), one batched
classifier call per frame, invalid boxes skipped and counted, voting applied per track, stale tracks expired;
in both modes a track back after voting.track_timeout_s starts afresh and a clock reset is reported once."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.pipeline_types import UNKNOWN_LABEL, Detection, FrameResult
from pose_classifier_ros.stream.scheduler import ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

LEFT, BACK, FRONT = INDEX["left"], INDEX["back"], INDEX["front"]
NS = 1_000_000_000


@dataclass
class Prediction:
    probs: np.ndarray
    valid: np.ndarray
    timings_ms: dict = field(default_factory=dict)


class ScriptedClassifier:
    """Fake classifier: the label of each box is read from the frame's pixel at the box centre
    (red channel = class index); boxes under 8 px or outside the frame are invalid (as the real one)."""

    def __init__(self):
        self.calls = []

    def predict_frame(self, frame, boxes):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.calls.append(boxes.copy())
        h, w = frame.shape[:2]
        probs = np.full((len(boxes), 8), np.nan, np.float32)
        valid = np.zeros(len(boxes), bool)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if x2 - x1 < 8 or y2 - y1 < 8 or not (0 <= cx < w and 0 <= cy < h):
                continue
            probs[i] = 0.02
            probs[i, int(frame[int(cy), int(cx), 0]) % 8] = 0.86
            valid[i] = True
        return Prediction(probs, valid, {"preprocess": 1.0, "backbone": 2.0, "head": 0.5})


def every_frame(classifier, voting=None, **kw) -> TrackPipeline:
    return TrackPipeline(classifier, voting, schedule=ScheduleConfig(mode="every_frame"), **kw)


def frame_with(labels_at):
    """100x200 frame whose red channel encodes the class at given (x, y) regions."""
    frame = np.zeros((100, 200, 3), np.uint8)
    for (x1, y1, x2, y2), label in labels_at:
        frame[y1:y2, x1:x2, 0] = label
    return frame


def test_ids_kept_or_assigned_and_detector_order():
    clf = ScriptedClassifier()
    pipe = every_frame(clf, VotingConfig(window=3, min_votes=2))
    frame = frame_with([((0, 0, 50, 50), LEFT), ((100, 0, 150, 50), BACK), ((150, 50, 200, 100), FRONT)])
    dets = [
        Detection([100, 0, 150, 50], 0.8, "cow-7"),
        Detection([0, 0, 50, 50], 0.9),
        Detection([150, 50, 200, 100], 0.7, ""),
    ]
    res = pipe.step(frame, dets, 5 * NS)
    assert isinstance(res, FrameResult)
    assert (res.stamp_ns, res.width, res.height, res.skipped) == (5 * NS, 200, 100, 0)
    assert [r.track_id for r in res.results] == ["cow-7", "iou-1", "iou-2"]
    assert [r.label for r in res.results] == [BACK, LEFT, FRONT]
    assert [r.label_name for r in res.results] == ["back", "left", "front"]
    assert [r.detection_score for r in res.results] == pytest.approx([0.8, 0.9, 0.7])
    np.testing.assert_array_equal(res.results[1].box, [0, 0, 50, 50])
    assert res.results[0].probs.shape == (8,) and res.results[0].probs[BACK] == pytest.approx(0.86)
    assert len(clf.calls) == 1 and clf.calls[0].shape == (3, 4)  # one batched call per frame
    assert set(res.timings_ms) == {"observe", "schedule", "preprocess", "backbone", "head", "update", "total"}
    assert res.timings_ms["total"] >= res.timings_ms["update"] >= 0


def test_invalid_boxes_skipped_and_counted():
    clf = ScriptedClassifier()
    pipe = every_frame(clf)
    frame = frame_with([((0, 0, 50, 50), LEFT)])
    dets = [
        Detection([0, 0, 50, 50], 0.9, "a"),
        Detection([10, 10, 12, 12], 0.9, "tiny"),  # under crop.min_box_size: never reaches the classifier
        Detection([np.nan, 0, 10, 10], 0.9, "nan"),  # never reaches the classifier
        Detection([30, 30, 20, 40], 0.9, "inverted"),  # x2 < x1
        Detection([500, 500, 600, 600], 0.9, "outside"),
    ]  # outside the frame
    res = pipe.step(frame, dets, 0)
    assert [r.track_id for r in res.results] == ["a"]
    assert res.skipped == 4
    assert clf.calls[0].shape == (1, 4) and np.all(np.isfinite(clf.calls[0]))
    assert "tiny" not in pipe.voter and "a" in pipe.voter


def test_empty_frame_skips_classifier():
    clf = ScriptedClassifier()
    res = every_frame(clf).step(np.zeros((10, 20, 3), np.uint8), [], 7)
    assert res.results == [] and res.skipped == 0 and clf.calls == []
    assert (res.width, res.height, res.stamp_ns) == (20, 10, 7)
    assert "total" in res.timings_ms


def test_voting_smooths_a_flickering_track_across_frames():
    pipe = every_frame(ScriptedClassifier(), VotingConfig(window=5, min_votes=3, switch_votes=1))
    seq = [LEFT, LEFT, BACK, LEFT, BACK, BACK, BACK]
    out = []
    for k, label in enumerate(seq):
        x = 20 + 3 * k  # the animal walks: IoU association keeps its id
        box = (x, 20, x + 60, 80)
        res = pipe.step(frame_with([(box, label)]), [Detection(box, 0.9)], k * NS // 10)
        (r,) = res.results
        out.append(r)
    assert {r.track_id for r in out} == {"iou-1"}
    assert [r.label for r in out] == seq  # per-frame labels are raw
    assert [r.smoothed.label for r in out] == [LEFT, LEFT, LEFT, LEFT, LEFT, BACK, BACK]
    assert [r.smoothed.num_votes for r in out] == [1, 2, 3, 4, 5, 5, 5]
    assert [r.smoothed.is_stable for r in out] == [False, False, True, True, True, True, True]
    assert out[4].smoothed.confidence == pytest.approx(3 / 5)


def test_tracks_expire_by_frame_stamp():
    pipe = every_frame(ScriptedClassifier(), VotingConfig(track_timeout_s=1.0, skip_truncated=False))
    box = (0, 0, 50, 50)  # in the corner: truncated, voting anyway
    pipe.step(frame_with([(box, LEFT)]), [Detection(box, 1.0, "a")], 0)
    pipe.step(frame_with([(box, LEFT)]), [Detection(box, 1.0, "a")], NS // 2)
    assert pipe.voter.get("a").num_votes == 2
    pipe.step(frame_with([]), [], 3 * NS)  # nothing seen for 2.5 s
    assert len(pipe.voter) == 0 and len(pipe.tracker) == 0
    (r,) = pipe.step(frame_with([(box, BACK)]), [Detection(box, 1.0)], 3 * NS).results
    assert r.track_id == "iou-1" and r.smoothed.num_votes == 1 and r.smoothed.label == BACK


def test_bad_inputs():
    pipe = every_frame(ScriptedClassifier())
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        pipe.step(np.zeros((10, 10), np.uint8), [], 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        pipe.step(np.zeros((10, 10, 3), np.float32), [], 0)

    class Broken:
        def predict_frame(self, frame, boxes):
            return Prediction(np.zeros((1, 8), np.float32), np.ones(1, bool))

    with pytest.raises(RuntimeError, match="for 2 boxes"):
        every_frame(Broken()).step(
            np.zeros((50, 50, 3), np.uint8), [Detection([0, 0, 20, 20]), Detection([20, 20, 40, 40])], 0
        )


def test_with_real_classifier_test_tiny():
    torch = pytest.importorskip("torch")
    from pose_classifier_ros.model.classifier import ViewpointClassifier
    from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(backbone="test-tiny")
    clf = ViewpointClassifier(build_model(cfg, pretrained=False), cfg, backend="eager")
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    pipe = every_frame(clf, VotingConfig(window=3, min_votes=1))
    dets = [Detection([10, 10, 70, 90], 0.9), Detection([1, 1, 3, 3], 0.5), Detection([80, 20, 150, 110], 0.8)]
    res = pipe.step(frame, dets, NS)
    # The 2 px box is tracked (iou-2) but too small to classify: skipped, not in the results.
    assert [r.track_id for r in res.results] == ["iou-1", "iou-3"] and res.skipped == 1
    for r in res.results:
        assert r.probs.shape == (8,) and r.probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert r.label == int(np.argmax(r.probs)) and r.smoothed.label == r.label
    assert {"preprocess", "backbone", "head", "update", "total"} <= set(res.timings_ms)


@pytest.mark.parametrize("mode", ["every_frame", "scheduled"])
def test_a_track_back_after_the_timeout_starts_afresh(mode):
    """Found by fault injection (a 4-6 s camera outage): the first frame after it must not carry the old
    label and votes of a detector-id track unseen for longer than voting.track_timeout_s."""
    pipe = TrackPipeline(
        ScriptedClassifier(),
        VotingConfig(window=7, min_votes=2, track_timeout_s=1.0),
        schedule=ScheduleConfig(mode=mode, max_crops=4),
    )
    box = (60, 20, 120, 80)
    for k in range(5):  # 5 frames at 10 Hz, each classified: 5 votes for "left"
        pipe.step(frame_with([(box, LEFT)]), [Detection(box, 0.9, "elk-1")], k * NS // 10)
    assert pipe.voter.get("elk-1").num_votes == 5
    # Back 5 s later (no frame at all in between): observed from track state, before any classification.
    observed, first = pipe.observe([Detection(box, 0.9, "elk-1")], 5 * NS, 200, 100)
    if mode == "scheduled":  # published at once: a new track, UNKNOWN, no votes
        ((r,),) = [first.results]
        assert (r.label, r.smoothed, r.label_stamp_ns) == (UNKNOWN_LABEL, None, None)
    else:  # every_frame publishes only labels computed on the frame: nothing yet
        assert first.results == [] and first.skipped == 1
    pipe.classify(frame_with([(box, BACK)]), observed)
    (r,) = pipe.result(observed).results
    assert (r.label, r.smoothed.label, r.smoothed.num_votes, r.label_stamp_ns) == (BACK, BACK, 1, 5 * NS)


@pytest.mark.parametrize("mode", ["every_frame", "scheduled"])
def test_clock_reset_forgets_tracks_and_is_reported_once(mode):
    events = []
    pipe = TrackPipeline(ScriptedClassifier(), schedule=ScheduleConfig(mode=mode), on_clock_reset=events.append)
    box = (60, 20, 120, 80)
    for k in range(3):
        pipe.step(frame_with([(box, LEFT)]), [Detection(box, 0.9, "elk-1")], 100 * NS + k * NS // 10)
    generation = pipe.generation
    for k in range(3):  # stamps 60 s back (a bag loop), then on from there
        (r,) = pipe.step(frame_with([(box, BACK)]), [Detection(box, 0.9, "elk-1")], 40 * NS + k * NS // 10).results
    assert pipe.generation == generation + 1 and r.smoothed.num_votes == 3 and r.smoothed.label == BACK
    (event,) = events
    assert event.where == "track pipeline" and event.back_s == pytest.approx(60.2) and event.stamp_ns == 40 * NS
    assert event.message == ("track pipeline: stamps went back 60.200 s (bag loop or clock reset): forgot 1 track(s)")
    pipe.step(frame_with([(box, BACK)]), [Detection(box, 0.9, "elk-1")], 40 * NS)  # reordering: no reset
    assert len(events) == 1
