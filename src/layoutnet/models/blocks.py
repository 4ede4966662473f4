"""Trace-safe building blocks.

Every block here has a fixed sequence length decided at construction, reads no tensor shape
into Python and branches on no tensor value, so `torch.jit.trace` records the same graph for
every input and Core ML gets a static program. Padding and masks are tensor arithmetic.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from layoutnet.contract import PAD_ID
from layoutnet.errors import ConfigError

PADDING_MODES = ("same", "crop")
POOLINGS = ("mean", "max", "masked_mean")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def make_activation(name: str, key: str = "activation") -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(key, name, "unknown activation", ACTIVATIONS)
    return ACTIVATIONS[name]()


def check_positive(key: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(key, value, "must be a positive integer")


def check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "unknown value", allowed)


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """1.0 at real characters, 0.0 at padding: float [B, L]."""
    return (ids != PAD_ID).to(torch.float32)


class FixedLengthConv1d(nn.Module):
    """Conv1d over [B, C, L] whose output length is always `seq_len`.

    `same`: constant asymmetric zero padding (left (k-1)//2, right k//2), decided here, so odd
    and even kernels both keep the length. `crop`: pad k//2 on both sides, then keep the first
    `seq_len` positions (the OMFK app's original variant; even kernels see one more step of the
    right context).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: str, seq_len: int):
        super().__init__()
        check_positive("kernel_size", kernel_size)
        check_choice("padding", padding, PADDING_MODES)
        if kernel_size > seq_len:
            raise ConfigError(
                "kernel_size", kernel_size, f"longer than the input length {seq_len}", f"1..{seq_len}"
            )
        self.seq_len = seq_len
        self.mode = padding
        if padding == "same":
            self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
            conv_padding = 0
        else:
            self.pad = (0, 0)
            conv_padding = kernel_size // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=conv_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "same":
            return self.conv(F.pad(x, self.pad))
        return self.conv(x)[:, :, : self.seq_len]


class MultiScaleConv1d(nn.Module):
    """Parallel fixed-length convolutions of several kernel sizes, each followed by the
    activation, concatenated along channels: [B, C_in, L] -> [B, len(kernels) * C_out, L]."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernels: list[int],
        padding: str,
        seq_len: int,
        activation: str = "gelu",
        key: str = "kernels",
    ):
        super().__init__()
        if not kernels:
            raise ConfigError(key, kernels, "needs at least one kernel size")
        try:
            self.branches = nn.ModuleList(
                FixedLengthConv1d(in_channels, channels, k, padding, seq_len) for k in kernels
            )
        except ConfigError as exc:
            if exc.key != "kernel_size":
                raise
            raise ConfigError(key, list(kernels), exc.problem, exc.allowed) from None

        self.act = make_activation(activation)
        self.out_channels = channels * len(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.act(branch(x)) for branch in self.branches], dim=1)


class SinusoidalPositions(nn.Module):
    """Adds a stored [1, L, D] table of sine/cosine encodings (exactly the input length)."""

    def __init__(self, dim: int, seq_len: int):
        super().__init__()
        position = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(1, seq_len, dim)
        table[0, :, 0::2] = torch.sin(position * freq)
        table[0, :, 1::2] = torch.cos(position * freq[: dim // 2])
        self.register_buffer("pe", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe


class LearnedPositions(nn.Module):
    """Adds a learned [1, L, D] table (exactly the input length)."""

    def __init__(self, dim: int, seq_len: int):
        super().__init__()
        self.pe = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe


POSITIONAL = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}


class SelfAttention(nn.Module):
    """Multi-head self-attention from plain matmul and softmax.

    Projections are laid out like `nn.MultiheadAttention` (one `in_proj` producing q, k, v in
    that order, then `out_proj`). An optional additive key mask [B, 1, 1, L] (0 keep, large
    negative drop) comes from the caller as a tensor; -1e4 rather than -inf keeps an all-padding
    row finite and fits in fp16.
    """

    def __init__(self, dim: int, num_heads: int, seq_len: int, dropout: float = 0.0):
        super().__init__()
        check_positive("num_heads", num_heads)
        if dim % num_heads:
            divisors = [h for h in range(1, dim + 1) if dim % h == 0]
            raise ConfigError(
                "num_heads", num_heads, f"d_model={dim} is not divisible by num_heads", divisors
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.seq_len = seq_len
        self.dim = dim
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.seq_len, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.in_proj(x).split(self.dim, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if key_mask is not None:
            scores = scores + key_mask
        weights = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(weights, v).transpose(1, 2).reshape(-1, self.seq_len, self.dim)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """Transformer encoder layer, post-norm (like `nn.TransformerEncoderLayer` with
    norm_first=False) or pre-norm."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ff_dim: int,
        seq_len: int,
        dropout: float = 0.1,
        activation: str = "gelu",
        norm_first: bool = False,
    ):
        super().__init__()
        check_positive("ff_dim", ff_dim)
        self.self_attn = SelfAttention(dim, num_heads, seq_len, dropout)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self.self_attn(self.norm1(x), key_mask))
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self.dropout(self.self_attn(x, key_mask)))
        return self.norm2(x + self._feed_forward(x))


class SequencePool(nn.Module):
    """Pools [B, L, D] features over the length with one or more of mean, max and masked mean
    (padding excluded); results are concatenated: [B, len(kinds) * D]."""

    def __init__(self, kinds: list[str]):
        super().__init__()
        if not kinds:
            raise ConfigError("pooling", kinds, "needs at least one pooling", POOLINGS)
        for kind in kinds:
            check_choice("pooling", kind, POOLINGS)
        self.kinds = list(kinds)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = []
        for kind in self.kinds:
            if kind == "mean":
                pooled.append(x.mean(dim=1))
            elif kind == "max":
                pooled.append(x.amax(dim=1))
            else:
                weights = mask.unsqueeze(-1)
                total = (x * weights).sum(dim=1)
                pooled.append(total / weights.sum(dim=1).clamp(min=1.0))
        return torch.cat(pooled, dim=-1)


class MLPHead(nn.Module):
    """Linear layers with activation and dropout between them; the last maps to the classes.
    Layers are `layers.0`, `layers.1`, ... in order (legacy files' `fc1`, `fc2`, ... load onto them)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: list[int],
        num_classes: int,
        activation: str = "gelu",
        dropout: float = 0.0,
    ):
        super().__init__()
        dims = [in_dim, *hidden_dims, num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.dropout(self.act(layer(x)))
        return self.layers[-1](x)


class SigmoidWeightedAverage(nn.Module):
    """Ensemble combiner: sum_i sigmoid(w_i) * logits_i / sum_i sigmoid(w_i), w learned."""

    def __init__(self, init: list[float]):
        super().__init__()
        if not init:
            raise ConfigError("combiner_init", init, "needs one initial weight per member")
        self.weights = nn.Parameter(torch.tensor([float(w) for w in init]))

    def forward(self, member_logits: list[torch.Tensor]) -> torch.Tensor:
        gates = torch.sigmoid(self.weights)
        total = member_logits[0] * gates[0]
        for i in range(1, len(member_logits)):
            total = total + member_logits[i] * gates[i]
        return total / gates.sum()
