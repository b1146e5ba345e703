"""Training the head: the loss (with optional manifold mixup), the optimiser and its schedule, the epoch
loop that keeps the best-validation-accuracy checkpoint, and summary.csv."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pose_classifier_ros.training.train_setup import TrainRun, plain_args

logger = logging.getLogger(__name__)


def hidden_split_points(head: nn.Module) -> list[int]:
    """Indices k such that head[:k] ends a hidden layer of the MLP (after each GELU+Dropout block);
    [0] (mix the input features) for a head without hidden layers."""
    if not isinstance(head, nn.Sequential):
        return [0]
    points = [k + 1 for k, m in enumerate(head) if isinstance(m, nn.Dropout)]
    return points or [0]


def head_loss(
    head: nn.Module,
    feats: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    mixup_alpha: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of one batch; with mixup_alpha > 0 manifold mixup at a random hidden layer.

    Mixup: lam ~ Beta(alpha, alpha), h = lam * h + (1 - lam) * h[perm] at the chosen layer,
    loss = lam * CE(y) + (1 - lam) * CE(y[perm]).
    """
    if mixup_alpha <= 0 or len(feats) < 2:
        logits = head(feats)
        return criterion(logits, labels), logits
    lam = float(
        np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator))).beta(mixup_alpha, mixup_alpha)
    )
    points = hidden_split_points(head)
    k = points[int(torch.randint(len(points), (1,), generator=generator))]
    perm = torch.randperm(len(feats), generator=generator).to(feats.device)
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    h = feats
    for layer in layers[:k]:  # not head[:k]: slicing re-instantiates the Sequential subclass
        h = layer(h)
    h = lam * h + (1.0 - lam) * h[perm]
    for layer in layers[k:]:
        h = layer(h)
    logits = h
    loss = lam * criterion(logits, labels) + (1.0 - lam) * criterion(logits, labels[perm])
    return loss, logits


class HeadTrainer:
    """AdamW + cosine schedule + label-smoothed CE on the head; one epoch of batches, validation."""

    def __init__(self, run: TrainRun):
        args = run.args
        self.run, self.head = run, run.model.head
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=args.epochs)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.eval_criterion = nn.CrossEntropyLoss()
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.amp)

    def step(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """One optimiser step -> (summed loss, correct predictions) of the batch."""
        from pose_classifier_ros.training.features import autocast_for

        with autocast_for(self.run.device, self.run.amp):
            loss, logits = head_loss(self.head, feats, labels, self.criterion, self.run.args.mixup_alpha, self.run.gen)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()) * len(labels), int((logits.argmax(1) == labels).sum())

    def _batches(self, epoch: int):
        """(features (B, D), labels (B,)) on the device: from the cache, or the backbone on images."""
        from tqdm import tqdm

        from pose_classifier_ros.training import data as D
        from pose_classifier_ros.training.features import autocast_for

        run, args, device = self.run, self.run.args, self.run.device
        desc = f"epoch {epoch}/{args.epochs}"
        if run.cache is not None:
            feats_all, labels_all = run.cache.sample_epoch(run.gen)
            if args.no_balance:
                order = torch.randperm(len(labels_all), generator=run.gen)
            else:
                order = torch.as_tensor(list(D.make_balanced_sampler(run.train_set.labels, generator=run.gen)))
            batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
            for idx in tqdm(batches, desc=desc, unit="batch", disable=not run.progress, leave=False):
                yield feats_all[idx].to(device, non_blocking=True), labels_all[idx].to(device, non_blocking=True)
            return
        for images, labels in tqdm(run.train_loader, desc=desc, unit="batch", disable=not run.progress, leave=False):
            images = images.to(device, non_blocking=True)
            with torch.no_grad(), autocast_for(device, run.amp):
                feats = run.model.backbone(images)
            yield feats.float(), torch.as_tensor(labels).to(device, non_blocking=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of head training, then the scheduler step -> {"lr", "train_loss", "train_acc"}."""
        self.head.train()
        total_loss, correct, seen = 0.0, 0, 0
        for feats, labels in self._batches(epoch):
            loss_sum, ok = self.step(feats, labels)
            total_loss, correct, seen = total_loss + loss_sum, correct + ok, seen + len(labels)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return {"lr": lr, "train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}

    @torch.no_grad()
    def validate(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(loss, probs (N, C), labels (N,)) of the head on the validation set."""
        from pose_classifier_ros.training.features import autocast_for, extract_features

        run = self.run
        self.head.eval()
        if run.cache is not None:
            feats, labels = run.cache.val.to(run.device), run.cache.val_labels
        else:
            feats, labels = extract_features(
                run.model.backbone, run.val_loader, run.device, run.amp, desc="val", progress=False
            )
            feats = feats.to(run.device)
        with autocast_for(run.device, run.amp):
            logits = self.head(feats).float().cpu()
        loss = float(self.eval_criterion(logits, labels)) if len(labels) else float("nan")
        return loss, torch.softmax(logits, 1).numpy(), labels.numpy()


def save_best(run: TrainRun, path: Path, metrics: dict[str, Any]) -> None:
    """The best epoch's checkpoint: ours (config, metrics, metadata) or the reference's plain state_dict."""
    from pose_classifier_ros.model.checkpoint import save_checkpoint, save_reference_checkpoint

    if getattr(run.args, "save_format", "ours") == "reference":
        save_reference_checkpoint(path, run.model, run.config)
        return
    save_checkpoint(
        path,
        run.model,
        run.config,
        metrics=metrics,
        include_backbone=not run.args.head_only_checkpoint,
        train_args=plain_args(run.args),
        backbone_weights=run.weights_note,
    )


def _write_summary(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def fit(run: TrainRun, ckpt_path: Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The epoch loop: train, validate, keep the best-validation-accuracy checkpoint -> (history, best)."""
    args = run.args
    trainer = HeadTrainer(run)
    torch.manual_seed(args.seed)  # dropout / augmentation stream of the epochs
    history: list[dict[str, float]] = []
    best = {"acc": -1.0, "epoch": 0, "probs": None, "labels": None}
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        stats = trainer.train_epoch(epoch)
        t_train = time.perf_counter() - t0
        val_loss, val_probs, val_labels = trainer.validate()
        val_acc = float((val_probs.argmax(1) == val_labels).mean())
        epoch_s = time.perf_counter() - t0
        history.append(
            {
                "epoch": epoch,
                **stats,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "train_s": round(t_train, 4),
                "epoch_s": round(epoch_s, 4),
            }
        )
        improved = val_acc > best["acc"]
        if improved:
            best.update(acc=val_acc, epoch=epoch, probs=val_probs, labels=val_labels)
            save_best(run, ckpt_path, {"val_acc": val_acc, "val_loss": val_loss, "epoch": epoch})
        logger.info(
            "epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f%s | %.2f s",
            epoch,
            args.epochs,
            stats["train_loss"],
            stats["train_acc"],
            val_loss,
            val_acc,
            "  (best, saved)" if improved else "",
            epoch_s,
        )
        _write_summary(run.out / "summary.csv", history)
    return history, best


__all__ = ["head_loss", "hidden_split_points", "HeadTrainer", "fit"]
