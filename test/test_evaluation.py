"""evaluation/: intervals, groups, calibration, selective prediction, error structure (simulated, seeded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pose_classifier_ros.evaluation import calibration as C
from pose_classifier_ros.evaluation import selective as S
from pose_classifier_ros.evaluation.analysis import AnalysisOptions, analyse, parse_targets, write_figures
from pose_classifier_ros.evaluation.groups import GroupError, group_indices, parse_path_fields
from pose_classifier_ros.evaluation.uncertainty import accuracy_interval, decide, wilson_interval
from pose_classifier_ros.labels import INDEX, NUM_CLASSES, VIEWPOINTS
from pose_classifier_ros.metrics import error_structure
from pose_classifier_ros.report import format_text_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def simulate(n: int, accuracy: float, seed: int, sharpness: float = 1.0):
    """labels (n,), calibrated probs (n, 8): top probability c ~ U(0.3, 1), right with probability c.

    sharpness > 1 divides log-probs by 1/sharpness (an over-confident model with the same labels).
    c is centred on `accuracy`, so the expected accuracy is that value.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    half = min(accuracy - 1 / NUM_CLASSES, 1 - accuracy)
    conf = rng.uniform(accuracy - half, accuracy + half, n)
    right = rng.random(n) < conf
    wrong = (labels + rng.integers(1, NUM_CLASSES, n)) % NUM_CLASSES
    pred = np.where(right, labels, wrong)
    probs = np.empty((n, NUM_CLASSES))
    probs[:] = ((1 - conf) / (NUM_CLASSES - 1))[:, None]
    probs[np.arange(n), pred] = conf
    if sharpness != 1.0:
        probs = C.softmax(C.logits_from_probs(probs), 1.0 / sharpness)
    return labels, probs


# ---------------------------------------------------------------------------------------------------------
# intervals


def test_intervals_shrink_with_data_and_cover_the_true_rate():
    rng = np.random.default_rng(1)
    widths = []
    for n in (30, 300, 3000):
        ci = accuracy_interval(rng.random(n) < 0.8, seed=0, key="x")
        assert ci.low <= ci.estimate <= ci.high
        widths.append(ci.width)
    assert widths[0] > widths[1] > widths[2] and widths[2] < 0.04

    # Repeated simulated evaluations of a model whose true accuracy is 0.8: the 95% interval holds it
    # in about 95% of them (Binomial(200, 0.95) puts >= 180 of 200 far beyond doubt).
    covered = 0
    for k in range(200):
        ci = accuracy_interval(rng.random(60) < 0.8, seed=k, key="sim")
        covered += ci.low <= 0.8 <= ci.high
    assert covered >= 180, covered

    a = accuracy_interval(np.r_[np.ones(40), np.zeros(10)].astype(bool), seed=3, key="k")
    assert a == accuracy_interval(np.r_[np.ones(40), np.zeros(10)].astype(bool), seed=3, key="k")  # seeded


def test_decisions_need_the_whole_interval():
    three_right = accuracy_interval([True, True, True], key="tiny")
    assert three_right.estimate == 1.0 and three_right.low < 0.5  # Wilson keeps the bootstrap honest
    assert three_right.method == "bootstrap widened to Wilson"
    assert decide(three_right, 0.9) == "not enough data"
    assert decide(accuracy_interval(np.arange(1000) % 50 != 0, key="big"), 0.9) == "pass"  # 98% of 1000
    assert decide(accuracy_interval(np.arange(1000) % 2 == 0, key="half"), 0.85) == "fail"  # 50%
    assert decide(accuracy_interval([], key="none"), 0.85) == "not enough data"
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_parse_targets():
    assert parse_targets("card") == {"overall": 0.85, "front": 0.9, "back": 0.9}
    assert parse_targets("overall=0.9,left=80%") == {"overall": 0.9, "left": pytest.approx(0.8)}
    with pytest.raises(ValueError, match="sideways"):
        parse_targets("sideways=0.9")


# ---------------------------------------------------------------------------------------------------------
# calibration


def test_ece_of_calibrated_predictions_is_near_zero():
    labels, probs = simulate(20000, 0.7, seed=0)
    assert C.expected_calibration_error(probs, labels) < 0.02
    bins = C.reliability_bins(probs, labels)
    assert sum(b["count"] for b in bins) == 20000 and len(bins) == C.DEFAULT_BINS


def test_temperature_scaling_lowers_ece_of_overconfident_predictions_without_changing_labels():
    labels, calibrated = simulate(4000, 0.7, seed=1)
    labels, over = simulate(4000, 0.7, seed=1, sharpness=3.0)
    assert np.array_equal(over.argmax(1), calibrated.argmax(1))
    before = C.expected_calibration_error(over, labels)
    t = C.fit_temperature(C.logits_from_probs(over), labels)
    assert t == pytest.approx(3.0, rel=0.15)  # undoes the sharpening
    scaled = C.apply_temperature(over, t)
    assert np.array_equal(scaled.argmax(1), over.argmax(1))
    after = C.expected_calibration_error(scaled, labels)
    assert before > 0.15 and after < 0.03 and after < before / 5
    summary = C.calibration_summary(over, labels, t)
    assert summary["ece_after"] == pytest.approx(after) and summary["nll_after"] < summary["nll_before"]
    np.testing.assert_allclose(C.apply_temperature(scaled, 1 / t), over, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# selective prediction


def test_threshold_for_target_accuracy_is_the_curve_point():
    labels, probs = simulate(500, 0.75, seed=2)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    curve = S.accuracy_coverage(conf, correct)
    assert np.all(np.diff(curve["coverage"]) > 0) and curve["coverage"][-1] == 1.0
    chosen = S.threshold_for_accuracy(conf, correct, 0.9)
    assert chosen["reached"]
    k = int(np.flatnonzero(curve["threshold"] == chosen["threshold"])[0])
    assert curve["accuracy"][k] == pytest.approx(chosen["accuracy"]) and chosen["accuracy"] >= 0.9
    assert curve["coverage"][k] == pytest.approx(chosen["coverage"])
    assert np.all(curve["accuracy"][k + 1 :] < 0.9)  # no lower threshold keeps more at the target
    # The node's rounded value keeps exactly the same crops.
    kept = conf >= chosen["min_confidence"]
    assert kept.sum() == chosen["kept"] and correct[kept].mean() == pytest.approx(chosen["accuracy"])
    assert len(f"{chosen['min_confidence']:g}") <= 8

    impossible = S.threshold_for_accuracy(conf, np.zeros_like(correct), 0.5)
    assert not impossible["reached"] and impossible["accuracy"] == 0.0
    table = S.coverage_table(conf, correct)
    assert table[0]["coverage"] == 1.0 and table[0]["accuracy"] == pytest.approx(correct.mean())


def test_node_threshold_rounding():
    assert S.node_threshold(0.62345, 0.61) == 0.62
    assert S.node_threshold(0.62345, 0.6225) == 0.623
    assert S.node_threshold(0.62345, 0.6231) == 0.6234
    assert S.node_threshold(0.62345, None) == 0.62


# ---------------------------------------------------------------------------------------------------------
# groups, error structure, report


def test_error_structure_hand_computed():
    t = ["front", "left", "front-left", "back", "back-left", "front", "right"]
    p = ["front-left", "right", "front-right", "front", "left", "front", "right"]
    e = error_structure(t, p)
    assert e["errors"] == 5 and e["num_samples"] == 7
    assert e["adjacent"]["count"] == 2  # front -> front-left, back-left (135) -> left (90)
    assert e["flip_symmetric"]["count"] == 2  # left -> right, front-left -> front-right (90 deg)
    assert e["opposite"]["count"] == 2  # left -> right, back -> front
    assert e["expected"]["count"] == 4 and e["unexpected"]["count"] == 1  # back -> front
    assert [e["by_angle_deg"][a]["count"] for a in ("45", "90", "135", "180")] == [2, 1, 0, 2]
    assert e["unexpected"]["share"] == pytest.approx(1 / 5)
    assert error_structure(["left"], ["left"])["expected"]["share"] is None


def test_groups_partition_the_whole_set():
    labels, probs = simulate(300, 0.8, seed=3)
    rng = np.random.default_rng(0)
    species = rng.choice(["zebra", "giraffe"], 300)
    site = rng.choice(["Mpala", "OPC", ""], 300)  # "" = missing
    meta = [{"species": a, "site": b} for a, b in zip(species, site)]
    opt = AnalysisOptions(factors=["species", "site", "species+site"], targets=parse_targets("card"))
    out = analyse(labels, probs, metadata=meta, options=opt)
    pred = probs.argmax(1)
    for factor, rows in out["groups"].items():
        assert sum(r["support"] for r in rows.values()) == 300, factor
        correct = sum(round(r["accuracy"] * r["support"]) for r in rows.values())
        assert correct == int((pred == labels).sum())
    assert list(out["groups"]["site"]) == ["Mpala", "OPC", "(missing)"]
    zebra = out["groups"]["species"]["zebra"]
    mask = species == "zebra"
    assert zebra["accuracy"] == pytest.approx((pred[mask] == labels[mask]).mean())
    assert zebra["front_accuracy"] == pytest.approx((pred[mask & (labels == 0)] == 0).mean())
    # the same outcome set gets the same interval in the groups and the targets tables
    row = next(r for r in out["targets"]["rows"] if r["scope"] == "species=zebra" and r["metric"] == "overall")
    assert (row["low"], row["high"]) == (zebra["accuracy_ci"]["low"], zebra["accuracy_ci"]["high"])
    assert len(out["targets"]["rows"]) == 3 * (1 + 2 + 3 + 6)
    with pytest.raises(GroupError, match="no metadata column 'season'"):
        group_indices(meta, ["season"])
    assert parse_path_fields("site=1,session=-2") == {"site": 1, "session": -2}
    with pytest.raises(GroupError):
        parse_path_fields("site")


def test_report_renders_a_group_of_a_single_class(tmp_path):
    labels = np.array([INDEX["left"]] * 5 + [INDEX["front"], INDEX["back"], INDEX["back"]])
    probs = np.full((8, NUM_CLASSES), 0.02)
    probs[np.arange(8), [INDEX["left"]] * 4 + [INDEX["right"], INDEX["front"], INDEX["back"], INDEX["front"]]] = 0.86
    meta = [{"species": "giraffe"}] * 5 + [{"species": "zebra"}] * 3
    from pose_classifier_ros.metrics import classification_report

    report = classification_report(labels, probs.argmax(1))
    report.update(
        analyse(
            labels,
            probs,
            metadata=meta,
            options=AnalysisOptions(factors=["species"], targets=parse_targets("card"), target_accuracy=0.9),
        )
    )
    paths = write_report(tmp_path, report, "single class group")
    figs = write_figures(tmp_path, labels, probs, report)
    text = paths.text.read_text()
    giraffe = report["groups"]["species"]["giraffe"]
    assert giraffe["support"] == 5 and giraffe["front_accuracy"] is None and giraffe["accuracy"] == 0.8
    assert "By species" in text and "Group species = giraffe" in text and "n/a" in text
    assert "species=giraffe             front" in text and "NOT ENOUGH DATA" in text
    assert "Error structure (2 errors of 8" in text and "Calibration" in text
    data = json.loads(paths.json.read_text())
    assert data["groups"]["species"]["zebra"]["support"] == 3 and data["accuracy"] == pytest.approx(6 / 8)
    for key in ("reliability", "accuracy_coverage"):
        assert figs[key].read_bytes()[:8] == PNG_MAGIC
    assert figs["accuracy_coverage_csv"].read_text().startswith("min_confidence,coverage,accuracy,kept")
    assert format_text_report(report).count("Per-group reports") == 1
    assert set(VIEWPOINTS) >= set(report["intervals"]["per_class"])
