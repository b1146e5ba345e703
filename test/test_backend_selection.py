"""backend "auto": measured choice among candidate backends, agreement gate, and its on-disk cache.

Real ViewpointClassifier construction on the test-tiny backbone; the candidates are real runners (fp32
eager, torch int8) and small fake backends injected through ``backend_candidates``: a slow one (eager
plus a sleep), fast ones that disagree with fp32 (all-zero features; noise on the features), one that
raises, and a fast exact one (remembers the features of the last batch it computed).
"""

import json
import logging
import math
import time

import numpy as np
import pytest
import torch
from helpers.tiny_model import tiny_model

from pose_classifier_ros.model import backend_selection
from pose_classifier_ros.model.backend_selection import BackendChoice, synthetic_calibration_crops
from pose_classifier_ros.model.backends import BACKEND_FACTORIES
from pose_classifier_ros.model.checkpoint import save_checkpoint
from pose_classifier_ros.model.classifier import ViewpointClassifier

EAGER = BACKEND_FACTORIES["eager"]


@pytest.fixture(scope="module")
def model_and_config():
    return tiny_model()


@pytest.fixture(autouse=True)
def more_timed_calls(monkeypatch):
    """The fakes' speed order must hold on a loaded CPU: the fastest of 4 timed calls counts, not of 2."""
    monkeypatch.setattr(backend_selection, "REPEATS", 4)


class Counter:
    """Counts builds and calls of a wrapped factory's runners."""

    def __init__(self, factory):
        self.factory, self.builds, self.calls = factory, 0, 0

    def __call__(self, spec):
        self.builds += 1
        runner = self.factory(spec)

        def run(images):
            self.calls += 1
            return runner(images)

        return run


def slow(spec):
    runner = EAGER(spec)

    def run(images):
        time.sleep(0.5)
        return runner(images)

    return run


def zeros(spec):
    dim = spec.backbone.embed_dim
    return lambda images: torch.zeros(len(images), dim)


def noisy(spec):
    runner, noise = remembering(spec), torch.Generator().manual_seed(0)

    def run(images):
        feats = runner(images)
        return feats + 0.01 * feats.std() * torch.randn(feats.shape, generator=noise)

    return run


def raising(spec):
    raise RuntimeError("this backend does not run here")


def remembering(spec):
    """Exact and fast: fp32 eager features, computed once per input batch (keyed by its shape and a cheap
    sample of its content, not by the tensor object, so a batch rebuilt between timed calls is still
    remembered and the speed order holds on a loaded CPU)."""
    runner, seen = EAGER(spec), {}

    def run(images):
        key = (tuple(images.shape), tuple(images.reshape(-1)[::4099].tolist()))
        if key not in seen:
            seen[key] = runner(images)
        return seen[key]

    return run


def must_not_build(spec):
    raise AssertionError("a cached choice must not measure (build) this candidate again")


def test_auto_never_chooses_a_slow_disagreeing_or_raising_backend(model_and_config, tmp_path):
    model, config = model_and_config
    candidates = {"eager": EAGER, "slow": slow, "zeros": zeros, "raising": raising}
    clf = ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates=candidates)
    choice = clf.backend_choice
    assert clf.backend == choice.backend == "eager"
    assert choice.crops_per_s["zeros"] > choice.crops_per_s["eager"] > choice.crops_per_s["slow"]
    assert choice.agreement["zeros"] < 99.0 and "labels" in choice.rejected["zeros"]
    assert "RuntimeError: this backend does not run here" in choice.rejected["raising"]
    assert "raising" not in choice.crops_per_s and set(choice.rejected) == {"zeros", "raising"}
    assert choice.agreement["eager"] == 100.0 and choice.max_abs_dp["eager"] == 0.0
    assert not choice.cached and choice.cache_path is not None
    line = choice.summary()
    assert line.startswith("backend auto: eager ") and "slow " in line and "zeros: labels" in line
    assert f"cached in {choice.cache_path}" in line


def test_probability_bound_rejects_a_faster_backend_whose_labels_agree(model_and_config, tmp_path, monkeypatch):
    model, config = model_and_config
    monkeypatch.setattr(backend_selection, "MAX_ABS_DP", 1e-6)
    clf = ViewpointClassifier(
        model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": EAGER, "noisy": noisy}
    )
    choice = clf.backend_choice
    assert choice.agreement["noisy"] == 100.0 and choice.max_abs_dp["noisy"] > 1e-6
    assert choice.crops_per_s["noisy"] > choice.crops_per_s["eager"]
    assert clf.backend == "eager" and "max |dp|" in choice.rejected["noisy"]


def test_the_fastest_agreeing_backend_is_chosen_and_runs(model_and_config, tmp_path):
    model, config = model_and_config
    candidates = {"eager": EAGER, "remembering": remembering, "slow": slow}
    clf = ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates=candidates)
    assert clf.backend == "remembering" and clf.backend_choice.rejected == {}
    crops = synthetic_calibration_crops(4, seed=5)
    eager = ViewpointClassifier(model, config, backend="eager")
    np.testing.assert_allclose(clf.predict_proba(crops), eager.predict_proba(crops), atol=1e-6)


def test_second_activation_reads_the_cache_without_measuring(model_and_config, tmp_path):
    model, config = model_and_config
    first_eager, first_fast = Counter(EAGER), Counter(remembering)
    first = ViewpointClassifier(
        model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": first_eager, "fast": first_fast}
    )
    assert first.backend == "fast" and not first.backend_choice.cached
    assert first_eager.calls >= 2 and first_fast.calls >= 2  # measured: warm-up + timed calls
    files = list(tmp_path.glob("backend-choice-*.json"))
    assert [str(f) for f in files] == [first.backend_choice.cache_path]

    fast = Counter(remembering)
    again = ViewpointClassifier(
        model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": must_not_build, "fast": fast}
    )
    assert again.backend == "fast" and again.backend_choice.cached
    assert fast.builds == 1 and fast.calls == 0  # built once for inference, never timed
    assert again.backend_choice.crops_per_s == first.backend_choice.crops_per_s
    assert "cached choice from" in again.backend_choice.summary()
    assert again.predict_proba(synthetic_calibration_crops(2)).shape == (2, 8)


def test_cache_is_invalidated_when_the_checkpoint_changes(tmp_path):
    path, cache = tmp_path / "model.pth", tmp_path / "cache"
    save_checkpoint(path, *tiny_model(seed=0))
    counters = []

    def activate_ok():
        counters.append(Counter(EAGER))
        return ViewpointClassifier.from_checkpoint(
            path, backend="auto", backend_cache_dir=cache, backend_candidates={"eager": counters[-1]}
        )

    assert not activate_ok().backend_choice.cached and counters[-1].calls > 0
    assert activate_ok().backend_choice.cached and counters[-1].calls == 0
    model, config = tiny_model(seed=1)  # same path, other weights
    save_checkpoint(path, model, config)
    changed = activate_ok()
    assert not changed.backend_choice.cached and counters[-1].calls > 0
    config.temperature = 2.0  # same weights, another temperature: probabilities differ, so a new entry
    save_checkpoint(path, model, config)
    assert not activate_ok().backend_choice.cached
    assert len(list(cache.glob("backend-choice-*.json"))) == 3


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: text[: len(text) // 2],  # half a file
        lambda text: "not json at all",
        lambda text: json.dumps({**json.loads(text), "choice": {**json.loads(text)["choice"], "backend": "gpu"}}),
        lambda text: json.dumps({**json.loads(text), "choice": {**json.loads(text)["choice"], "speed": 1}}),
    ],
    ids=["truncated", "not-json", "unknown-backend", "unknown-field"],
)
def test_a_corrupt_cache_file_is_ignored_and_measured_again(model_and_config, tmp_path, caplog, corrupt):
    model, config = model_and_config
    first = ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": EAGER})
    path = first.backend_choice.cache_path
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(corrupt(text))
    counter = Counter(EAGER)
    with caplog.at_level(logging.WARNING, logger="pose_classifier_ros.model"):
        again = ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": counter})
    assert not again.backend_choice.cached and counter.calls > 0
    assert any("corrupt backend-choice cache" in r.getMessage() for r in caplog.records)
    assert json.loads(open(path, encoding="utf-8").read())["choice"]["backend"] == "eager"  # rewritten whole
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [p.rsplit("/", 1)[1] for p in [path]]
    counter = Counter(EAGER)
    third = ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates={"eager": counter})
    assert third.backend_choice.cached and counter.calls == 0


def test_real_backends_by_name_and_the_default_cache_location(model_and_config, tmp_path, monkeypatch):
    model, config = model_and_config
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    clf = ViewpointClassifier(model, config, backend_candidates=["int8", "eager"])
    choice = clf.backend_choice
    assert list(choice.crops_per_s) == ["eager", "int8"]  # eager first: the reference
    assert clf.backend in ("eager", "int8") and clf.backend not in choice.rejected
    assert choice.agreement["int8"] >= 0 and choice.build_s.keys() == {"eager", "int8"}
    assert choice.cache_path.startswith(str(tmp_path / "pose_classifier_ros" / "backend-choice-"))
    # timed on the classifier's batch (batch_size 32 by default), checked on the calibration crops
    assert choice.calibration == f"{backend_selection.CALIBRATION_CROPS} synthetic crops, timed on batches of 32"
    diag = choice.as_diagnostics()
    assert (
        diag["backend"] == clf.backend
        and diag["backend_source"] == "measured"
        and "int8" in diag["backend_crops_per_s"]
    )


def test_caller_crops_calibrate_and_a_fixed_backend_does_not_measure(model_and_config, tmp_path):
    model, config = model_and_config
    crops = synthetic_calibration_crops(3, seed=9)
    clf = ViewpointClassifier(
        model, config, backend_cache_dir=tmp_path, calibration_crops=crops, backend_candidates={"eager": EAGER}
    )
    assert clf.backend_choice.calibration == "3 caller's crops, timed on batches of 32"
    small = ViewpointClassifier(
        model,
        config,
        backend_cache_dir=tmp_path,
        calibration_crops=crops,
        backend_candidates={"eager": EAGER},
        workload_crops=4,
    )  # another workload is another measurement (and cache entry), timed on its own batch size
    assert not small.backend_choice.cached and small.backend_choice.calibration.endswith("timed on batches of 4")
    fixed = ViewpointClassifier(model, config, backend="eager", backend_cache_dir=tmp_path / "fixed")
    assert fixed.backend == "eager" and fixed.backend_choice is None and not (tmp_path / "fixed").exists()


def test_an_unwritable_cache_still_gives_a_choice(model_and_config, tmp_path):
    model, config = model_and_config
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    clf = ViewpointClassifier(model, config, backend_cache_dir=blocker / "cache", backend_candidates={"eager": EAGER})
    assert clf.backend == "eager" and clf.backend_choice.cache_path is None
    assert "not cached" in clf.backend_choice.summary()


def test_unknown_candidate_names_raise_a_clear_error(model_and_config, tmp_path):
    model, config = model_and_config
    with pytest.raises(ValueError, match="unknown candidate backend 'tensorrt'"):
        ViewpointClassifier(model, config, backend_cache_dir=tmp_path, backend_candidates=["eager", "tensorrt"])


def test_backend_choice_round_trips_through_its_dict():
    choice = BackendChoice("int8", {"eager": 1.0, "int8": 2.0}, {"eager": 100.0, "int8": 100.0}, {"int8": 0.01})
    assert BackendChoice(**choice.to_dict()) == choice


@pytest.mark.process
def test_replay_calibrates_auto_on_the_bags_first_crops(tmp_path):
    """`pose-classifier replay --backend auto` measures on the bag's first crops and caches the choice
    in the params file's model.backend_cache_dir."""
    from helpers.replay_bag import BOXES, PRED, replay_cli, write_bag

    from pose_classifier_ros.replay.bag_replay import bag_calibration_crops

    bag, cache, ckpt = tmp_path / "in", tmp_path / "cache", tmp_path / "tiny.pth"
    write_bag(bag, empty_frames=(0,))  # the first frame has no detections: its image gives no crop
    crops = bag_calibration_crops(bag, "/camera/image_raw", "/detections", limit=3)
    assert len(crops) == 3 and all(c.dtype == np.uint8 and c.ndim == 3 for c in crops)
    x1, y1, x2, y2 = BOXES["a"]  # padded by 10% of the box on each side, rounded outward
    padded = (math.ceil(y2 + 0.1 * (y2 - y1)) - math.floor(y1 - 0.1 * (y2 - y1)), 0)
    padded = (padded[0], math.ceil(x2 + 0.1 * (x2 - x1)) - math.floor(x1 - 0.1 * (x2 - x1)))
    assert crops[0].shape == (*padded, 3) == (40, 30, 3)
    assert (
        crops[0][crops[0].shape[0] // 2, crops[0].shape[1] // 2, 0] == 20 * PRED[1]["a"]
    )  # frame 1: box a painted with its class
    assert bag_calibration_crops(bag, "/camera/image_raw", "/nothing", limit=3) == []

    save_checkpoint(ckpt, *tiny_model())
    params = tmp_path / "params.yaml"
    params.write_text(f"pose_classifier:\n  ros__parameters:\n    model: {{backend_cache_dir: {cache}}}\n")
    # timeout: the test's own limit (pytest.ini); the run had none of its own
    proc = replay_cli(bag, "--checkpoint", ckpt, "--no-out", "--backend", "auto", "--params", params, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (entry,) = cache.glob("backend-choice-*.json")
    choice = json.loads(entry.read_text())["choice"]
    # the params file leaves schedule.mode scheduled: timed on one inference cycle, schedule.max_crops 4
    assert choice["calibration"] == "8 caller's crops, timed on batches of 4"
    assert choice["backend"] not in choice["rejected"]
    assert "backend auto: " in proc.stderr and "cached in" in proc.stderr
