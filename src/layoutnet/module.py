"""The one LightningModule for every model family: it builds its network from its `net` config
(a flat network config of `conf/model/net/`, or a registry spec) through layoutnet's registry, and
stores that spec in every checkpoint it writes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from layoutnet.contract import CLASS_TO_ID, CLASSES, LANGUAGES, NUM_CLASSES
from layoutnet.errors import ConfigError
from layoutnet.models import count_parameters, model_family
from layoutnet.models.registry import build_net, to_spec
from layoutnet.modulesettings import ModuleSettings, module_defaults


def warmup_cosine(warmup_steps: int, total_steps: int, min_lr_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_lr_ratio` at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def check_optimizer_settings(lr: Any, weight_decay: Any, warmup_steps: Any) -> None:
    """Refuse optimizer settings that cannot train, naming the key (before any work starts)."""
    for key, value in (("lr", lr), ("weight_decay", weight_decay)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(key, value, "must be a number", "a float such as 3.0e-3")
    if lr <= 0:
        raise ConfigError("lr", lr, "must be > 0", "a float such as 3.0e-3")
    if weight_decay < 0:
        raise ConfigError("weight_decay", weight_decay, "must be >= 0")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ConfigError("warmup_steps", warmup_steps, "must be a whole number >= 0")


TYPED_IDS = torch.tensor([CLASS_TO_ID[language] for language in LANGUAGES])
"""Class ids of correctly typed text (`ru`, `en`, `he`): the classes the app leaves alone."""


def class_ids(targets: torch.Tensor) -> torch.Tensor:
    """Class ids of a batch's targets: int64 [B] as they are, the top class of soft targets [B, classes]."""
    return targets.argmax(1) if targets.is_floating_point() else targets


def rewrite_penalty(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -log P(no rewrite) for correctly typed rows (0 for wrong-layout rows).

    P(no rewrite) is the probability mass on the typed classes. Rewriting correctly typed text is the
    failure users notice (a harmful correction); this term, weighted by `harm_weight` and added to the
    cross-entropy, makes that error cost more than confusing two wrong-layout classes or missing a fix.
    With soft targets a row counts by its probability of being typed correctly.
    """
    typed_ids = TYPED_IDS.to(logits.device)
    if labels.is_floating_point():
        typed_row = labels.index_select(1, typed_ids).sum(1)
    else:
        typed_row = torch.isin(labels, typed_ids).to(logits.dtype)
    log_keep = torch.logsumexp(logits.index_select(1, typed_ids), 1) - torch.logsumexp(logits, 1)
    return -(log_keep * typed_row).sum() / max(1, labels.shape[0])


class EmbeddingMixup:
    """Mixup for token inputs: ids cannot be interpolated, so the output of every embedding
    layer in the network is mixed with a permutation of the batch while a step is active."""

    def __init__(self, net: nn.Module):
        self.embeddings = [m for m in net.modules() if isinstance(m, nn.Embedding)]
        self.lam = 1.0
        self.perm: torch.Tensor | None = None
        for embedding in self.embeddings:
            embedding.register_forward_hook(self._mix)

    def _mix(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self.perm is None:
            return None
        return self.lam * output + (1.0 - self.lam) * output[self.perm]

    def begin(self, batch_size: int, alpha: float, device: torch.device) -> tuple[float, torch.Tensor]:
        self.lam = float(torch.distributions.Beta(alpha, alpha).sample())
        self.perm = torch.randperm(batch_size, device=device)
        return self.lam, self.perm

    def end(self) -> None:
        self.perm = None


class LayoutClassifierModule(pl.LightningModule):
    SETTINGS: type = ModuleSettings
    """The settings this module takes besides `net`, with their defaults (their one home)."""

    def __init__(self, net: Mapping[str, Any], **settings: Any):
        super().__init__()
        values = module_defaults(self.SETTINGS)
        unknown = sorted(set(settings) - set(values))
        if unknown:
            raise ConfigError(
                unknown[0], settings[unknown[0]], f"is not a setting of {type(self).__name__}", sorted(values)
            )
        values.update(settings)
        lr, weight_decay, warmup_steps = values["lr"], values["weight_decay"], values["warmup_steps"]
        label_smoothing, harm_weight = values["label_smoothing"], values["harm_weight"]
        mixup_alpha, mixup_prob = values["mixup_alpha"], values["mixup_prob"]
        check_optimizer_settings(lr, weight_decay, warmup_steps)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError("label_smoothing", label_smoothing, "must be in [0, 1)")
        if isinstance(harm_weight, bool) or not isinstance(harm_weight, int | float) or not harm_weight >= 0:
            raise ConfigError("harm_weight", harm_weight, "must be a number >= 0 (0: plain cross-entropy)")
        if mixup_prob > 0 and mixup_alpha <= 0:
            raise ConfigError("mixup_alpha", mixup_alpha, "must be > 0 when mixup_prob > 0")
        try:
            self.net_spec = to_spec(net)
            self.net = build_net(self.net_spec)
        except ConfigError as exc:
            raise exc.under("net") from None
        self.save_hyperparameters({**values, "betas": list(values["betas"])})
        self.mixup = EmbeddingMixup(self.net) if mixup_prob > 0 else None
        self.train_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.train_loss = MeanMetric()
        self.val_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_class_acc = MulticlassAccuracy(NUM_CLASSES, average=None)
        self.test_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.test_class_acc = MulticlassAccuracy(NUM_CLASSES, average=None)

    label_meaning: dict | None = None
    """What the training labels mean (the data's typing prior, `DataSource.label_meaning`), set by the run
    before fitting; kept in every checkpoint and, through it, in the exported model's metadata."""

    def checkpoint_meta(self) -> dict:
        """What a checkpoint needs to rebuild the network (its registry spec) and what its outputs mean:
        plain values only."""
        meta = {"net": self.net_spec, "family": self.family, "num_parameters": self.num_parameters}
        if self.label_meaning is not None:
            meta["labels"] = self.label_meaning
        return meta

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["layoutnet"] = self.checkpoint_meta()

    def checkpoint_payload(self) -> dict:
        """What a checkpoint holds for rebuilding the network, from the weights in memory."""
        return {"layoutnet": self.checkpoint_meta(), "state_dict": self.state_dict()}

    @property
    def family(self) -> str:
        return model_family(self.net)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.net)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(ids)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        weight = self.hparams.harm_weight
        return loss + weight * rewrite_penalty(logits, labels) if weight else loss

    def training_logits_and_loss(
        self, ids: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training step's logits and loss (mixup on the embeddings when it is on)."""
        use_mixup = self.mixup is not None and float(torch.rand(())) < self.hparams.mixup_prob
        if use_mixup:
            lam, perm = self.mixup.begin(ids.shape[0], self.hparams.mixup_alpha, ids.device)
            try:
                logits = self.net(ids)
            finally:
                self.mixup.end()
            return logits, lam * self._loss(logits, labels) + (1.0 - lam) * self._loss(logits, labels[perm])
        logits = self.net(ids)
        return logits, self._loss(logits, labels)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        ids, labels = batch
        logits, loss = self.training_logits_and_loss(ids, labels)
        # Epoch figures accumulate in metrics; the step loss is logged only when the logger writes:
        # a `self.log` per step costs as much as a whole step of a small model.
        self.train_acc.update(logits.detach(), class_ids(labels))
        self.train_loss.update(loss.detach())
        trainer = self._trainer
        if trainer is not None and batch_idx % max(1, trainer.log_every_n_steps) == 0:
            self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute(), sync_dist=True)
        self.log("train/acc", self.train_acc.compute(), prog_bar=True, sync_dist=True)
        self.train_loss.reset()
        self.train_acc.reset()

    def _log_per_class(self, stage: str, metric: MulticlassAccuracy) -> None:
        for name, value in zip(CLASSES, metric.compute(), strict=True):
            self.log(f"{stage}/acc_{name}", value, sync_dist=True)
        metric.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _batch_idx: int) -> None:
        ids, labels = batch
        logits = self.net(ids)
        self.val_acc.update(logits, labels)
        self.val_class_acc.update(logits, labels)
        self.log("val/loss", self._loss(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._log_per_class("val", self.val_class_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _batch_idx: int) -> None:
        ids, labels = batch
        logits = self.net(ids)
        self.test_acc.update(logits, labels)
        self.test_class_acc.update(logits, labels)
        self.log("test/acc", self.test_acc, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        self._log_per_class("test", self.test_class_acc)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.net.named_parameters():
            (no_decay if param.ndim < 2 or name.endswith(".pe") else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
            betas=tuple(self.hparams.betas),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.hparams.warmup_steps, max(1, total // 10))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(warmup, total, self.hparams.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
