"""CNN + Transformer ensemble: both members see the same ids, and their logits are averaged
with learned sigmoid gates, sum_i sigmoid(w_i) * logits_i / sum_i sigmoid(w_i)."""

from __future__ import annotations

import torch
from torch import nn

from layoutnet.errors import ConfigError
from layoutnet.models.blocks import SigmoidWeightedAverage


class EnsembleClassifier(nn.Module):
    family = "ensemble"

    def __init__(
        self, cnn: nn.Module, transformer: nn.Module, combiner_init: tuple[float, float] = (0.6, 0.4)
    ):
        super().__init__()
        if cnn.seq_len != transformer.seq_len:
            raise ConfigError(
                "transformer.seq_len",
                transformer.seq_len,
                f"members must share one input length; cnn.seq_len={cnn.seq_len}",
            )
        if len(combiner_init) != 2:
            raise ConfigError(
                "combiner_init", list(combiner_init), "needs one weight per member (cnn, transformer)"
            )
        self.seq_len = cnn.seq_len
        self.cnn = cnn
        self.transformer = transformer
        self.combiner = SigmoidWeightedAverage(list(combiner_init))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.combiner([self.cnn(ids), self.transformer(ids)])
