"""Training-step throughput: the LightningModule path vs a bare PyTorch loop.

Same network, same batch, same optimizer and schedule; both run `--steps` timed steps after
`--warmup` untimed ones, alternating which goes first, and the best of `--repeats` is kept.
The ratio lightning/bare is the overhead figure (target >= 0.95).

    python benchmarks/bench_train_step.py --models smoke default omfk
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, IterableDataset

from common import save_result
from layoutnet.config import build
from layoutnet.module import warmup_cosine

CONF = str(Path(__file__).resolve().parents[1] / "conf")
MODELS = {"smoke": ["+experiment=smoke"], "default": [], "omfk": ["+experiment=omfk"]}


class RepeatBatch(IterableDataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, count: int):
        self.ids, self.labels, self.count = ids, labels, count

    def __iter__(self):
        for _ in range(self.count):
            yield self.ids, self.labels


class StepTimer(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = 0.0
        self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def make_module(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return build(cfg.model, "model"), cfg


def fixed_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded batch of ids (12 characters, then padding) and labels, the same for every benchmark."""
    torch.manual_seed(0)
    ids = torch.randint(0, 189, (batch, 20))
    ids[:, 12:] = 0
    return ids, torch.randint(0, 9, (batch,))


def bare_loop(module, ids, labels, warmup: int, steps: int) -> float:
    net = module.net.train()
    hp = module.hparams
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas)
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(10, warmup + steps, hp.min_lr_ratio)
    )
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        logits = net(ids)
        loss = F.cross_entropy(logits, labels, label_smoothing=hp.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return steps / (time.perf_counter() - start)


def lightning_loop(module, ids, labels, warmup: int, steps: int) -> float:
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        callbacks=[timer],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    loader = DataLoader(RepeatBatch(ids, labels, warmup + steps), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    return steps / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for name in args.models:
        _, cfg = make_module(MODELS[name])
        batch = int(cfg.data.batch_size)
        ids, labels = fixed_batch(batch)
        bare, light = [], []
        for repeat in range(args.repeats):
            order = [("bare", bare_loop), ("lightning", lightning_loop)]
            for kind, fn in order if repeat % 2 == 0 else order[::-1]:
                torch.manual_seed(0)
                module, _ = make_module(MODELS[name])
                rate = fn(module, ids, labels, args.warmup, args.steps)
                (bare if kind == "bare" else light).append(rate)
        results[name] = {
            "batch_size": batch,
            "parameters": sum(p.numel() for p in module.net.parameters()),
            "bare_steps_per_s": round(max(bare), 3),
            "lightning_steps_per_s": round(max(light), 3),
            "bare_samples_per_s": round(max(bare) * batch, 1),
            "lightning_samples_per_s": round(max(light) * batch, 1),
            "ratio_lightning_over_bare": round(max(light) / max(bare), 4),
            "all_bare": [round(r, 3) for r in bare],
            "all_lightning": [round(r, 3) for r in light],
        }
        print(name, results[name])
    save_result(
        "train_step",
        {"steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "results": results},
    )


if __name__ == "__main__":
    main()
