"""data.py: folder/CSV loading with skips and clear errors, stratified split, flip augmentation,
balanced sampling, and evaluation preprocessing identical to ViewpointClassifier's."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from pose_classifier_ros.labels import INDEX, NUM_CLASSES, VIEWPOINTS, flip_label
from pose_classifier_ros.model.viewpoint_model import ModelConfig
from pose_classifier_ros.synthetic.crops import write_crops
from pose_classifier_ros.synthetic.patterns import render_pattern
from pose_classifier_ros.training import data as D


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "data"
    write_crops(root, 5, seed=1, render=render_pattern, size=40, progress=False)
    return root


def test_load_folder_and_stratified_split(folder):
    samples = D.load_samples(folder)
    assert len(samples) == 40 and samples.class_counts() == {n: 5 for n in VIEWPOINTS}
    assert all(s.path.parent.name == VIEWPOINTS[s.label] for s in samples)
    train, val = D.split_samples(samples, 0.2, seed=3)
    assert len(val) == 8 and len(train) == 32
    assert np.bincount(val.labels, minlength=8).tolist() == [1] * 8  # one per class: stratified
    assert not {s.path for s in train} & {s.path for s in val}
    again = D.split_samples(samples, 0.2, seed=3)[1]
    other = D.split_samples(samples, 0.2, seed=4)[1]
    assert [s.path for s in again] == [s.path for s in val]  # seeded
    assert [s.path for s in other] != [s.path for s in val]


def test_csv_missing_and_unreadable_are_skipped(folder, tmp_path, caplog):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.jpg")
    rows = [
        "image_path,pose",
        f"{folder}/left/left_0000.png,left",
        "ok.jpg,Front_Left",
        "gone.png,back",
        "broken.png,right",
        f"{folder}/back/back_0001.png,back",
    ]
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="pose_classifier_ros.training.data"):
        samples = D.load_samples(tmp_path / "set.csv")
    assert [VIEWPOINTS[s.label] for s in samples] == ["left", "front-left", "back"]
    assert samples[1].path == tmp_path / "ok.jpg"  # relative to the CSV's folder
    assert samples.missing == [str(tmp_path / "gone.png")]
    assert samples.unreadable == [str(tmp_path / "broken.png")]
    assert "skipped 1 missing" in caplog.text and "skipped 1 unreadable" in caplog.text
    assert "skipped 1 missing, 1 unreadable" in samples.summary()


def test_csv_unknown_class_and_bad_header(tmp_path):
    (tmp_path / "a.csv").write_text("image_path,pose\nx.png,front\ny.png,sideways\n")
    with pytest.raises(D.DataError, match=r"a\.csv:3: unknown viewpoint 'sideways'"):
        D.load_samples(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("file,label\nx.png,front\n")
    with pytest.raises(D.DataError, match="image_path,pose"):
        D.load_samples(tmp_path / "b.csv")
    (tmp_path / "dir" / "upside-down").mkdir(parents=True)
    with pytest.raises(D.DataError, match="'upside-down' is not a viewpoint class"):
        D.load_samples(tmp_path / "dir")
    with pytest.raises(D.DataError, match="no such folder"):
        D.load_samples(tmp_path / "nowhere")


def test_flip_swaps_label_and_mirrors_image():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    image = Image.fromarray(arr)
    flip = D.HorizontalFlipWithLabel(p=1.0)
    for label in range(NUM_CLASSES):
        out, new = flip(image, label)
        assert new == flip_label(label)
        assert np.array_equal(np.asarray(out), arr[:, ::-1])
    assert flip(image, INDEX["left"])[1] == INDEX["right"]
    assert flip(image, INDEX["back-right"])[1] == INDEX["back-left"]
    assert flip(image, INDEX["front"])[1] == INDEX["front"]
    same, label = D.HorizontalFlipWithLabel(p=0.0)(image, INDEX["left"])
    assert label == INDEX["left"] and np.array_equal(np.asarray(same), arr)
    # p = 0.5 flips about half of the time (seeded)
    torch.manual_seed(0)
    flips = sum(D.HorizontalFlipWithLabel(0.5)(image, INDEX["left"])[1] == INDEX["right"] for _ in range(200))
    assert 70 < flips < 130


def _stripe_chirality(img: np.ndarray) -> float:
    """mean(gx * gy) / mean(gx^2 + gy^2): > 0 for "/"-like stripes, < 0 for "\\", ~0 for vertical."""
    g = img.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(g)
    return float((gx * gy).mean() / (gx**2 + gy**2).mean())


def test_synthetic_pattern_mirrors_to_flipped_class():
    """The generated data is mirror-consistent: a mirrored image has the stripe chirality of flip_label."""
    rng = np.random.default_rng(5)
    for label in range(NUM_CLASSES):
        img = render_pattern(label, rng, size=96)
        mirrored = _stripe_chirality(img[:, ::-1])
        other = _stripe_chirality(render_pattern(flip_label(label), rng, size=96))
        if flip_label(label) == label:  # front / back: vertical stripes
            assert abs(mirrored) < 0.05 and abs(other) < 0.05
        else:
            assert abs(mirrored) > 0.1 and np.sign(mirrored) == np.sign(other), VIEWPOINTS[label]


def test_train_transform_shapes_and_flip():
    cfg = ModelConfig(backbone="test-tiny")
    image = Image.fromarray(render_pattern(INDEX["left"], np.random.default_rng(0), 80))
    torch.manual_seed(0)
    x, label = D.train_transform(cfg, flip_p=1.0)(image, INDEX["left"])
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and label == INDEX["right"]
    x, label = D.train_transform(cfg, flip_p=0.0)(image, INDEX["left"])
    assert label == INDEX["left"]
    assert -3 < float(x.mean()) < 3  # normalised, not 0..255


def test_balanced_sampler_equalises_classes():
    counts = [80, 40, 20, 10, 5, 5, 3, 2]
    labels = np.repeat(np.arange(8), counts)
    sampler = D.make_balanced_sampler(labels, num_samples=16000, generator=torch.Generator().manual_seed(0))
    drawn = labels[np.fromiter(iter(sampler), dtype=np.int64)]
    freq = np.bincount(drawn, minlength=8) / len(drawn)
    assert np.abs(freq - 1 / 8).max() < 0.015, freq
    assert len(list(D.make_balanced_sampler(labels))) == len(labels)  # default: N per epoch
    with pytest.raises(D.DataError):
        D.make_balanced_sampler([])


class _RecordingBackbone(torch.nn.Module):
    embed_dim = 64

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return torch.zeros(len(x), self.embed_dim)


def test_eval_preprocessing_is_the_classifiers(folder):
    """Validation/evaluation batches are bit-identical to the tensors ViewpointClassifier feeds its backbone."""
    from pose_classifier_ros.model.classifier import ViewpointClassifier
    from pose_classifier_ros.model.head import build_head
    from pose_classifier_ros.model.viewpoint_model import ViewpointModel

    cfg = ModelConfig(backbone="test-tiny")
    samples = D.load_samples(folder)[:6]
    ds = D.ViewpointDataset(samples)
    batch, labels = D.collate_eval(cfg)([ds[i] for i in range(len(ds))])
    assert batch.shape == (6, 3, 224, 224) and labels.tolist() == [s.label for s in samples]

    backbone = _RecordingBackbone()
    clf = ViewpointClassifier(ViewpointModel(backbone, build_head("linear", 64)), cfg, backend="eager")
    clf.predict_proba([Image.open(s.path) for s in samples])
    assert torch.equal(torch.cat(backbone.inputs), batch)
