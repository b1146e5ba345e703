"""``backend: auto`` measures: the fastest candidate backend that agrees with fp32 eager, cached.

On the first activation with a model on a machine, ``select_backend`` runs every candidate
(``backends.auto_candidates``: eager, bf16 where the CPU has it natively, int8, onnx, onnx-int8) on a
small calibration batch (the caller's crops, e.g. from the first frames, else a deterministic
synthetic batch), compares each one's probabilities with fp32 eager's, times it, and picks the
fastest that agrees. A candidate that raises, or whose labels differ from eager's on more than 1% of
the crops, or whose probabilities differ by more than ``MAX_ABS_DP`` anywhere, is never chosen. The
choice and its figures are cached (backend_cache.py), so later activations build one runner and
start at once; exported ONNX files are cached beside it (backends.export_backbone_onnx).

Why MAX_ABS_DP = 0.1 (max |p - p_fp32| over the batch and the classes), measured on this project's
AVX-512 VNNI/BF16/AMX Xeon, torch 2.14.1, onnxruntime 1.32: ViT-S/14 with random weights and the
benchmark's head, 1080p crops: bf16 0.0002, int8 0.0018, onnx-int8 0.0007; the test-tiny backbone
with a confident head (test_classifier.py): bf16 0.006, int8 0.03, onnx-int8 0.05. The bound leaves
2x margin over the worst of these. Heads trained to near-certainty on random-weight features (an
over-confident worst case, no real weights offline) moved by 0.2-0.9 under int8 and changed 2-10% of
the labels: there int8 is rejected, which is the point of the check.

Cost on the first activation: the ONNX export and int8 quantisation (once per weights; later
activations reuse the files) plus, per candidate, one warm-up call (its output is the agreement
check) and REPEATS timed calls on CALIBRATION_CROPS crops. ViT-S on the 2-core Xeon above, shared
with other jobs at load 1.3: 10.5 s in all, 3.7 s of it export and quantisation (47 s at load 4); a
cached activation 0.4 s. A candidate whose timed call takes 3x the best time so far (and over 0.25 s)
is not timed again: it cannot win, and a fast one preempted once on a busy CPU still gets its repeats.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backend_cache import cache_path_for, choice_key, read_choice, write_choice
from .backends import BACKEND_FACTORIES, BackendFactory, Runner, RunnerSpec, auto_candidates

logger = logging.getLogger(__name__)

MIN_LABEL_AGREEMENT_PCT = 99.0  # % of calibration crops whose label equals fp32 eager's
MAX_ABS_DP = 0.1  # largest |probability difference| to fp32 eager (see the module docstring)
CALIBRATION_CROPS = 8  # crops per timed call
REPEATS = 2  # timed calls per candidate after the warm-up call; the fastest counts
GIVE_UP_FACTOR = 3.0  # a candidate this many times slower than the best so far (and slower than
GIVE_UP_MIN_MS = 250.0  # this: short calls are cheap to repeat) is not timed again


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` chose and why: crops_per_s, agreement (% labels equal to fp32 eager) and
    max_abs_dp (largest |probability difference| to fp32 eager) per candidate that ran; rejected:
    {candidate: reason} for those that raised or disagreed; cached: read from the cache (no
    measurement in this process); cache_path: its file (None when it could not be written);
    measure_s: seconds the measurement took (that of the cached run when cached); build_s: seconds
    each candidate took to build (ONNX export and quantisation included); calibration: what the
    crops were; measured_at: ISO time of the measurement."""

    backend: str
    crops_per_s: dict[str, float]
    agreement: dict[str, float]
    max_abs_dp: dict[str, float]
    rejected: dict[str, str] = field(default_factory=dict)
    cached: bool = False
    cache_path: str | None = None
    measure_s: float = 0.0
    build_s: dict[str, float] = field(default_factory=dict)
    calibration: str = ""
    measured_at: str = ""

    def summary(self) -> str:
        """The one log line: choice, every candidate's crops/s, the choice's agreement, where cached."""
        others = ", ".join(f"{k} {v:.1f}" for k, v in self.crops_per_s.items() if k != self.backend)
        rejected = "; ".join(f"{k}: {v}" for k, v in self.rejected.items())
        if self.cached:
            where = f"cached choice from {self.cache_path} (measured {self.measured_at})"
        else:
            cache = f"cached in {self.cache_path}" if self.cache_path else "not cached"
            where = f"measured in {self.measure_s:.1f} s on {self.calibration}, {cache}"
        return (
            f"backend auto: {self.backend} {self.crops_per_s.get(self.backend, 0.0):.1f} crops/s "
            f"({others + '; ' if others else ''}agreement {self.agreement.get(self.backend, 100.0):.0f}%, "
            f"max |dp| {self.max_abs_dp.get(self.backend, 0.0):.4f})"
            + (f"; rejected {rejected}" if rejected else "")
            + f" - {where}"
        )

    def as_diagnostics(self) -> dict[str, str]:
        """Key/values for a DiagnosticStatus."""
        return {
            "backend": self.backend,
            "backend_source": "cached" if self.cached else "measured",
            "backend_crops_per_s": ", ".join(f"{k} {v:.1f}" for k, v in self.crops_per_s.items()),
            "backend_agreement_pct": ", ".join(f"{k} {v:.1f}" for k, v in self.agreement.items()),
            "backend_max_abs_dp": ", ".join(f"{k} {v:.4f}" for k, v in self.max_abs_dp.items()),
            "backend_rejected": "; ".join(f"{k}: {v}" for k, v in self.rejected.items()) or "none",
            "backend_cache": self.cache_path or "",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    """select_backend's result: the choice and the chosen backend's ready runner."""

    choice: BackendChoice
    runner: Runner


def synthetic_calibration_crops(n: int = CALIBRATION_CROPS, seed: int = 0) -> list[np.ndarray]:
    """n deterministic animal-like crops, (H, W, 3) uint8 of 96-400 px: a textured ground and a striped
    elliptic body with a head, in varied sizes, poses and colours. For when no real crops exist yet."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(96, 400, 2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ground = rng.uniform(60, 200, 3) * (0.8 + 0.2 * (yy / h))[..., None]
        img = ground + 12 * np.sin(xx[..., None] / rng.uniform(3, 9) + rng.uniform(0, 6, 3))
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        u = ((xx - w / 2) * c + (yy - h / 2) * s) / (0.35 * w)
        v = (-(xx - w / 2) * s + (yy - h / 2) * c) / (0.2 * h)
        body = u**2 + v**2 < 1
        coat = rng.uniform(20, 240, 3) * (0.6 + 0.4 * (np.sin(u * rng.uniform(4, 14)) > 0))[..., None]
        img[body] = coat[body]
        hx, hy = w / 2 + 0.4 * w * c, h / 2 + 0.4 * w * s
        img[(xx - hx) ** 2 + (yy - hy) ** 2 < (0.1 * min(h, w)) ** 2] = rng.uniform(10, 120, 3)
        img += rng.normal(0, 8, img.shape)
        crops.append(img.clip(0, 255).astype(np.uint8))
    return crops


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int, give_up_ms: float | None = None) -> np.ndarray:
    """Wall-clock ms of `repeats` calls of fn after `warmup` untimed ones; stops early after a call that
    took more than give_up_ms (at least one timed call)."""
    for _ in range(warmup):
        fn()
    lat = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1e3)
        if give_up_ms is not None and lat[-1] > give_up_ms:
            break
    return np.asarray(lat)


def agreement(ref_probs: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(% rows whose argmax equals ref's, max |probs - ref_probs|) of two (N, C) arrays."""
    if ref_probs.shape != probs.shape:
        raise ValueError(f"probabilities of shape {probs.shape}, expected {ref_probs.shape}")
    if not np.isfinite(probs).all():
        return 0.0, float("inf")
    same = float((ref_probs.argmax(1) == probs.argmax(1)).mean()) if len(probs) else 1.0
    return 100.0 * same, float(np.abs(ref_probs - probs).max()) if len(probs) else 0.0


def _normalise_candidates(candidates, device) -> dict[str, BackendFactory]:
    if candidates is None:
        candidates = auto_candidates(device)
    if isinstance(candidates, Mapping):
        out = dict(candidates)
    else:
        unknown = [name for name in candidates if name not in BACKEND_FACTORIES]
        if unknown:
            raise ValueError(
                f"unknown candidate backend {unknown[0]!r}; known: {', '.join(BACKEND_FACTORIES)} "
                "(or pass {name: factory})"
            )
        out = {name: BACKEND_FACTORIES[name] for name in candidates}
    if not out:
        raise ValueError("backend auto needs at least one candidate backend")
    if "eager" in out:  # the reference runs first: its output is what the others are checked against
        out = {"eager": out.pop("eager"), **out}
    return out


def _measure(
    candidates: dict[str, BackendFactory],
    spec: RunnerSpec,
    probs_of: Callable[[Runner], np.ndarray],
    timed: Callable[[Runner], Any],
    n: int,
    calibration: str,
    warmup: int = 0,
) -> Selection:
    """Run, check and time every candidate; the fastest that agrees -> Selection (not cached yet).

    probs_of(runner): probabilities of the calibration crops (the agreement check; also the warm-up);
    timed(runner): one call on the workload's batch of n crops; warmup: untimed calls of it first (when
    its batch differs from the calibration batch: a new shape may pay one-time costs)."""
    t_start = time.perf_counter()
    crops_per_s, agree, max_dp, rejected, build_s, passed = {}, {}, {}, {}, {}, {}
    reference = probs_of(BACKEND_FACTORIES["eager"](spec)) if "eager" not in candidates else None
    best_ms = None
    for name, factory in candidates.items():
        try:
            t0 = time.perf_counter()
            runner = factory(spec)
            build_s[name] = time.perf_counter() - t0
            probs = probs_of(runner)  # the warm-up call; its output is the agreement check
            if reference is None:
                reference = probs  # eager (first)
            agree[name], max_dp[name] = agreement(reference, probs)
            give_up = max(GIVE_UP_FACTOR * best_ms, GIVE_UP_MIN_MS) if best_ms is not None else None
            lat = time_calls(lambda r=runner: timed(r), warmup, REPEATS, give_up)
        except Exception as exc:  # a backend that cannot run here is reported, never chosen
            rejected[name] = f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            logger.warning("backend auto: candidate %s failed: %s", name, rejected[name])
            continue
        crops_per_s[name] = n / (float(lat.min()) / 1e3)
        best_ms = float(lat.min()) if best_ms is None else min(best_ms, float(lat.min()))
        if agree[name] < MIN_LABEL_AGREEMENT_PCT:
            rejected[name] = f"labels {agree[name]:.1f}% equal to fp32 < {MIN_LABEL_AGREEMENT_PCT:g}%"
        elif not max_dp[name] <= MAX_ABS_DP:
            rejected[name] = f"max |dp| {max_dp[name]:.4f} > {MAX_ABS_DP:g}"
        else:
            passed[name] = runner
    if not passed:
        raise RuntimeError(f"backend auto: no candidate backend ran and agreed with fp32 eager ({rejected})")
    best = max(passed, key=lambda name: crops_per_s[name])
    choice = BackendChoice(
        backend=best,
        crops_per_s=crops_per_s,
        agreement=agree,
        max_abs_dp=max_dp,
        rejected=rejected,
        measure_s=time.perf_counter() - t_start,
        build_s=build_s,
        calibration=calibration,
        measured_at=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    return Selection(choice, passed[best])


def _from_cache(path: Path, key: dict, factories: dict[str, BackendFactory], spec: RunnerSpec) -> Selection | None:
    """The cached choice with its runner built; None (warned) when absent, corrupt or not buildable."""
    cached = read_choice(path, key)
    if cached is None:
        return None
    try:
        choice = BackendChoice(**{**cached, "cached": True, "cache_path": str(path)})
    except TypeError as exc:
        logger.warning("ignoring the corrupt backend-choice cache %s (%s); measuring again", path, exc)
        return None
    try:
        return Selection(choice, factories[choice.backend](spec))
    except Exception as exc:  # e.g. an ONNX file that cannot be exported again
        logger.warning("backend auto: the cached choice %s does not build (%s); measuring again", path, exc)
        return None


def select_backend(
    model: torch.nn.Module,
    config: Any,
    spec: RunnerSpec,
    *,
    candidates: Mapping[str, BackendFactory] | Sequence[str] | None = None,
    calibration: torch.Tensor | Callable[[], torch.Tensor | None] | None = None,
    calibration_source: str = "",
    cache_dir: str | Path | None = None,
    workload_crops: int = CALIBRATION_CROPS,
) -> Selection:
    """The fastest candidate that agrees with fp32 eager, from the cache or measured (then cached).

    model: the ViewpointModel (``.backbone`` is spec.backbone, ``.head``), on spec.device, eval mode;
    config: its ModelConfig (temperature, preprocessing). candidates: {name: factory} or names of
    ``backends.BACKEND_FACTORIES`` (None: ``auto_candidates(device)``). calibration: (N, 3, S, S) float32
    normalised crops, or a function returning them that is called only when the cache has no choice (the
    crops may cost reading the input); None (or None returned): ``synthetic_calibration_crops``;
    calibration_source names the caller's crops in the log. The first CALIBRATION_CROPS are checked for
    agreement. workload_crops: crops per forward pass the caller will run (the node's inference cycle:
    schedule.max_crops; every_frame: model.batch_size): candidates are timed on a batch of that size (the
    calibration crops repeated), because the ranking depends on it (measured on an AMX Xeon: bf16 is 2.6x
    slower than onnx-int8 on 1 crop and 1.5x faster on 32). cache_dir: where choice files go (None:
    ``backends.default_cache_root()``). RuntimeError when no candidate passes (eager always does unless the
    model itself cannot run).
    """
    from .backends import default_cache_root
    from .preprocess import preprocess_images

    workload_crops = max(1, int(workload_crops))
    factories = _normalise_candidates(candidates, spec.device)
    bounds = {"min_label_agreement_pct": MIN_LABEL_AGREEMENT_PCT, "max_abs_dp": MAX_ABS_DP}
    key = choice_key(model, config, spec.device, list(factories), {**bounds, "workload_crops": workload_crops})
    path = cache_path_for(cache_dir if cache_dir is not None else default_cache_root(), key)
    selection = _from_cache(path, key, factories, spec)
    if selection is not None:
        logger.info("%s", selection.choice.summary())
        return selection

    if callable(calibration):
        calibration = calibration()
    if calibration is None:
        calibration = preprocess_images(synthetic_calibration_crops(), config, device=spec.device)
        calibration_source = "synthetic crops"
    calibration = calibration[:CALIBRATION_CROPS].to(spec.device)
    temperature = float(getattr(config, "temperature", 1.0) or 1.0)

    def probs_of(runner: Runner) -> np.ndarray:
        with torch.inference_mode():
            feats = runner(calibration).to(spec.device).float()
            return torch.softmax(model.head(feats) / temperature, dim=1).cpu().numpy()

    if workload_crops == len(calibration):
        workload, warmup = calibration, 0  # the agreement call was its warm-up
    else:
        reps = -(-workload_crops // len(calibration))
        workload, warmup = calibration.repeat(reps, 1, 1, 1)[:workload_crops].contiguous(), 1

    def timed(runner: Runner):
        with torch.inference_mode():
            return runner(workload)

    described = f"{len(calibration)} {calibration_source or 'calibration crops'}, timed on batches of {workload_crops}"
    selection = _measure(factories, spec, probs_of, timed, workload_crops, described, warmup)
    stored = {k: v for k, v in selection.choice.to_dict().items() if k not in ("cached", "cache_path")}
    if write_choice(path, key, stored):
        selection.choice = BackendChoice(**{**stored, "cache_path": str(path)})
    logger.info("%s", selection.choice.summary())
    return selection


__all__ = [
    "BackendChoice",
    "CALIBRATION_CROPS",
    "MAX_ABS_DP",
    "MIN_LABEL_AGREEMENT_PCT",
    "Selection",
    "agreement",
    "select_backend",
    "synthetic_calibration_crops",
    "time_calls",
]
