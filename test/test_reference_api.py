"""Drop-in for the reference scripts: ViewPointClassifier, exact PIL numerics, reference CLI flags and file."""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from pose_classifier_ros.cli import main as cli_main
from pose_classifier_ros.labels import VIEWPOINTS
from pose_classifier_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pose_classifier_ros.model.classifier import ViewPointClassifier, ViewpointClassifier
from pose_classifier_ros.model.preprocess import pil_preprocess, preprocess_images
from pose_classifier_ros.model.viewpoint_model import ModelConfig, build_model
from pose_classifier_ros.synthetic.crops import write_crops
from pose_classifier_ros.synthetic.patterns import render_pattern
from pose_classifier_ros.training import train as T
from pose_classifier_ros.training.data import read_image
from pose_classifier_ros.training.train_setup import load_splits

TINY = ModelConfig(backbone="test-tiny")
COMMON = ("--workers", "0", "--no-progress", "--aug-views", "2", "--epochs", "4")


def parse(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def reference_transform(cfg: ModelConfig = TINY) -> transforms.Compose:
    """The reference scripts' eval transform, written out independently of our preprocess module."""
    return transforms.Compose(
        [
            transforms.Resize(cfg.resize_size),
            transforms.CenterCrop(cfg.crop_size),
            transforms.ToTensor(),
            transforms.Normalize(cfg.mean, cfg.std),
        ]
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "data"
    write_crops(root, 10, seed=0, render=render_pattern, progress=False)
    return root


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory):
    """`pose-classifier train` with the reference script's flags and --save-format reference."""
    out = tmp_path_factory.mktemp("ref_run")
    argv = [
        "train",
        "--data_dir",
        dataset,
        "--model_size",
        "test-tiny",
        "--batch_size",
        "16",
        "--lr",
        "1e-3",
        "--out",
        out,
        "--save-format",
        "reference",
        *COMMON,
    ]
    assert cli_main([str(a) for a in argv]) == 0
    return out


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(TINY, pretrained=False).eval()
    with torch.no_grad():  # spread the logits so that probabilities are far from uniform
        model.head[-1].weight.mul_(40.0)
    path = tmp_path_factory.mktemp("ckpt") / "best_pose_model.pth"
    torch.save(model.state_dict(), path)  # what the reference script saves
    return path, model


def textured_crops() -> list[Image.Image]:
    """Crops of several sizes: smaller than 224, exactly the resize size, non-square both ways, thin."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:700, 0:900]
    base = np.stack([xx * 255 / 900, yy * 255 / 700, 127 + 120 * np.sin(xx / 5.0 + yy / 9.0)], -1)
    frame = (base + rng.normal(0, 25, base.shape)).clip(0, 255).astype(np.uint8)
    sizes = [
        (37, 53),
        (100, 100),
        (180, 90),
        (224, 224),
        (256, 256),
        (256, 300),
        (300, 256),
        (311, 640),
        (640, 120),
        (20, 600),
        (699, 899),
    ]  # (h, w)
    return [Image.fromarray(frame[5 : 5 + h, 3 : 3 + w]) for h, w in sizes]


def test_reference_format_file_is_a_plain_state_dict(reference_run):
    path = reference_run / T.CHECKPOINT_NAME
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(obj, OrderedDict) and all(isinstance(v, torch.Tensor) for v in obj.values())
    assert {k.split(".", 1)[0] for k in obj} == {"backbone", "head"}
    # Exactly the reference model's state_dict: a model of that architecture loads it strictly.
    model = build_model(TINY, pretrained=False)
    model.load_state_dict(obj, strict=True)
    assert list(obj) == list(model.state_dict())
    ckpt = load_checkpoint(path)
    assert ckpt.source_format == "full_state_dict" and ckpt.config.backbone == "test-tiny"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as torch.save leaves it, not mkstemp's 0600


def test_reference_signature_round_trip_gives_the_trainers_labels(reference_run, dataset, tmp_path):
    path = reference_run / T.CHECKPOINT_NAME
    rows = list(csv.DictReader((reference_run / "val_predictions.csv").open()))
    assert len(rows) == 16  # 2 of 10 per class
    clf = ViewPointClassifier(weight_path=str(path), model_size="test-tiny", device="cpu")
    assert clf.backend == "eager" and clf.class_names == VIEWPOINTS
    # The trainer validates through the tensor path (numpy images); the same path gives the same labels.
    labels = clf([read_image(r["image_path"]) for r in rows])
    assert isinstance(labels, list) and labels == [r["predicted"] for r in rows]
    # Positional reference call, our spelling with the same keywords, and our own format: same labels.
    assert ViewPointClassifier(str(path), "test-tiny")([read_image(r["image_path"]) for r in rows]) == labels
    ours = ViewpointClassifier(weight_path=path, model_size="test-tiny", backend="eager")
    assert ours([read_image(r["image_path"]) for r in rows]) == labels
    model, config = ours.model, ours.config
    save_checkpoint(tmp_path / "ours.pth", model, config)
    pils = [Image.open(r["image_path"]) for r in rows]
    np.testing.assert_array_equal(
        ViewPointClassifier(tmp_path / "ours.pth", "test-tiny").predict_proba(pils), clf.predict_proba(pils)
    )


def test_reference_flags_train_the_same_run_as_ours(reference_run, dataset, tmp_path):
    ours = T.train(
        parse(
            "--data", dataset, "--size", "test-tiny", "--batch-size", "16", "--lr", "1e-3", "--out", tmp_path, *COMMON
        )
    )
    ref = load_checkpoint(reference_run / T.CHECKPOINT_NAME).state_dict
    mine = load_checkpoint(ours.checkpoint).state_dict
    assert ref.keys() == mine.keys() and all(torch.equal(ref[k], mine[k]) for k in ref)


def test_model_size_must_match_the_trained_checkpoint(tiny_checkpoint):
    path, model = tiny_checkpoint
    with pytest.raises(CheckpointError, match="must match the trained checkpoint, which is 'test-tiny'"):
        ViewPointClassifier(path)  # the reference default model_size="small"
    with pytest.raises(CheckpointError, match="requested backbone says 'base'.*must match the trained checkpoint"):
        ViewpointClassifier(weight_path=path, model_size="base")
    with pytest.raises(CheckpointError, match="must match the trained checkpoint"):
        ViewpointClassifier(model, TINY, model_size="large")
    with pytest.raises(ValueError, match="model_size must be one of small, base, large"):
        ViewPointClassifier(path, model_size="huge")
    with pytest.raises(TypeError, match="not both"):
        ViewpointClassifier(path, weight_path=path)
    with pytest.raises(TypeError, match="weight_path"):
        ViewpointClassifier()
    assert ViewpointClassifier(weight_path=path).config.backbone == "test-tiny"  # None: the checkpoint's size


def test_pil_crops_match_the_reference_transforms(tiny_checkpoint):
    path, model = tiny_checkpoint
    crops = textured_crops()
    tf = reference_transform()
    ref_inputs = torch.stack([tf(c) for c in crops])
    assert torch.equal(pil_preprocess(crops, TINY), ref_inputs)  # bit for bit
    with torch.inference_mode():
        ref_probs = torch.softmax(model(ref_inputs), dim=1).numpy()
    assert ref_probs.max(axis=1).min() > 0.2  # not near-uniform: the comparison can fail
    clf = ViewPointClassifier(path, model_size="test-tiny")
    probs = clf.predict_proba(crops)
    assert probs.shape == (len(crops), 8) and probs.dtype == np.float32
    assert np.abs(probs - ref_probs).max() <= 1e-6
    assert clf(crops) == [VIEWPOINTS[i] for i in ref_probs.argmax(1)]
    # A mixed list keeps its order: PIL rows exact, array rows from the fast path.
    arrays = [np.asarray(c) for c in crops]
    mixed = clf.predict_proba([crops[0], arrays[1], crops[2], arrays[3]])
    assert np.abs(mixed[[0, 2]] - ref_probs[[0, 2]]).max() <= 1e-6
    fast = clf.predict_proba(arrays)
    np.testing.assert_allclose(mixed[[1, 3]], fast[[1, 3]], atol=1e-6)
    # The fast path is close but not exact: within one uint8 step of the reference inputs.
    step = 1.0 / 255.0 / min(TINY.std)
    assert (preprocess_images(arrays, TINY) - ref_inputs).abs().max().item() <= step + 1e-4
    assert np.abs(fast - ref_probs).max() <= 5e-3


def test_reference_flags_parse_to_our_configuration(tmp_path):
    ref = parse(
        "--data_dir",
        "d",
        "--train_csv",
        "t.csv",
        "--val_csv",
        "v.csv",
        "--model_size",
        "base",
        "--epochs",
        "7",
        "--batch_size",
        "48",
        "--lr",
        "0.0005",
    )
    ours = parse(
        "--data",
        "d",
        "--train-csv",
        "t.csv",
        "--val-csv",
        "v.csv",
        "--size",
        "base",
        "--epochs",
        "7",
        "--batch-size",
        "48",
        "--lr",
        "0.0005",
    )
    assert vars(ref) == vars(ours)
    assert (ref.data, ref.size, ref.batch_size, ref.lr) == (Path("d"), "base", 48, 5e-4)
    assert parse("--model_size", "test-tiny").size == "test-tiny"  # tests keep the tiny backbone
    for size in ("small", "base", "large"):
        assert parse("--model_size", size).size == size
    with pytest.raises(SystemExit):
        parse("--model_size", "huge")
    assert parse().save_format == "ours" and parse("--save-format", "reference").save_format == "reference"
    # A YAML config may use either spelling's dest.
    (tmp_path / "c.yaml").write_text("batch_size: 12\nsize: test-tiny\n")
    assert vars(parse("-c", tmp_path / "c.yaml")) == vars(parse("-c", tmp_path / "c.yaml", "--batch_size", "12"))


def test_data_dir_with_csvs_roots_relative_image_paths(dataset, tmp_path):
    # The reference layout: CSVs elsewhere, image paths relative to --data_dir.
    images = sorted(p.relative_to(dataset) for p in dataset.rglob("*.png"))
    csv_dir = tmp_path / "splits"
    csv_dir.mkdir()
    for name, part in (("train.csv", images[0::2]), ("val.csv", images[1::2])):
        with (csv_dir / name).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image_path", "pose"])
            w.writerows([str(p), p.parent.name] for p in part)
    args = parse(
        "--data_dir",
        dataset,
        "--train_csv",
        csv_dir / "train.csv",
        "--val_csv",
        csv_dir / "val.csv",
        "--model_size",
        "test-tiny",
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    train_set, val_set = load_splits(args)
    assert (len(train_set), len(val_set)) == (40, 40) and not train_set.missing and not val_set.missing
    assert {Path(s.path) for s in val_set} == {(dataset / p).resolve() for p in images[1::2]}
    assert (tmp_path / "run" / "val.resolved.csv").is_file()
    # Without --data_dir the same CSV resolves next to itself, where the images are not.
    with pytest.raises(T.TrainError, match="empty"):
        load_splits(
            parse(
                "--train_csv",
                csv_dir / "train.csv",
                "--val_csv",
                csv_dir / "val.csv",
                "--no-progress",
                "--out",
                tmp_path / "run2",
            )
        )
    with pytest.raises(T.TrainError, match="not a folder"):
        load_splits(parse("--data_dir", csv_dir / "train.csv", "--train_csv", csv_dir / "train.csv"))
    with pytest.raises(T.TrainError, match="--save-format reference writes the full model"):
        T.train(parse("--data", dataset, "--save-format", "reference", "--head-only-checkpoint", "--out", tmp_path))


@pytest.mark.process
def test_importing_the_package_does_not_load_torch():
    code = (
        "import sys, pose_classifier_ros as p; assert 'torch' not in sys.modules; "
        "from pose_classifier_ros import ViewPointClassifier, ViewpointClassifier; "
        "assert issubclass(ViewPointClassifier, ViewpointClassifier); print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
