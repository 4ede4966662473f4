"""Export time of the production `omfk` ensemble: strict trace + Core ML conversion + save +
parity of the saved artifact on 2,000 held-out samples (target <= 30 s on a 2-core CPU).

    python benchmarks/bench_export.py [--format neuralnetwork mlprogram] [--profile]
    python benchmarks/bench_export.py --executor-only [--repeats 3]   # executor vs trace + convert

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


def _trace_and_convert(net, fmt: str, path: Path) -> float:
    """Seconds for the work the executor's parity checks: strict trace, conversion, save."""
    import warnings

    import coremltools as ct
    import numpy as np

    start = time.perf_counter()
    traced = torch.jit.trace(net, torch.zeros(1, 20, dtype=torch.int32))
    fp16 = fmt.endswith("fp16")
    options = (
        dict(convert_to="neuralnetwork")
        if fmt == "neuralnetwork"
        else dict(
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS15,
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(
            traced,
            inputs=[ct.TensorType(name="input_ids", shape=(1, 20), dtype=np.int32)],
            outputs=[ct.TensorType(name="classLogits")],
            skip_model_load=True,
            **options,
        )
    model.save(str(path))
    return time.perf_counter() - start


def executor_vs_conversion(net, ids, formats: list[str], repeats: int, profile: bool) -> dict:
    """The executor's parity run (load + predict of the parity set, declared precision) against the
    trace + conversion + save it checks, measured alternately in one run after one warm-up of
    each; medians of `repeats`.
    Also the cost per sample of each precision mode on a few samples (true fp16 accumulates term
    by term, so it is far slower)."""
    import statistics

    from layoutnet.export.executor import PRECISIONS, load_executor

    out = {}
    for name in formats:
        suffix = "mlmodel" if name == "neuralnetwork" else "mlpackage"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model.{suffix}"
            convert_s, parity_s = [], []
            _trace_and_convert(net, name, path)  # warm-up: lazy imports of the converter, not counted
            load_executor(path).predict(ids[:4])
            for _ in range(repeats):
                convert_s.append(_trace_and_convert(net, name, path))
                profiler = cProfile.Profile() if profile else None
                start = time.perf_counter()
                if profiler:
                    profiler.enable()
                load_executor(path).predict(ids)
                if profiler:
                    profiler.disable()
                    stream = io.StringIO()
                    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(12)
                    print(stream.getvalue())
                parity_s.append(time.perf_counter() - start)
            per_sample = {}
            few = ids[:8]
            for precision in PRECISIONS:
                executor = load_executor(path, precision=precision)
                start = time.perf_counter()
                executor.predict(few)
                per_sample[precision] = round((time.perf_counter() - start) / len(few) * 1000, 1)
        conv, par = statistics.median(convert_s), statistics.median(parity_s)
        out[name] = {
            "trace_convert_save_s": round(conv, 2),
            "executor_parity_s": round(par, 2),
            "ratio_executor_to_conversion": round(par / conv, 2),
            "parity_samples": len(ids),
            "repeats": repeats,
            "ms_per_sample_by_precision": per_sample,
        }
        print(name, out[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", nargs="+", default=["neuralnetwork", "mlprogram", "mlprogram-fp16"])
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    parser.add_argument("--executor-only", action="store_true", help="only the executor vs conversion ratio")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=omfk"])
    torch.manual_seed(0)
    net = build(cfg.model, "model").net.eval()
    if args.executor_only:
        from layoutnet.export.parity import build_parity_samples

        datamodule = build(cfg.data, "data")
        datamodule.setup("validate")
        val_ids, val_labels = datamodule.val_tensors()
        ids = build_parity_samples(val_ids, val_labels, 2000, 200).ids
        results = executor_vs_conversion(net, ids, args.formats, args.repeats, args.profile)
        save_result("export_executor", {"model": "omfk (3,462,292 parameters)", "results": results})
        return
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
