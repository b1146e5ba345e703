"""`pose-classifier train --fit-temperature` + `evaluate --group-by/--targets/--target-accuracy` end to end
(test-tiny backbone, generated CSV data with species/site columns), and the temperature in the model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from pose_classifier_ros.cli import main as cli_main
from pose_classifier_ros.labels import NUM_CLASSES, VIEWPOINTS
from pose_classifier_ros.synthetic.crops import write_crops
from pose_classifier_ros.synthetic.patterns import render_pattern
from pose_classifier_ros.training.data import load_samples, read_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PER_CLASS = 10


@pytest.fixture(scope="module")
def csv_set(tmp_path_factory):
    """root/set.csv (image_path,pose,species,site) over a synthetic folder set; site empty for one image."""
    root = tmp_path_factory.mktemp("groups")
    write_crops(root / "img", PER_CLASS, seed=0, render=render_pattern, progress=False)
    rows = []
    for name in VIEWPOINTS:
        for i in range(PER_CLASS):
            site = "" if (name, i) == ("back", 9) else ("Mpala" if i % 2 else "OPC")
            rows.append([f"img/{name}/{name}_{i:04d}.png", name, "zebra" if i % 3 else "giraffe", site])
    with (root / "set.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "pose", "species", "site"])
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def trained(csv_set, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    rc = cli_main(
        [
            "train",
            "--data",
            str(csv_set / "set.csv"),
            "--out",
            str(run),
            "--size",
            "test-tiny",
            "--epochs",
            "4",
            "--workers",
            "0",
            "--no-progress",
            "--aug-views",
            "1",
            "--fit-temperature",
            "--target-accuracy",
            "0.8",
        ]
    )
    assert rc == 0
    return run


def test_csv_extra_columns_are_sample_metadata(csv_set):
    samples = load_samples(csv_set / "set.csv")
    assert samples[0].metadata == {"species": "giraffe", "site": "OPC"}
    path, label = samples[0][:2]
    assert label == 0 and path.name == "front_0000.png"


def test_train_fits_and_stores_temperature_and_reports_groups(trained):
    from pose_classifier_ros.model.checkpoint import load_checkpoint

    metrics = json.loads((trained / "metrics.json").read_text())
    cal = metrics["calibration"]
    t = load_checkpoint(trained / "best_pose_model.pth").config.temperature
    assert t == pytest.approx(cal["temperature"]) and t != 1.0
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9  # the fit minimises validation NLL
    # --group-by auto picked the CSV's species and site columns (and their combination)
    assert set(metrics["groups"]) == {"species", "site", "species+site"}
    assert sum(r["support"] for r in metrics["groups"]["species"].values()) == metrics["num_samples"]
    assert (trained / "reliability.png").read_bytes()[:8] == PNG_MAGIC
    assert "By species" in (trained / "report.txt").read_text()


def test_evaluate_groups_targets_threshold(trained, csv_set, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(trained / "best_pose_model.pth"),
            "--data",
            str(csv_set / "set.csv"),
            "--group-by",
            "species,site",
            "--targets",
            "card",
            "--target-accuracy",
            "0.6",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    echoed = json.loads(stdout[stdout.index("{") :])
    m = json.loads((out / "metrics.json").read_text())
    n = PER_CLASS * NUM_CLASSES
    assert m["num_samples"] == n and echoed["accuracy"] == pytest.approx(m["accuracy"])  # old keys kept
    assert "target all overall > 85%:" in stdout
    for factor in ("species", "site", "species+site"):
        assert sum(r["support"] for r in m["groups"][factor].values()) == n
    assert m["groups"]["site"]["(missing)"]["support"] == 1
    assert {r["decision"] for r in m["targets"]["rows"]} <= {"pass", "fail", "not enough data"}
    cal = m["calibration"]
    assert cal["temperature"] == pytest.approx(echoed["temperature"]) != 1.0
    assert cal["ece_before"] is not None and cal["ece_after"] == pytest.approx(echoed["ece"])
    chosen = m["selective"]["chosen"]
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    conf = np.array([float(r["confidence"]) for r in rows])
    correct = np.array([r["pose"] == r["predicted"] for r in rows])
    if chosen["reached"]:
        assert f"voting.min_confidence: {chosen['min_confidence']:g}" in stdout
        kept = conf >= chosen["min_confidence"]
        assert kept.sum() == chosen["kept"] and correct[kept].mean() >= 0.6
    else:
        assert "no voting.min_confidence reaches 60% accuracy" in stdout
    assert rows[0]["species"] == "giraffe" and rows[0]["site"] == "OPC"
    for png in ("reliability.png", "accuracy_coverage.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    text = (out / "report.txt").read_text()
    assert "By species+site" in text and "Selective prediction" in text and "Error structure" in text


def test_evaluate_folder_groups_from_path_and_metadata_csv(trained, csv_set, tmp_path, capsys):
    meta = tmp_path / "meta.csv"
    meta.write_text("file,camera\n" + "".join(f"{n}_0000.png,cam{k % 2}\n" for k, n in enumerate(VIEWPOINTS)))
    out = tmp_path / "eval"
    rc = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(trained / "best_pose_model.pth"),
            "--data",
            str(csv_set / "img"),
            "--group-from-path",
            "cls=0",
            "--metadata",
            str(meta),
            "--group-by",
            "camera",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["groups"]["cls"]) == sorted(VIEWPOINTS)
    assert all(r["support"] == PER_CLASS for r in m["groups"]["cls"].values())
    assert m["groups"]["camera"]["cam0"]["support"] == 4 and m["groups"]["camera"]["(missing)"]["support"] == 72
    rc = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(trained / "best_pose_model.pth"),
            "--data",
            str(csv_set / "img"),
            "--group-by",
            "season",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 2 and "no metadata column 'season'" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["eager", "int8", "onnx"])
def test_temperature_changes_probabilities_not_labels(trained, csv_set, backend, tmp_path):
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    clf = ViewpointClassifier.from_checkpoint(trained / "best_pose_model.pth", backend=backend, onnx_cache_dir=tmp_path)
    t = clf.config.temperature
    assert clf.temperature == t != 1.0
    frame = read_image(csv_set / "img" / "left" / "left_0000.png")
    images = [read_image(p) for p in sorted((csv_set / "img" / "left").glob("*.png"))[:4]]
    scaled, scaled_frame = clf.predict_proba(images), clf.predict_frame(frame, np.array([[0, 0, 96, 96]])).probs
    clf.temperature = 1.0
    raw, raw_frame = clf.predict_proba(images), clf.predict_frame(frame, np.array([[0, 0, 96, 96]])).probs
    assert np.array_equal(scaled.argmax(1), raw.argmax(1)) and not np.allclose(scaled, raw)
    for a, b in ((scaled, raw), (scaled_frame, raw_frame)):
        np.testing.assert_allclose(a, torch.softmax(torch.log(torch.from_numpy(b)) / t, 1).numpy(), atol=1e-5)


def test_model_config_temperature_round_trip():
    from pose_classifier_ros.model.viewpoint_model import ModelConfig

    # old checkpoints (no "temperature" key) load as 1.0; the value round-trips
    d = ModelConfig(backbone="test-tiny", temperature=2.5).to_dict()
    assert ModelConfig.from_dict(d).temperature == 2.5
    d.pop("temperature")
    assert ModelConfig.from_dict(d).temperature == 1.0
    with pytest.raises(ValueError, match="temperature"):
        ModelConfig(temperature=0.0)
