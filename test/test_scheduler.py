"""Scheduled classification: crop priority, budget, max-age guarantee, box-change trigger, determinism,
votes from fresh labels only, UNKNOWN before the first classification, honest messages.

Frame stamps are the only clock (a fake clock: stamps chosen by the test); the classifier is a fake that
reads each box's label from the frame and records which boxes it was asked for.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fake_classifier import RedChannelClassifier

from pose_classifier_ros.labels import INDEX
from pose_classifier_ros.stream.conversions import UNKNOWN_LABEL, frame_result_to_msg, message_types, stamp_to_ns
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.pipeline_types import Detection
from pose_classifier_ros.stream.scheduler import Candidate, CropBudget, CropScheduler, ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

NS = 1_000_000_000
PERIOD = NS // 10  # 10 Hz
LEFT, BACK, FRONT, RIGHT = INDEX["left"], INDEX["back"], INDEX["front"], INDEX["right"]
W, H = 400, 200
MODEL_MS = {"backbone": 1.0}  # the timings every fake prediction reports


def frame_of(labels: dict[tuple, int]) -> np.ndarray:
    frame = np.zeros((H, W, 3), np.uint8)
    for (x1, y1, x2, y2), label in labels.items():
        frame[int(y1) : int(y2), int(x1) : int(x2), 0] = label
    return frame


def boxes_row(n: int, size=(40, 40)) -> list[tuple]:
    return [(10 + 48 * k, 20, 10 + 48 * k + size[0], 20 + size[1]) for k in range(n)]


# -- CropScheduler ------------------------------------------------------------------------------------
def test_priority_order_and_ties_to_the_larger_box():
    sched = CropScheduler(ScheduleConfig(max_crops=10, box_change=0.2, max_age_s=5.0))
    now = 10 * NS
    cands = [
        Candidate("stale-old", 100.0, label_stamp_ns=now - 3 * NS),
        Candidate("stale-new", 900.0, label_stamp_ns=now - 1 * NS),
        Candidate("moved", 100.0, label_stamp_ns=now - NS, box_change=0.5),
        Candidate("moved-a-bit", 100.0, label_stamp_ns=now - NS, box_change=0.1),
        Candidate("unsettled", 50.0, label_stamp_ns=now - NS, unsettled=True),
        Candidate("overdue", 10.0, label_stamp_ns=now - 6 * NS),
        Candidate("new-small", 100.0),
        Candidate("new-big", 400.0),
        Candidate("new-failed-once", 900.0, attempted_ns=now - NS),
    ]
    got = sched.select(cands, now)
    assert [c.track_id for c in got] == [
        "new-big",
        "new-small",
        "new-failed-once",
        "overdue",
        "unsettled",
        "moved",
        "stale-old",
        "stale-new",
        "moved-a-bit",
    ]
    assert [c.reason for c in got] == [
        "new",
        "new",
        "new",
        "overdue",
        "unsettled",
        "box_changed",
        "stalest",
        "stalest",
        "stalest",
    ]
    # Same label age: the larger box first; same age and size: the track id decides (deterministic).
    tie = [Candidate("b", 100.0, now - NS), Candidate("a", 100.0, now - NS), Candidate("c", 300.0, now - NS)]
    assert [c.track_id for c in sched.select(tie, now)] == ["c", "a", "b"]


def test_budget_limits_each_cycle():
    sched = CropScheduler(ScheduleConfig(max_crops=3, max_new_crops=0))  # 0: new tracks only within the budget
    cands = [Candidate(f"t{k}", float(k)) for k in range(8)]
    assert [c.track_id for c in sched.select(cands, NS)] == ["t7", "t6", "t5"]
    assert [c.track_id for c in sched.select(cands, 2 * NS, max_crops=1)] == ["t7"]
    assert sched.select(cands, 3 * NS, max_crops=0) == []


def test_crop_budget_carries_unused_budget_forward_up_to_a_cap():
    budget = CropBudget(crops_per_second=12.0, cap=4)
    got = []
    for k in range(10):  # 30 Hz: 0.4 crops per frame
        n = budget.take(k * NS // 30)
        got.append(n)
        budget.spend(n)
    # full at the start (4), then 0.4, 0.8, 1.2 -> 1 (0.2 left), 0.6, 1.0 -> 1, 0.4, 0.8, 1.2 -> 1, 0.6
    assert got == [4, 0, 0, 1, 0, 1, 0, 0, 1, 0]
    assert budget.take(100 * NS) == 4  # a long gap buys at most `cap`
    budget.spend(1)
    assert budget.take(100 * NS) == 3  # unused crops carry forward


# -- TrackPipeline, scheduled ----------------------------------------------------------------------------------
def run_stream(pipe, frames, crops_per_frame=None, classify=True):
    """frames: list of (stamp_ns, {box: label}) with detector ids "t<k>" in box order; returns the results."""
    out = []
    for stamp, labels in frames:
        dets = [Detection(box, 0.9, f"t{k}") for k, box in enumerate(labels)]
        observed, _ = pipe.observe(dets, stamp, W, H)
        if classify:
            pipe.classify(frame_of(labels), observed, crops_per_frame)
        out.append(pipe.result(observed))
    return out


def test_unknown_before_first_classification_and_honest_message():
    clf = RedChannelClassifier(MODEL_MS)
    pipe = TrackPipeline(
        clf, VotingConfig(window=5, min_votes=2), schedule=ScheduleConfig(max_crops=1, max_new_crops=0)
    )
    labels = dict(zip(boxes_row(2), (LEFT, BACK)))
    dets = [Detection(box, 0.9, f"t{k}") for k, box in enumerate(labels)]
    observed, result = pipe.observe(dets, 5 * NS, W, H)
    assert clf.batches == []  # the publishing path never calls the model
    assert [(r.track_id, r.label, r.smoothed, r.label_stamp_ns, r.fresh) for r in result.results] == [
        ("t0", UNKNOWN_LABEL, None, None, False),
        ("t1", UNKNOWN_LABEL, None, None, False),
    ]
    types = message_types()
    msg = frame_result_to_msg(result, types.Header(stamp=types.Time(sec=5, nanosec=0), frame_id="cam"), types)
    v = msg.viewpoints[0]
    assert (v.label, v.label_name, v.smoothed_label, v.smoothed_label_name) == (255, "unknown", 255, "unknown")
    assert (v.num_votes, v.is_stable, v.fresh, v.voted, stamp_to_ns(v.label_stamp)) == (0, False, False, False, 0)
    assert list(v.scores) == [0.0] * 8 and np.isnan(v.heading_deg)

    pipe.classify(frame_of(labels), observed)  # one crop: the larger box ties -> track id "t0"
    result = pipe.result(observed)
    assert [r.label for r in result.results] == [LEFT, UNKNOWN_LABEL]
    msg = frame_result_to_msg(result, types.Header(stamp=types.Time(sec=5, nanosec=0), frame_id="cam"), types)
    v0, v1 = msg.viewpoints
    assert (v0.label_name, v0.num_votes, v0.fresh, v0.voted, stamp_to_ns(v0.label_stamp)) == (
        "left",
        1,
        True,
        True,
        5 * NS,
    )
    assert v1.label == 255 and v1.num_votes == 0

    # Next frame, nothing classified: t0's label is cached (not fresh, stamp of frame 5 s, no new vote).
    observed, result = pipe.observe(dets, 5 * NS + PERIOD, W, H)
    msg = frame_result_to_msg(result, types.Header(stamp=types.Time(sec=5, nanosec=PERIOD), frame_id="cam"), types)
    v0 = msg.viewpoints[0]
    assert (v0.label_name, v0.num_votes, v0.fresh, v0.voted, stamp_to_ns(v0.label_stamp)) == (
        "left",
        1,
        False,
        False,
        5 * NS,
    )


def test_votes_count_only_fresh_classifications():
    clf = RedChannelClassifier(MODEL_MS)
    pipe = TrackPipeline(clf, VotingConfig(window=7, min_votes=3), schedule=ScheduleConfig(max_crops=1))
    labels = {boxes_row(1)[0]: LEFT}
    frames = [(NS + k * PERIOD, labels) for k in range(10)]
    # Classify only on frames 0 and 5 (budget 1 then 0): 10 published frames, 2 votes.
    results = []
    for k, (stamp, lab) in enumerate(frames):
        observed, _ = pipe.observe([Detection(b, 0.9, "t0") for b in lab], stamp, W, H)
        pipe.classify(frame_of(lab), observed, 1 if k in (0, 5) else 0)
        results.append(pipe.result(observed).results[0])
    assert [r.smoothed.num_votes for r in results] == [1] * 5 + [2] * 5
    assert [r.fresh for r in results] == [k in (0, 5) for k in range(10)]
    assert [r.label_stamp_ns for r in results] == [NS] * 5 + [NS + 5 * PERIOD] * 5
    assert len(clf.batches) == 2


def test_new_track_first_then_unsettled_then_round_robin():
    clf = RedChannelClassifier(MODEL_MS)
    pipe = TrackPipeline(  # max_new_crops 0: new tracks within the budget (the budget's order is what is tested)
        clf,
        VotingConfig(window=5, min_votes=2, switch_votes=1),
        schedule=ScheduleConfig(max_crops=2, max_age_s=100.0, max_new_crops=0),
    )
    boxes = boxes_row(3)
    labels = dict(zip(boxes, (LEFT, BACK, FRONT)))
    run_stream(pipe, [(NS + k * PERIOD, labels) for k in range(4)])
    picked = [[int(b[0]) for b in batch] for batch in clf.batches]
    x = [int(b[0]) for b in boxes]
    # cycle 1: two new tracks (same size: by id); cycle 2: the last new track, then t0 (unsettled, oldest label);
    # cycle 3: t1 and t2 are still unsettled (1 vote), t0 is stable; cycle 4: all stable -> stalest first.
    assert picked == [[x[0], x[1]], [x[2], x[0]], [x[1], x[2]], [x[0], x[1]]]
    # A new track appearing later is classified in the very next cycle, before everyone else.
    labels2 = dict(labels, **{}) | {(300, 20, 360, 80): RIGHT}
    run_stream(pipe, [(NS + 4 * PERIOD, labels2)])
    assert int(clf.batches[-1][0][0]) == 300


def test_box_change_triggers_reclassification():
    clf = RedChannelClassifier(MODEL_MS)
    pipe = TrackPipeline(
        clf, VotingConfig(window=3, min_votes=1), schedule=ScheduleConfig(max_crops=1, box_change=0.2, max_age_s=100.0)
    )
    a, b = (10, 20, 50, 60), (200, 20, 240, 60)
    run_stream(pipe, [(NS, {a: LEFT, b: BACK}), (NS + PERIOD, {a: LEFT, b: BACK})])  # both classified once
    assert len(clf.batches) == 2
    # t1 (b) grows by 50 % in area; t0's label is older, but the box change wins over "stalest".
    grown = (200, 20, 240, 80)
    run_stream(pipe, [(NS + 2 * PERIOD, {a: LEFT, grown: BACK})])
    assert tuple(clf.batches[-1][0]) == grown
    # A 10 % change does not trigger: the stalest (t0) goes next.
    run_stream(pipe, [(NS + 3 * PERIOD, {a: LEFT, (200, 20, 240, 84): BACK})])
    assert tuple(clf.batches[-1][0]) == a


def test_max_age_guarantee_with_flickering_tracks():
    """8 tracks, 2 crops per cycle at 10 Hz, max_age 0.6 s: even with half the tracks always unsettled
    (their per-frame label alternates), no published label gets older than max_age_s."""
    flicker = RedChannelClassifier(MODEL_MS)
    pipe = TrackPipeline(
        flicker,
        VotingConfig(window=4, min_votes=2, switch_votes=1),
        schedule=ScheduleConfig(max_crops=2, max_age_s=0.6),
    )
    boxes = boxes_row(8)
    ages, frames = [], []
    for k in range(80):
        labels = {b: (LEFT if (k + i) % 2 else RIGHT) if i < 4 else BACK for i, b in enumerate(boxes)}
        frames.append((NS + k * PERIOD, labels))
    results = run_stream(pipe, frames)
    for res in results[10:]:  # after every track had its first classification
        ages += [(res.stamp_ns - r.label_stamp_ns) / NS for r in res.results]
    assert len(ages) == 70 * 8 and max(ages) <= 0.6 + 1e-9
    assert all(r.known for res in results for r in res.results)  # the 8 new tracks all in the first cycle


def test_deterministic_for_the_same_inputs():
    def run():
        clf = RedChannelClassifier(MODEL_MS)
        pipe = TrackPipeline(
            clf, VotingConfig(window=5, min_votes=2), schedule=ScheduleConfig(max_crops=3, max_age_s=0.5)
        )
        rng = np.random.default_rng(3)
        frames = []
        for k in range(40):
            boxes = [
                (10 + 48 * i + int(rng.integers(0, 4)), 20, 50 + 48 * i, 60 + int(rng.integers(0, 30)))
                for i in range(6)
            ]
            frames.append((NS + k * PERIOD, {b: int(rng.integers(0, 8)) for b in boxes}))
        results = run_stream(pipe, frames, crops_per_frame=None)
        return (
            [b.tolist() for b in clf.batches],
            [
                [(r.track_id, r.label, r.label_stamp_ns, r.smoothed.label if r.smoothed else None) for r in res.results]
                for res in results
            ],
        )

    assert run() == run()


def test_expiry_and_clock_reset_forget_tracks():
    pipe = TrackPipeline(RedChannelClassifier(MODEL_MS), VotingConfig(track_timeout_s=1.0), schedule=ScheduleConfig())
    a = (10, 20, 50, 60)
    run_stream(pipe, [(10 * NS, {a: LEFT})])
    assert len(pipe) == 1 and pipe.voter.get("t0") is not None
    run_stream(
        pipe,
        [
            (12 * NS, {}),
        ],
        classify=False,
    )  # unseen for 2 s > timeout
    assert len(pipe) == 0 and pipe.voter.get("t0") is None
    run_stream(pipe, [(13 * NS, {a: LEFT})])
    stale_observed, _ = pipe.observe([Detection(a, 0.9, "t0")], 13 * NS + PERIOD, W, H)
    res = run_stream(pipe, [(1 * NS, {a: LEFT})], classify=False)[0]  # bag loop: time went back 12 s
    assert res.results[0].label == UNKNOWN_LABEL and pipe.generation == 1
    cycle = pipe.classify(frame_of({a: LEFT}), stale_observed)  # observed before the reset: ignored
    assert cycle.choices == [] and pipe.result(stale_observed).results[0].label == UNKNOWN_LABEL


def test_unusable_boxes_are_skipped_like_every_frame():
    pipe = TrackPipeline(RedChannelClassifier(MODEL_MS), schedule=ScheduleConfig())
    dets = [
        Detection((10, 20, 50, 60), 0.9, "ok"),
        Detection((500, 20, 540, 60), 0.9, "outside"),
        Detection((10, 20, 13, 23), 0.9, "tiny"),
        Detection((np.nan, 0, 5, 5), 0.9, "nan"),
    ]
    observed, result = pipe.observe(dets, NS, W, H)
    assert [r.track_id for r in result.results] == ["ok"] and result.skipped == 3
    cycle = pipe.classify(frame_of({(10, 20, 50, 60): LEFT}), observed)
    assert [c.track_id for c in cycle.choices] == ["ok"] and cycle.classified == 1


def test_config_checks():
    with pytest.raises(ValueError, match="schedule.mode"):
        ScheduleConfig(mode="sometimes")
    with pytest.raises(ValueError, match="max_crops"):
        ScheduleConfig(max_crops=0)
    with pytest.raises(ValueError, match="max_age_s"):
        ScheduleConfig(max_age_s=0.0)
