"""Transformer encoder classifier.

    ids [B, L] -> embedding [B, L, D] (+ positional table of exactly L rows)
    -> N encoder layers (post- or pre-norm; optional key mask built from the padding ids)
    -> pool over length -> MLP head -> logits [B, classes]

With the `omfk` sizes (D 128, 8 heads, 4 post-norm layers, FF 512, GELU, no mask, plain mean,
head 64) it computes the app's "LayoutTransformer".
"""

from __future__ import annotations

import torch
from torch import nn

from layoutnet.contract import NUM_CLASSES, PAD_ID, SEQ_LEN, VOCAB_SIZE
from layoutnet.models.blocks import (
    POSITIONAL,
    EncoderLayer,
    MLPHead,
    SequencePool,
    check_choice,
    check_positive,
    padding_mask,
)

MASK_VALUE = -1e4


class TransformerClassifier(nn.Module):
    family = "transformer"

    def __init__(
        self,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        positional: str = "sinusoidal",
        norm_first: bool = False,
        attention_mask: bool = True,
        pooling: tuple[str, ...] = ("masked_mean",),
        head_dims: tuple[int, ...] = (64,),
        activation: str = "gelu",
        dropout: float = 0.1,
        embedding_padding_idx: bool = True,
        seq_len: int = SEQ_LEN,
        vocab_size: int = VOCAB_SIZE,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        check_positive("d_model", d_model)
        check_positive("num_layers", num_layers)
        check_choice("positional", positional, tuple(POSITIONAL))
        self.seq_len = seq_len
        self.attention_mask = attention_mask
        self.embedding = nn.Embedding(
            vocab_size, d_model, padding_idx=PAD_ID if embedding_padding_idx else None
        )
        self.pos_encoder = POSITIONAL[positional](d_model, seq_len)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, ff_dim, seq_len, dropout, activation, norm_first)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.pool = SequencePool(list(pooling))
        self.head = MLPHead(d_model * len(pooling), list(head_dims), num_classes, activation, dropout)

    def _key_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Additive mask [B, 1, 1, L] hiding padding keys. A row without any real character is
        left unmasked: with every key at -1e4, fp16 (score - 1e4) rounds all scores alike while fp32
        keeps their differences, so an exported fp16 model would disagree on empty input."""
        has_text = mask.amax(dim=1, keepdim=True)
        return ((1.0 - mask) * has_text * MASK_VALUE).reshape(-1, 1, 1, self.seq_len)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(ids)
        key_mask = self._key_mask(mask) if self.attention_mask else None
        x = self.pos_encoder(self.embedding(ids))
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.head(self.pool(self.final_norm(x), mask))
