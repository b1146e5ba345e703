"""Focus and new tracks in the scheduled mode (issue 24, items 2 and 3): the focused track (the navigation
policy's target) is classified every cycle within its share, the others still meet max_age_s when the budget
allows, a focus on an unknown or stale id changes nothing, and a new track gets its first label in the first
cycle that sees it whatever the herd size.

Frame stamps are the only clock; the classifier is the fake ColourClassifier (the label is painted into the
frame), recording which boxes each batch asked for.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fake_classifier import ColourClassifier

from pose_classifier_ros.stream.focus import Focus
from pose_classifier_ros.stream.pipeline import TrackPipeline
from pose_classifier_ros.stream.pipeline_types import Detection
from pose_classifier_ros.stream.scheduler import FOCUS, Candidate, CropBudget, CropScheduler, ScheduleConfig
from pose_classifier_ros.stream.voting import VotingConfig

NS = 1_000_000_000
PERIOD = NS // 10  # 10 Hz
W, H = 640, 480


def grid(n: int) -> list[tuple]:
    """n non-overlapping 30x30 boxes, 8 per row."""
    return [(10 + 70 * (k % 8), 10 + 50 * (k // 8), 40 + 70 * (k % 8), 40 + 50 * (k // 8)) for k in range(n)]


def frame_of(boxes, labels) -> np.ndarray:
    frame = np.zeros((H, W, 3), np.uint8)
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        frame[int(y1) : int(y2), int(x1) : int(x2), 0] = 20 * label + 5
    return frame


def cycle(pipe, stamp_ns, boxes, labels, ids=None, max_crops=None):
    """Observe + classify one frame (detector ids t<k>); returns (InferenceCycle, FrameResult)."""
    ids = ids or [f"t{k}" for k in range(len(boxes))]
    observed, _ = pipe.observe([Detection(b, 0.9, t) for b, t in zip(boxes, ids)], stamp_ns, W, H)
    inference = pipe.classify(frame_of(boxes, labels), observed, max_crops)
    return inference, pipe.result(observed)


def pipeline(**schedule) -> TrackPipeline:
    return TrackPipeline(
        ColourClassifier(),
        VotingConfig(window=4, min_votes=2, switch_votes=1),
        schedule=ScheduleConfig(**schedule),
    )


# -- CropScheduler --------------------------------------------------------------------------------------
def test_focus_share_is_reserved_first_and_rounded_up():
    now = 10 * NS
    old = [Candidate(f"o{k}", 100.0 + k, label_stamp_ns=now - (k + 1) * NS) for k in range(8)]
    focused = [Candidate(f"f{k}", 50.0, label_stamp_ns=now - PERIOD, focused=True) for k in range(3)]
    sched = CropScheduler(ScheduleConfig(max_crops=4, focus_share=0.25, max_age_s=100.0))
    got = sched.select(old + focused, now)
    # 0.25 * 4 = 1 focus crop (the focused tracks tie on age and size: by id), then the 3 stalest others.
    assert [(c.track_id, c.reason) for c in got] == [("f0", FOCUS), ("o7", "stalest"), ("o6", "stalest")] + [
        ("o5", "stalest")
    ]
    assert ScheduleConfig(max_crops=4, focus_share=0.3).focus_crops() == 2  # rounded up
    assert ScheduleConfig(max_crops=8, focus_share=0.01).focus_crops() == 1  # at least one
    assert ScheduleConfig(focus_share=0.0).focus_crops() == 0  # off
    sched = CropScheduler(ScheduleConfig(max_crops=4, focus_share=0.5, max_age_s=100.0))
    assert [c.reason for c in sched.select(old + focused, now)] == [FOCUS, FOCUS, "stalest", "stalest"]
    # Without a focused candidate the whole budget goes to the others, as before.
    assert [c.track_id for c in sched.select(old, now + PERIOD)] == ["o7", "o6", "o5", "o4"]


def test_cycles_smaller_than_max_crops_give_the_focus_the_same_share_over_time():
    """Replay's simulated budget often allows one crop per frame: the focus gets one crop in every 4 (its
    share of max_crops 4), the first at once, not every crop (which would starve the others)."""
    now = 10 * NS
    sched = CropScheduler(ScheduleConfig(max_crops=4, focus_share=0.25, max_age_s=100.0))
    cands = [Candidate(f"o{k}", 100.0, label_stamp_ns=now - NS) for k in range(5)]
    cands.append(Candidate("target", 100.0, label_stamp_ns=now - NS, focused=True))
    reasons = [sched.select(cands, now + k * PERIOD, max_crops=1)[0].reason for k in range(12)]
    assert reasons == [FOCUS, "stalest", "stalest", "stalest"] * 3
    two = [c.reason for k in range(4) for c in sched.select(cands, now + (20 + k) * PERIOD, max_crops=2)]
    assert two.count(FOCUS) == 2  # 8 crops: 2 for the focus
    full = CropScheduler(ScheduleConfig(max_crops=1, focus_share=0.25))  # max_crops 1: a full cycle is 1 crop
    assert all(full.select(cands, now + k * PERIOD)[0].reason == FOCUS for k in range(5))


def test_new_tracks_go_past_the_budget_up_to_max_new_crops():
    now = 5 * NS
    labelled = [Candidate(f"old{k}", 900.0, label_stamp_ns=now - NS) for k in range(4)]
    new = [Candidate(f"n{k:02d}", 100.0) for k in range(32)]
    target = Candidate("target", 50.0, label_stamp_ns=now - PERIOD, focused=True)
    got = CropScheduler(ScheduleConfig(max_crops=4, max_age_s=100.0)).select(labelled + new + [target], now)
    assert [c.track_id for c in got] == ["target"] + [f"n{k:02d}" for k in range(32)]  # nothing left for old*
    assert [c.reason for c in got] == [FOCUS] + ["new"] * 32
    capped = CropScheduler(ScheduleConfig(max_crops=4, max_new_crops=8)).select(labelled + new + [target], now)
    assert [c.track_id for c in capped] == ["target"] + [f"n{k:02d}" for k in range(8)]
    # A track whose crop the classifier rejected is no longer "seen for the first time": within the budget only.
    rejected = [Candidate(f"r{k}", 100.0, attempted_ns=now - PERIOD) for k in range(6)]
    got = CropScheduler(ScheduleConfig(max_crops=4)).select(labelled + rejected, now)
    assert [c.track_id for c in got] == ["r0", "r1", "r2", "r3"]
    assert CropScheduler(ScheduleConfig(max_crops=4)).select(new, now, max_crops=0) == []  # no cycle: nothing


def test_crop_budget_carries_a_debt_after_a_long_cycle():
    budget = CropBudget(crops_per_second=10.0, cap=4)
    assert budget.take(0) == 4
    budget.spend(12)  # 4 crops of budget, 12 classified (new tracks): 8 crops of debt
    got = [budget.take(k * NS // 10) for k in range(1, 14)]  # 1 crop per frame pays it off in 8 frames
    assert got == [0] * 8 + [1, 2, 3, 4, 4]


def test_focus_goes_stale_and_pins():
    focus = Focus(timeout_s=1.0)
    assert focus.tracks_at(0) == frozenset() and focus.describe() == ""
    focus.set(["elk-1", ""], 10 * NS)
    assert focus.tracks_at(10 * NS + NS) == {"elk-1"}  # within the timeout
    assert focus.tracks_at(10 * NS - NS // 2) == {"elk-1"}  # the policy may run ahead of the classified frame
    assert focus.tracks_at(10 * NS + NS + 1) == frozenset()  # stale: the policy stopped publishing
    assert focus.tracks_at(1 * NS) == frozenset()  # a clock reset moves frames far from the focus stamp
    focus.set([""], 11 * NS)  # an empty target (the policy is searching): no focus
    assert focus.tracks_at(11 * NS) == frozenset() and focus.updates == 2
    focus.pin(["deer-2"])
    assert focus.tracks_at(10**6 * NS) == {"deer-2"} and "pinned" in focus.describe()


# -- TrackPipeline --------------------------------------------------------------------------------------
def test_focused_track_is_classified_every_cycle_within_its_share():
    pipe = pipeline(max_crops=4, focus_share=0.25, max_age_s=100.0)
    boxes, labels = grid(12), [k % 8 for k in range(12)]
    target = boxes[9]
    for k in range(30):
        stamp = NS + k * PERIOD
        pipe.focus.set(["t9"], stamp - PERIOD)  # the policy's state of the previous frame
        inference, result = cycle(pipe, stamp, boxes, labels)
        assert inference.choices[0].track_id == "t9" and inference.choices[0].reason == FOCUS, k
        assert [c.track_id for c in inference.choices].count("t9") == 1
        assert tuple(pipe.classifier.batches[-1][0]) == target
        if k > 0:  # after the first cycle (every new track at once): one focus crop + max_crops - 1 others
            assert len(inference.choices) == 4
        t9 = next(r for r in result.results if r.track_id == "t9")
        assert t9.fresh and t9.label_stamp_ns == stamp
    # The target's vote grows every cycle; the others share 3 crops per cycle between 11 tracks.
    assert pipe.voter.get("t9").num_votes == 4  # window 4, full
    assert pipe.tracks.get("t9").classifications == 30
    others = [pipe.tracks.get(f"t{k}").classifications for k in range(12) if k != 9]
    assert sum(others) == 11 + 29 * 3 and min(others) >= 29 * 3 // 11 - 1  # every other track refreshed


def test_unfocused_tracks_still_meet_max_age_when_the_budget_allows():
    """6 tracks, 4 crops per cycle at 10 Hz, one focused: the other 5 share 3 crops per cycle, and even with
    half of them always unsettled (their label flickers), no published label is older than max_age_s."""
    pipe = pipeline(max_crops=4, focus_share=0.25, max_age_s=0.6)
    boxes = grid(6)
    ages = {f"t{k}": [] for k in range(6)}
    for k in range(80):
        stamp = NS + k * PERIOD
        pipe.focus.set(["t0"], stamp)
        labels = [(k + i) % 2 * 3 if i < 3 else 4 for i in range(6)]  # t0..t2 flicker, t3..t5 steady
        _, result = cycle(pipe, stamp, boxes, labels)
        if k >= 3:
            for r in result.results:
                ages[r.track_id].append((stamp - r.label_stamp_ns) / NS)
    assert max(ages["t0"]) == 0.0  # the focused track: fresh every cycle
    assert max(max(a) for t, a in ages.items() if t != "t0") <= 0.6 + 1e-9


def run_with(focus_setter, frames=25):
    pipe = pipeline(max_crops=3, max_age_s=0.5)
    boxes, labels = grid(9), [k % 8 for k in range(9)]
    results = []
    for k in range(frames):
        stamp = NS + k * PERIOD
        focus_setter(pipe.focus, stamp)
        inference, result = cycle(pipe, stamp, boxes, labels)
        results.append(
            (
                [(c.track_id, c.reason) for c in inference.choices],
                [
                    (r.track_id, r.label, r.label_stamp_ns, r.smoothed.label if r.smoothed else None)
                    for r in result.results
                ],
            )
        )
    return results, [b.tolist() for b in pipe.classifier.batches]


def test_focus_on_an_unknown_empty_or_stale_id_changes_nothing():
    baseline = run_with(lambda focus, stamp: None)
    assert run_with(lambda focus, stamp: focus.set(["no-such-track"], stamp)) == baseline
    assert run_with(lambda focus, stamp: focus.set([""], stamp)) == baseline
    assert run_with(lambda focus, stamp: focus.set(["t4"], stamp - 5 * NS)) == baseline  # stale: 5 s > 1 s
    focused = run_with(lambda focus, stamp: focus.set(["t4"], stamp))
    assert focused != baseline and all(choices[0] == ("t4", FOCUS) for choices, _ in focused[0])
    off = TrackPipeline(ColourClassifier(), schedule=ScheduleConfig(max_crops=3, focus_share=0.0))
    off.focus.pin(["t4"])  # focus_share 0: focus off
    inference, _ = cycle(off, NS, grid(9), [0] * 9)
    assert FOCUS not in [c.reason for c in inference.choices]


@pytest.mark.parametrize("herd", [8, 32])
def test_new_tracks_are_labelled_in_the_first_cycle_after_the_focus_share(herd):
    pipe = pipeline(max_crops=4, focus_share=0.25, max_age_s=100.0)
    boxes = grid(herd + 1)
    first, rest = boxes[:1], boxes[1:]
    for k in range(3):  # the target alone, labelled and focused
        pipe.focus.set(["target"], NS + k * PERIOD)
        cycle(pipe, NS + k * PERIOD, first, [2], ids=["target"])
    stamp = NS + 3 * PERIOD
    pipe.focus.set(["target"], stamp)
    ids = ["target"] + [f"new{k}" for k in range(herd)]
    inference, result = cycle(pipe, stamp, first + rest, [2] + [k % 8 for k in range(herd)], ids=ids)
    # One cycle: the focus share, then every new track, past max_crops.
    assert [c.reason for c in inference.choices] == [FOCUS] + ["new"] * herd
    assert all(r.known and r.label_stamp_ns == stamp for r in result.results)
    inference, _ = cycle(pipe, stamp + PERIOD, first + rest, [2] + [k % 8 for k in range(herd)], ids=ids)
    assert len(inference.choices) == 4 and inference.choices[0].track_id == "target"  # back to max_crops


def test_config_checks_of_the_focus_settings():
    with pytest.raises(ValueError, match="focus_share"):
        ScheduleConfig(focus_share=1.5)
    with pytest.raises(ValueError, match="focus_timeout_s"):
        ScheduleConfig(focus_timeout_s=0.0)
    with pytest.raises(ValueError, match="max_new_crops"):
        ScheduleConfig(max_new_crops=-1)
