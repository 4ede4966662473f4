"""Throughput and memory of the synthetic data pipeline on one CPU core.

    python benchmarks/bench_data.py [--samples 5000000] [--json result.json]

Prints samples/s of the synthesizer (one thread), the time and peak RSS of making 5M samples
(kept as uint8: 100 MB of ids), the rate of training batches from the data module, and one JSON line.
Targets: >= 2,000,000 samples/s; 5M samples in a few seconds and a few hundred MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch


def python_baseline(languages: dict, samples: int) -> float:
    """Samples/s of the obvious per-sample pipeline (pick words, re-type the string with
    LayoutSet.convert, encode), without augmentations: the baseline the vectorised path replaces."""
    import itertools
    import random

    from layoutnet.contract import CLASS_TO_ID, class_name, encode
    from layoutnet.data.words import load_words
    from layoutnet.layouts import LayoutSet

    layouts = LayoutSet.builtin()
    lists = {code: load_words(code, spec["vocab_size"], layouts=layouts) for code, spec in languages.items()}
    cumulative = {code: list(itertools.accumulate(wl.weights)) for code, wl in lists.items()}
    codes = list(lists)
    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(samples):
        meant = rng.choice(codes)
        active = meant if rng.random() < 0.5 else rng.choice([c for c in codes if c != meant])
        count = rng.choices((1, 2, 3, 4), weights=(0.6, 0.2, 0.12, 0.08))[0]
        text = " ".join(rng.choices(lists[meant].words, cum_weights=cumulative[meant], k=count))
        if active != meant:
            text = layouts.convert(text, meant, active)
        encode(text)
        CLASS_TO_ID[class_name(meant, active)]
    return samples / (time.perf_counter() - start)


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5_000_000, help="size of the timed generate() call")
    parser.add_argument("--rate-samples", type=int, default=2_000_000, help="samples streamed for the rate")
    parser.add_argument("--vocab-size", type=int, default=30_000, help="words per language")
    parser.add_argument("--json", type=Path, default=None, help="also write the result line to this file")
    args = parser.parse_args()

    torch.set_num_threads(1)
    from dataclasses import asdict

    from layoutnet.data.settings import default_languages
    from layoutnet.data.synth import SynthConfig, Synthesizer

    languages = {
        code: {**asdict(spec), "vocab_size": args.vocab_size} for code, spec in default_languages().items()
    }
    start = time.perf_counter()
    synth = Synthesizer(SynthConfig.from_options(languages=languages))
    setup_s = time.perf_counter() - start
    base_rss = rss_mb()

    synth.generate(100_000, seed=123)  # warm-up
    start = time.perf_counter()
    streamed = 0
    for _, ids, _labels in synth.iter_chunks(args.rate_samples, seed=1):
        streamed += ids.shape[0]
    stream_s = time.perf_counter() - start
    rate = streamed / stream_s

    start = time.perf_counter()
    ids, labels = synth.generate(args.samples, seed=2, dtype=torch.uint8)
    gen_s = time.perf_counter() - start
    after_rss = rss_mb()
    peak_rss = peak_rss_mb()
    del ids, labels

    baseline = python_baseline(languages, 50_000)

    from layoutnet.data.datamodule import LayoutDataModule  # Lightning only now: not in the RSS above

    datamodule = LayoutDataModule(languages=languages, train_size=1_000_000, val_size=5000, test_size=5000)
    datamodule.setup("fit")
    start = time.perf_counter()
    rows = sum(batch[0].shape[0] for batch in datamodule.train_dataloader())
    loader_s = time.perf_counter() - start

    result = {
        "benchmark": "bench_data",
        "threads": torch.get_num_threads(),
        "vocab_per_language": args.vocab_size,
        "setup_s": round(setup_s, 2),
        "samples_per_s": round(rate),
        "python_baseline_samples_per_s": round(baseline),
        "speedup_over_python_baseline": round(rate / baseline, 1),
        "generate_samples": args.samples,
        "generate_s": round(gen_s, 3),
        "generate_samples_per_s": round(args.samples / gen_s),
        "rss_before_mb": round(base_rss, 1),
        "rss_after_generate_mb": round(after_rss, 1),
        "peak_rss_mb": round(peak_rss, 1),
        "train_loader_samples_per_s": round(rows / loader_s),
        "meets_rate_target": rate >= 2_000_000,
    }
    print(f"synthesizer: {rate:,.0f} samples/s on {torch.get_num_threads()} thread (setup {setup_s:.1f} s)")
    print(f"per-sample Python baseline: {baseline:,.0f} samples/s (vectorised is {rate / baseline:.0f}x)")
    print(
        f"generate({args.samples:,}): {gen_s:.2f} s, RSS {base_rss:.0f} -> {after_rss:.0f} MB, "
        f"peak {result['peak_rss_mb']:.0f} MB"
    )
    print(
        f"train loader: {result['train_loader_samples_per_s']:,} samples/s "
        f"in batches of {datamodule.batch_size}"
    )
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
