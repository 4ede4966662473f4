"""Export time of the production `omfk` ensemble: strict trace + Core ML conversion + save +
parity of the saved artifact on 2,000 held-out samples (target <= 30 s on a 2-core CPU).

    python benchmarks/bench_export.py [--format neuralnetwork mlprogram] [--profile]

The network has the production shape and randomly initialised weights (export time does not
depend on the weights); validation rows come from the default synthetic data config.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from common import peak_rss_mb, save_result
from layoutnet.config import build
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.settings import ExportSettings

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def executor_batching(path: Path, ids) -> dict:
    """Reference-executor samples/s batched (as parity runs it) vs one sample at a time (baseline)."""
    from layoutnet.export.executor import load_executor

    executor = load_executor(path)
    rates = {}
    for name, chunk in (("per_sample", 1), ("batched", executor.chunk_size)):
        executor.chunk_size = chunk
        start = time.perf_counter()
        executor.predict(ids)
        rates[name] = len(ids) / (time.perf_counter() - start)
    return {
        "executor_batched_samples_per_s": round(rates["batched"], 1),
        "executor_per_sample_samples_per_s": round(rates["per_sample"], 1),
        "executor_batching_speedup": round(rates["batched"] / rates["per_sample"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", nargs="+", default=["neuralnetwork", "mlprogram", "mlprogram-fp16"])
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=omfk"])
    torch.manual_seed(0)
    net = build(cfg.model, "model").net.eval()
    start = time.perf_counter()
    datamodule = build(cfg.data, "data")
    datamodule.setup("validate")
    val_ids, val_labels = datamodule.val_tensors()
    data_seconds = time.perf_counter() - start
    results = {}
    for name in args.formats:
        fmt, _, precision = name.partition("-")
        settings = ExportSettings(format=fmt, precision=precision or "fp32", parity_samples=2000)
        with tempfile.TemporaryDirectory() as tmp:
            profiler = cProfile.Profile() if args.profile else None
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            result = export_model(net, settings, Path(tmp), ModelInfo(run_id="bench"), val_ids, val_labels)
            if profiler:
                profiler.disable()
                stream = io.StringIO()
                pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
                print(stream.getvalue())
            wall = time.perf_counter() - start
            executor_rates = executor_batching(Path(result.path), val_ids[:300].to(torch.int32).numpy())
        results[name] = {
            "wall_seconds": round(wall, 2),
            "timings": result.timings,
            "parity_samples": result.parity["samples"],
            "max_prob_diff": result.parity["max_prob_diff"],
            "size_mb": round(result.artifact_size_bytes / 1e6, 2),
            "meets_30s_target": wall <= 30.0,
            **executor_rates,
        }
        print(name, results[name])
    save_result(
        "export",
        {
            "model": "omfk (3,462,292 parameters)",
            "validation_set_seconds": round(data_seconds, 2),
            "results": results,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main()
