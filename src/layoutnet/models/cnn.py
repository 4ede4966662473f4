"""Convolutional classifiers.

`CNNClassifier` is the multi-scale CNN (the OMFK "V2" shape when built with the `omfk` sizes):

    ids [B, L] -> embedding [B, L, E] -> [B, E, L]
    -> multi-scale conv (one branch per kernel, activation each, concatenated) -> BatchNorm
    -> mixing multi-scale conv (optional) -> BatchNorm
    -> deep conv -> activation -> BatchNorm
    -> pool over length (max / mean / masked mean, concatenated) -> MLP head -> logits [B, classes]

`CompactCNN` is a small stack of conv -> activation -> optional max-pool, then a mean over the
length and one linear layer (the app's first model, "v1", has this shape).
"""

from __future__ import annotations

import torch
from torch import nn

from layoutnet.contract import NUM_CLASSES, PAD_ID, SEQ_LEN, VOCAB_SIZE
from layoutnet.errors import ConfigError
from layoutnet.models.blocks import (
    FixedLengthConv1d,
    MLPHead,
    MultiScaleConv1d,
    SequencePool,
    check_positive,
    make_activation,
    padding_mask,
)


class CNNClassifier(nn.Module):
    family = "cnn"

    def __init__(
        self,
        embed_dim: int = 64,
        branch_kernels: tuple[int, ...] = (2, 3, 4, 5),
        branch_channels: int = 48,
        mix_kernels: tuple[int, ...] = (3, 5),
        deep_channels: int = 192,
        deep_kernel: int = 3,
        padding: str = "same",
        pooling: tuple[str, ...] = ("max", "mean"),
        head_dims: tuple[int, ...] = (192, 96),
        activation: str = "gelu",
        dropout: float = 0.1,
        embedding_padding_idx: bool = True,
        seq_len: int = SEQ_LEN,
        vocab_size: int = VOCAB_SIZE,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        for key, value in (
            ("embed_dim", embed_dim),
            ("branch_channels", branch_channels),
            ("deep_channels", deep_channels),
        ):
            check_positive(key, value)
        self.seq_len = seq_len
        self.embedding = nn.Embedding(
            vocab_size, embed_dim, padding_idx=PAD_ID if embedding_padding_idx else None
        )
        self.branches = MultiScaleConv1d(
            embed_dim,
            branch_channels,
            list(branch_kernels),
            padding,
            seq_len,
            activation,
            key="branch_kernels",
        )
        width = self.branches.out_channels
        self.bn1 = nn.BatchNorm1d(width)
        if mix_kernels:
            self.mix = MultiScaleConv1d(
                width, width, list(mix_kernels), padding, seq_len, activation, key="mix_kernels"
            )
            width = self.mix.out_channels
            self.bn2 = nn.BatchNorm1d(width)
        else:
            self.mix = None
        try:
            self.deep = FixedLengthConv1d(width, deep_channels, deep_kernel, padding, seq_len)
        except ConfigError as exc:
            raise ConfigError("deep_kernel", deep_kernel, exc.problem, exc.allowed) from None
        self.deep_act = make_activation(activation)
        self.bn3 = nn.BatchNorm1d(deep_channels)
        self.pool = SequencePool(list(pooling))
        self.head = MLPHead(deep_channels * len(pooling), list(head_dims), num_classes, activation, dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)
        x = self.bn1(self.branches(x))
        if self.mix is not None:
            x = self.bn2(self.mix(x))
        x = self.bn3(self.deep_act(self.deep(x)))
        return self.head(self.pool(x.transpose(1, 2), padding_mask(ids)))


class CompactCNN(nn.Module):
    family = "compact_cnn"

    def __init__(
        self,
        embed_dim: int = 32,
        channels: tuple[int, ...] = (64, 128),
        kernel_size: int = 3,
        pools: tuple[int, ...] = (2, 1),
        padding: str = "same",
        activation: str = "relu",
        seq_len: int = SEQ_LEN,
        vocab_size: int = VOCAB_SIZE,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        if len(pools) != len(channels):
            raise ConfigError(
                "pools",
                list(pools),
                f"needs one entry per conv layer ({len(channels)})",
                "1 (no pooling) or a max-pool size per layer",
            )
        check_positive("embed_dim", embed_dim)
        self.seq_len = seq_len
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        layers: list[nn.Module] = []
        length, width = seq_len, embed_dim
        for i, (out, pool) in enumerate(zip(channels, pools, strict=True)):
            check_positive(f"channels[{i}]", out)
            check_positive(f"pools[{i}]", pool)
            layers += [
                FixedLengthConv1d(width, out, kernel_size, padding, length),
                make_activation(activation),
            ]
            if pool > 1:
                if length % pool:
                    raise ConfigError(
                        f"pools[{i}]", pool, f"does not divide the length {length} at that layer"
                    )
                layers.append(nn.MaxPool1d(pool))
                length //= pool
            width = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.features(self.embedding(ids).transpose(1, 2))
        return self.fc(x.mean(dim=2))
