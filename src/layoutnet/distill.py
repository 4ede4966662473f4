"""Distillation: train a small student network on a teacher's soft labels (`+experiment=distill`).

The loss is `alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)`, with both
distributions softened at temperature T (Hinton et al. 2015). The teacher is any model file layoutnet
opens (a layoutnet `.ckpt` or a legacy OMFK `.pth`); it is kept out of the student's checkpoint, its
optimizer and its export: what the run saves and exports is the student alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from layoutnet.contract import SEQ_LEN
from layoutnet.errors import ConfigError
from layoutnet.module import LayoutClassifierModule
from layoutnet.modulesettings import DistillationSettings, module_defaults


def open_teacher(path: str | Path, legacy: str | None = None) -> nn.Module:
    """The teacher network of a model file, frozen and in eval mode (through the one model-file door)."""
    from layoutnet.modelfile import open_model

    net = open_model(Path(path).expanduser(), legacy=legacy).net
    net.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    return net


class DistillationModule(LayoutClassifierModule):
    """The usual module (same metrics, checkpoint and export of `net`) with a teacher in the loss."""

    SETTINGS = DistillationSettings

    def __init__(self, net: Mapping[str, Any], **settings: Any):
        values = {**module_defaults(DistillationSettings), **settings}
        teacher_ckpt, teacher_legacy = values["teacher_ckpt"], values["teacher_legacy"]
        temperature, alpha = values["temperature"], values["alpha"]
        if not teacher_ckpt:
            raise ConfigError("teacher_ckpt", teacher_ckpt, "required: teacher_ckpt=<.ckpt or legacy .pth>")
        if not isinstance(temperature, int | float) or temperature <= 0:
            raise ConfigError("temperature", temperature, "must be a number > 0")
        if not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
            raise ConfigError("alpha", alpha, "must be a weight in [0, 1]")
        super().__init__(net, **settings)
        # Not a submodule: the teacher is neither trained nor saved in the student's checkpoint.
        object.__setattr__(self, "teacher", open_teacher(teacher_ckpt, teacher_legacy))

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    def _distill_loss(self, logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = float(self.hparams.temperature)
        with torch.no_grad():
            soft = F.log_softmax(self.teacher(ids).float() / t, dim=-1)
        kd = F.kl_div(F.log_softmax(logits / t, dim=-1), soft, log_target=True, reduction="batchmean")
        alpha = float(self.hparams.alpha)
        return alpha * t * t * kd + (1.0 - alpha) * self._loss(logits, labels)

    def training_logits_and_loss(
        self, ids: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(ids)
        return logits, self._distill_loss(logits, ids, labels)


def multiply_adds(net: nn.Module, length: int = SEQ_LEN) -> int:
    """Multiply-adds of one forward pass on one full-length input (convolutions, linear layers and
    attention; embeddings, norms and activations count as free)."""
    total = 0

    def conv(module: nn.Conv1d, _inputs, output) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups) * module.kernel_size[0]
        total += output[0].numel() * per_output

    def linear(module: nn.Linear, _inputs, output) -> None:
        nonlocal total
        total += output[0].numel() * module.in_features

    def attention(module: nn.MultiheadAttention, inputs, _output) -> None:
        nonlocal total
        query = inputs[0]
        tokens = query.shape[1] if module.batch_first else query.shape[0]
        d = module.embed_dim
        # q, k, v and output projections, then scores and the weighted sum over tokens.
        total += 4 * tokens * d * d + 2 * tokens * tokens * d

    handles = []
    for module in net.modules():
        if isinstance(module, nn.Conv1d):
            handles.append(module.register_forward_hook(conv))
        elif isinstance(module, nn.Linear) and not _inside_attention(net, module):
            handles.append(module.register_forward_hook(linear))
        elif isinstance(module, nn.MultiheadAttention):
            handles.append(module.register_forward_hook(attention))
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.ones((1, length), dtype=torch.long))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return int(total)


def _inside_attention(net: nn.Module, linear: nn.Linear) -> bool:
    return any(
        isinstance(module, nn.MultiheadAttention) and any(child is linear for child in module.modules())
        for module in net.modules()
    )
