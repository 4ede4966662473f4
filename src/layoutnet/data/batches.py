"""Batches as whole tensors, `(ids [B, 20], labels [B])`: nothing runs per sample.

Used by every data source; plain torch (no Lightning), so the synthetic source and `generate` load fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import IterableDataset

from layoutnet.data.synth import CHUNK_SIZE, Synthesizer

Batch = tuple[torch.Tensor, torch.Tensor]


def _shard() -> tuple[int, int]:
    """(rank, world size) of this process in a distributed run, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Batches(IterableDataset):
    """Base: an iterable of whole batches with a known length (Lightning reads it as the epoch length)."""

    def __init__(self, batch_size: int, rows: int):
        super().__init__()
        self.batch_size = batch_size
        self.rows = rows

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def _slices(self, ids: torch.Tensor, labels: torch.Tensor) -> Iterator[Batch]:
        for start in range(0, ids.shape[0], self.batch_size):
            targets = labels[start : start + self.batch_size]
            # class ids as int64; soft targets (float [B, classes]) as they are
            yield (
                ids[start : start + self.batch_size].long(),
                targets if targets.is_floating_point() else targets.long(),
            )


class FixedBatches(Batches):
    """Batches of fixed tensors in order. In a distributed run each rank takes every world-th row, padded
    by repeating the first rows so that every rank gets the same number of batches."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.ids, self.labels = ids, labels
        self._rank, self._world = _shard()
        super().__init__(batch_size, -(-ids.shape[0] // self._world))

    def __iter__(self) -> Iterator[Batch]:
        ids, labels = self.ids, self.labels
        if self._world > 1:
            index = torch.arange(self.rows * self._world) % max(1, ids.shape[0])
            index = index[self._rank :: self._world]
            ids, labels = ids[index], labels[index]
        yield from self._slices(ids, labels)


class ShuffledBatches(Batches):
    """Training batches of fixed tensors, in a new order each epoch (permutation seeded by seed + epoch)."""

    def __init__(
        self, ids: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, epoch: Callable[[], int]
    ):
        self.ids, self.labels = ids, labels
        self.seed, self.epoch = seed, epoch
        self._rank, self._world = _shard()
        super().__init__(batch_size, ids.shape[0] // self._world)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(
            self.ids.shape[0], generator=torch.Generator().manual_seed(self.seed + self.epoch())
        )
        mine = order[self._rank :: self._world][: self.rows]
        for start in range(0, mine.shape[0], self.batch_size):
            index = mine[start : start + self.batch_size]
            yield self.ids[index], self.labels[index]


class SyntheticBatches(Batches):
    """Training batches of `size` fresh samples per epoch, stream `seed + epoch`, made a chunk at a time.

    In a distributed run rank r takes rows r, r + world, ... of the stream (the same count on each rank).
    """

    def __init__(self, synth: Synthesizer, size: int, batch_size: int, seed: int, epoch: Callable[[], int]):
        self.synth, self.size = synth, size
        self.seed, self.epoch = seed, epoch
        self._rank, self._world = _shard()
        super().__init__(batch_size, size // self._world)

    def __iter__(self) -> Iterator[Batch]:
        stream = self.seed + self.epoch()
        pending_ids: list[torch.Tensor] = []
        pending_labels: list[torch.Tensor] = []
        held = 0
        left = self.rows
        chunk_rows = self.rows * self._world
        for index, start in enumerate(range(0, chunk_rows, CHUNK_SIZE)):
            ids, labels = self.synth.generate_chunk(stream, index, min(CHUNK_SIZE, chunk_rows - start))
            if self._world > 1:
                first = (self._rank - start) % self._world
                ids, labels = ids[first :: self._world], labels[first :: self._world]
            ids, labels = ids[:left], labels[:left]
            left -= ids.shape[0]
            pending_ids.append(ids)
            pending_labels.append(labels)
            held += ids.shape[0]
            if held >= self.batch_size or left == 0:
                all_ids, all_labels = torch.cat(pending_ids), torch.cat(pending_labels)
                cut = all_ids.shape[0] if left == 0 else (held // self.batch_size) * self.batch_size
                yield from self._slices(all_ids[:cut], all_labels[:cut])
                pending_ids, pending_labels = [all_ids[cut:]], [all_labels[cut:]]
                held -= cut
            if left == 0:
                break
