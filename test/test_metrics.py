"""metrics.py, report.py and plotting.py on hand-computed examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pose_classifier_ros.labels import INDEX, VIEWPOINTS
from pose_classifier_ros.metrics import classification_report, flip_rate
from pose_classifier_ros.plotting import plot_confusion_matrix, plot_track_timeline
from pose_classifier_ros.report import format_text_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

Y_TRUE = ["front", "front", "left", "right", "back", "back-left"]
Y_PRED = ["front", "front-left", "right", "right", "front", "back-left"]


def test_classification_report_hand_computed():
    r = classification_report(Y_TRUE, Y_PRED)
    assert r["num_samples"] == 6
    assert r["accuracy"] == pytest.approx(3 / 6)
    # errors: front->front-left 45, left->right 180, back->front 180, the rest 0
    assert r["mean_angular_error_deg"] == pytest.approx((45 + 180 + 180) / 6)
    # coarse: only back->front crosses a bin
    assert r["coarse_accuracy"] == pytest.approx(5 / 6)
    assert r["coarse_confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [1, 0, 1]]

    expected = np.zeros((8, 8), dtype=int)
    for t, p in zip(Y_TRUE, Y_PRED):
        expected[INDEX[t], INDEX[p]] += 1
    assert r["confusion_matrix"] == expected.tolist()
    assert r["confusion_matrix"][INDEX["left"]][INDEX["right"]] == 1  # rows = true, cols = predicted

    pc = r["per_class"]
    assert list(pc) == list(VIEWPOINTS)
    assert pc["front"] == {"accuracy": 0.5, "precision": 0.5, "support": 2}
    assert pc["left"]["accuracy"] == 0.0 and pc["left"]["support"] == 1
    assert pc["right"] == {"accuracy": 1.0, "precision": 0.5, "support": 1}
    assert pc["back"]["precision"] is None  # never predicted
    assert pc["front-right"]["accuracy"] is None and pc["front-right"]["support"] == 0
    json.dumps(r)  # plain JSON types only


def test_classification_report_accepts_indices_and_rejects_unknown():
    r = classification_report([INDEX[n] for n in Y_TRUE], np.array([INDEX[n] for n in Y_PRED]))
    assert r["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"y_pred\[1\].*sideways"):
        classification_report(["front", "left"], ["front", "sideways"])
    with pytest.raises(ValueError, match="2 labels but y_pred has 1"):
        classification_report(["front", "left"], ["front"])


def test_classification_report_empty():
    r = classification_report([], [])
    assert r["num_samples"] == 0 and r["accuracy"] is None and r["mean_angular_error_deg"] is None


def test_flip_rate_hand_computed():
    # Track "a" is given out of order: sorted by stamp it reads front, front, left, front (2 flips in 3 s).
    obs = [
        ("a", 2.0, "left"),
        ("a", 0.0, "front"),
        ("a", 3.0, "front"),
        ("a", 1.0, "front"),
        ("b", 10.0, "back"),
        ("b", 10.5, 7),  # no flip (name and index of the same class)
        ("c", 5.0, "left"),  # one observation: no rate
        ("d", 0.0, "left"),
        ("d", 1.0, None),
        ("d", 2.0, "right"),  # None skipped: 1 flip in 2 s
    ]
    ids, stamps, labels = zip(*obs)
    r = flip_rate(ids, stamps, labels)
    assert r["per_track"] == pytest.approx({"a": 2 / 3, "b": 0.0, "d": 0.5})
    assert "c" not in r["per_track"] and r["flips_per_track"]["c"] == 0
    assert r["mean_flips_per_s"] == pytest.approx((2 / 3 + 0.0 + 0.5) / 3)
    assert r["total_flips"] == 3
    assert r["total_duration_s"] == pytest.approx(3.0 + 0.5 + 2.0)
    assert r["overall_flips_per_s"] == pytest.approx(3 / 5.5)


def test_flip_rate_empty_and_mismatched():
    assert flip_rate([], [], [])["mean_flips_per_s"] == 0.0
    with pytest.raises(ValueError, match="same length"):
        flip_rate(["a"], [0.0, 1.0], ["front"])


def test_write_report_files(tmp_path):
    report = classification_report(Y_TRUE, Y_PRED)
    report["flip_rate"] = flip_rate(["a", "a"], [0.0, 1.0], ["left", "right"])
    report["speed"] = np.float32(12.5)  # numpy scalars must serialise
    paths = write_report(tmp_path / "out", report, "Unit test")
    data = json.loads(paths.json.read_text())
    assert data["accuracy"] == pytest.approx(0.5) and data["title"] == "Unit test"
    assert data["speed"] == pytest.approx(12.5)
    assert data["flip_rate"]["per_track"] == {"a": 1.0}
    text = paths.text.read_text()
    assert "accuracy:              50.00%" in text
    assert "coarse accuracy:       83.33%" in text
    assert "mean angular error:    67.5 deg" in text
    assert text.count("\n") > 20 and "back-left" in text
    assert paths.confusion_matrix.read_bytes()[:8] == PNG_MAGIC


def test_text_report_nested_classification():
    text = format_text_report({"classification": classification_report(Y_TRUE, Y_PRED), "frames": 12}, "Replay")
    assert text.startswith("Replay\n======")
    assert "accuracy:              50.00%" in text and "frames: 12" in text


def test_plots(tmp_path):
    png = plot_confusion_matrix(np.eye(8, dtype=int) * 3, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    ids = ["t1"] * 5 + ["t2"] * 3
    stamps = [0.0, 0.1, 0.2, 0.3, 0.4, 0.0, 0.2, 0.4]
    raw = ["left", "right", "left", "left", "left", 7, 7, None]
    smooth = [None, None, "left", "left", "left", None, "back", "back"]
    png = plot_track_timeline(ids, stamps, raw, smooth, tmp_path / "timeline.png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
