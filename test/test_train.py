"""train.py / evaluate.py end to end on generated mirror-consistent data with the test-tiny backbone."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
import yaml

from pose_classifier_ros.cli import main as cli_main
from pose_classifier_ros.labels import NUM_CLASSES
from pose_classifier_ros.synthetic.crops import write_crops
from pose_classifier_ros.synthetic.patterns import render_pattern
from pose_classifier_ros.training import head_trainer
from pose_classifier_ros.training import train as T
from pose_classifier_ros.training.data import read_image


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "data"
    write_crops(root, 16, seed=0, render=render_pattern, progress=False)
    return root


COMMON = ("--size", "test-tiny", "--workers", "0", "--no-progress", "--aug-views", "2")


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return T.train(parse("--data", dataset, "--out", out, "--epochs", "25", *COMMON))


def test_training_beats_chance_and_writes_run_dir(trained):
    assert trained.best_val_acc > 0.3, trained.best_val_acc  # chance is 1/8
    assert len(trained.val_labels) == 24  # 3 of 16 per class (stratified 80/20)
    assert np.bincount(trained.val_labels, minlength=8).tolist() == [3] * 8
    out = trained.out_dir
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 25 and {"train_loss", "val_loss", "val_acc"} <= set(rows[0])
    assert max(float(r["val_acc"]) for r in rows) == pytest.approx(trained.best_val_acc)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(trained.best_val_acc)
    assert metrics["best_epoch"] == trained.best_epoch and metrics["backbone"] == "test-tiny"
    assert sum(map(sum, metrics["confusion_matrix"])) == 24
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert "confusion matrix" in (out / "report.txt").read_text()
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["epochs"] == 25 and args["size"] == "test-tiny" and args["lr"] == pytest.approx(1e-3)


def test_checkpoint_reproduces_trainer_predictions(trained):
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    clf = ViewpointClassifier.from_checkpoint(trained.checkpoint, backend="eager")
    assert clf.config.backbone == "test-tiny" and clf.config.head_type == "mlp"
    probs = clf.predict_proba([read_image(p) for p in trained.val_paths])
    assert np.array_equal(probs.argmax(1), trained.val_predictions)
    np.testing.assert_allclose(probs, trained.val_probs, atol=1e-5)


def test_same_seed_same_metrics_and_uncached_loop(dataset, tmp_path):
    a = T.train(parse("--data", dataset, "--out", tmp_path / "a", "--epochs", "3", *COMMON))
    b = T.train(parse("--data", dataset, "--out", tmp_path / "b", "--epochs", "3", *COMMON))
    strip = [{k: v for k, v in h.items() if not k.endswith("_s")} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if not k.endswith("_s")} for h in b.history]
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    c = T.train(parse("--data", dataset, "--out", tmp_path / "c", "--epochs", "2", "--seed", "1", *COMMON))
    assert c.history[0]["train_loss"] != a.history[0]["train_loss"]
    # The reference (uncached) loop: backbone every batch, same outputs/format.
    u1 = T.train(parse("--data", dataset, "--out", tmp_path / "u1", "--epochs", "1", "--no-cache-features", *COMMON))
    u2 = T.train(parse("--data", dataset, "--out", tmp_path / "u2", "--epochs", "1", "--no-cache-features", *COMMON))
    assert u1.history[0]["train_loss"] == u2.history[0]["train_loss"]
    assert (tmp_path / "u1" / "best_pose_model.pth").is_file() and u1.report["cache_features"] is False


def test_linear_probe_with_mixup(dataset, tmp_path):
    from pose_classifier_ros.model.classifier import ViewpointClassifier

    r = T.train(
        parse(
            "--data", dataset, "--out", tmp_path, "--epochs", "4", "--head", "linear", "--mixup-alpha", "0.4", *COMMON
        )
    )
    clf = ViewpointClassifier.from_checkpoint(r.checkpoint, backend="eager")
    assert clf.config.head_type == "linear"
    assert np.array_equal(clf.predict_proba([read_image(p) for p in r.val_paths]).argmax(1), r.val_predictions)


def test_manifold_mixup_mixes_hidden_layer():
    import torch

    from pose_classifier_ros.model.head import ViewpointHead

    head = ViewpointHead(16).eval()
    assert head_trainer.hidden_split_points(head) == [4, 7]
    feats, labels = torch.randn(6, 16), torch.tensor([0, 1, 2, 3, 4, 5])
    ce = torch.nn.CrossEntropyLoss()
    plain, logits = head_trainer.head_loss(head, feats, labels, ce, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(logits, head(feats)) and torch.allclose(plain, ce(head(feats), labels))
    mixed, mlogits = head_trainer.head_loss(head, feats, labels, ce, 1.0, torch.Generator().manual_seed(0))
    assert mlogits.shape == (6, NUM_CLASSES) and not torch.allclose(mlogits, logits)


def test_cli_config_defaults_flags_override_and_evaluate(dataset, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        yaml.safe_dump({"size": "test-tiny", "epochs": 2, "lr": 0.5, "workers": 0, "aug-views": 1, "no_progress": True})
    )
    run = tmp_path / "run"
    assert cli_main(["train", "-c", str(cfg), "--data", str(dataset), "--out", str(run), "--lr", "0.002"]) == 0
    capsys.readouterr()
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert args["epochs"] == 2 and args["aug_views"] == 1 and args["lr"] == pytest.approx(0.002)

    rc = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(run / "best_pose_model.pth"),
            "--data",
            str(dataset),
            "--out",
            str(tmp_path / "eval"),
            "--no-progress",
            "--results-format",
            "csv",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    echoed = json.loads(out[out.index("{") :])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 16 * NUM_CLASSES
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert len(rows) == 128 and sum(r["pose"] == r["predicted"] for r in rows) == round(metrics["accuracy"] * 128)
    assert (tmp_path / "eval" / "results.csv").is_file()
    assert echoed["accuracy"] == pytest.approx(metrics["accuracy"]) and echoed["num_samples"] == 128


def test_cli_errors_are_clear(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("image_path,pose\nx.png,upwards\n")
    assert cli_main(["train", "--train-csv", str(bad), "--out", str(tmp_path / "r"), "--size", "test-tiny"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:2: unknown viewpoint 'upwards'" in err and "Traceback" not in err
    assert cli_main(["train", "--out", str(tmp_path / "r"), "--size", "test-tiny"]) == 2
    assert "no training data" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "none.pth"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("epochz: 3\n")
    with pytest.raises(SystemExit):
        cli_main(["train", "-c", str(cfg), "--data", str(dataset)])
    assert "unknown option(s) epochz" in capsys.readouterr().err
