"""What `pose-classifier train` adds at the end: temperature fitting and the evaluation sections on the
validation split (intervals, groups, calibration, selective prediction, error structure).

``--fit-temperature`` fits T on the best epoch's validation logits (NLL, ``calibration.fit_temperature``)
and stores it in the checkpoint's ModelConfig; ``ViewpointClassifier`` then divides the logits by it
(labels unchanged). ``--group-by`` reports per group when the validation CSV has those columns; the
default "auto" takes every extra CSV column with 2..20 distinct values.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pose_classifier_ros.evaluation import calibration as C
from pose_classifier_ros.evaluation.analysis import AnalysisOptions, analyse, write_figures
from pose_classifier_ros.evaluation.groups import default_factors, parse_columns

logger = logging.getLogger(__name__)

AUTO = "auto"
MAX_AUTO_GROUPS = 20


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """train's options for the validation report and calibration."""
    ev = parser.add_argument_group("validation report")
    ev.add_argument(
        "--fit-temperature",
        action="store_true",
        help="fit a softmax temperature on the validation split and store it in the checkpoint "
        "(confidences become calibrated; labels unchanged)",
    )
    ev.add_argument(
        "--group-by",
        default=AUTO,
        metavar="COL[,COL...]|auto|none",
        help="per-group validation report by these CSV columns; auto: extra columns with 2..20 values",
    )
    ev.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        metavar="A",
        help="also report the voting.min_confidence whose kept validation crops reach accuracy A",
    )


def auto_columns(metadata: list[dict[str, str]]) -> list[str]:
    """Metadata columns worth grouping by: 2..20 distinct values, and fewer than half the samples."""
    columns = list(dict.fromkeys(k for m in metadata for k in m))
    out = []
    for c in columns:
        distinct = {m.get(c, "") for m in metadata}
        if 2 <= len(distinct) <= min(MAX_AUTO_GROUPS, len(metadata) / 2):
            out.append(c)
    return out


def set_checkpoint_temperature(path: str | os.PathLike, temperature: float) -> None:
    """Store `temperature` in the ModelConfig of one of our checkpoints (atomic rewrite)."""
    import torch

    from pose_classifier_ros.model.checkpoint import FORMAT

    path = Path(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("config"), dict):
        raise ValueError(f"{path} is not a {FORMAT} checkpoint; cannot store a temperature in it")
    obj["config"]["temperature"] = float(temperature)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def validation_analysis(
    args,
    val_samples,
    labels: np.ndarray,
    raw_probs: np.ndarray,
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Fit / store the temperature when asked, write the figures, return the report sections."""
    temperature = 1.0
    if getattr(args, "fit_temperature", False) and getattr(args, "save_format", "ours") == "reference":
        logger.warning(
            "--fit-temperature: the reference checkpoint format has no place for a temperature; "
            "not fitted (use --save-format ours)"
        )
    elif getattr(args, "fit_temperature", False):
        temperature = C.fit_temperature(C.logits_from_probs(raw_probs), labels)
        set_checkpoint_temperature(checkpoint, temperature)
        logger.info(
            "fitted temperature %.4g on %d validation images; stored in %s", temperature, len(labels), checkpoint
        )
    metadata = [s.metadata if hasattr(s, "metadata") else {} for s in val_samples]
    spec = getattr(args, "group_by", AUTO)
    if spec is None or str(spec).strip().lower() == "none":
        columns = []
    elif str(spec).strip().lower() == AUTO:
        columns = auto_columns(metadata)
    else:
        columns = parse_columns(spec)
    options = AnalysisOptions(
        factors=default_factors(columns),
        target_accuracy=getattr(args, "target_accuracy", None),
        seed=getattr(args, "seed", 0),
    )
    sections = analyse(labels, raw_probs, temperature=temperature, metadata=metadata, options=options)
    write_figures(out_dir, labels, raw_probs, sections, "(validation)")
    return sections


__all__ = ["add_training_arguments", "auto_columns", "set_checkpoint_temperature", "validation_analysis"]
