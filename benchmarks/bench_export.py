"""Export time of the production `omfk` ensemble: strict trace + Core ML conversion + save +
parity of the saved artifact on 2,000 held-out samples (target <= 30 s on a 2-core CPU).

    python benchmarks/bench_export.py [--format neuralnetwork mlprogram] [--profile]
    python benchmarks/bench_export.py --executor-only [--repeats 3] [--profile]  # executor vs trace + convert

The network has the production shape and randomly initialised weights (export time does not
depend on the weights); validation rows come from the default synthetic data config.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
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


_PROFILE_GROUPS = {
    "matrix products (gemm)": ("gemm", "_rowwise"),
    "im2col copies (reshape)": ("<method 'reshape' of 'numpy.ndarray' objects>",),
    "GELU": ("_gelu_block", "_half_erfc_of_scaled", "_select"),
    "fp16 rounding": ("_round_fp16_block", "_accumulate16", "gemm16"),
}


def _profile_shares(profiler: cProfile.Profile) -> dict[str, float]:
    """Share of the profiled time (own time per function) by kind of work."""
    stats = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values()) or 1.0
    shares = dict.fromkeys(_PROFILE_GROUPS, 0.0)
    for (_, _, name), entry in stats.items():
        for group, names in _PROFILE_GROUPS.items():
            if name in names:
                shares[group] += entry[2]
                break
    shares = {k: round(100 * v / total, 1) for k, v in shares.items() if v}
    shares["rest"] = round(100 - sum(shares.values()), 1)
    return shares


def _timed_parity(path: Path, precision: str, rows, profile: bool = False):
    """Seconds to load the artifact at `precision` and predict `rows` (and the profile shares)."""
    from layoutnet.export.executor import load_executor

    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    load_executor(path, precision=precision).predict(rows)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(12)
        print(stream.getvalue())
        return seconds, _profile_shares(profiler)
    return seconds, None


def executor_vs_conversion(
    net, samples, formats: list[str], repeats: int, profile: bool, fp16_rows: int, export_parity: bool
) -> dict:
    """The executor's parity run against the trace + conversion + save it checks, measured
    alternately in one run after one warm-up of each; medians of `repeats`:
    - declared: load + predict every parity row at the file's declared precision;
    - export parity (`export_parity`): what an export runs off a Mac (`check_parity`): fp32 and fp16
      storage on every row, true fp16 arithmetic on `fp16_rows` rows spread over them, each mode
      with its own load.
    ms/sample of each precision mode comes from those runs (fp16 from its own row subset)."""
    import statistics

    from layoutnet.export.executor import PRECISIONS, load_executor

    ids = samples.ids
    spread = samples.spread(fp16_rows)
    out = {}
    for name in formats:
        suffix = "mlmodel" if name == "neuralnetwork" else "mlpackage"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model.{suffix}"
            _trace_and_convert(net, name, path)  # warm-up: lazy imports of the converter, not counted
            load_executor(path).predict(ids[:4])
            convert_s, declared_s, export_s, shares = [], [], [], None
            modes: dict[str, list[float]] = {p: [] for p in PRECISIONS}
            for rep in range(repeats):
                convert_s.append(_trace_and_convert(net, name, path))
                seconds, got = _timed_parity(path, "declared", ids, profile and rep == 0)
                declared_s.append(seconds)
                shares = got or shares
                modes["declared"].append(seconds / len(ids))
                if export_parity:
                    total = 0.0
                    for precision in ("fp32", "fp16_storage", "fp16"):
                        rows = ids[spread] if precision == "fp16" else ids
                        seconds, _ = _timed_parity(path, precision, rows)
                        modes[precision].append(seconds / len(rows))
                        total += seconds
                    export_s.append(total)
            if not export_parity:  # a few rows per mode, for the per-sample figures
                few = ids[: min(32, len(ids))]
                for precision in ("fp32", "fp16_storage", "fp16"):
                    seconds, _ = _timed_parity(path, precision, few)
                    modes[precision].append(seconds / len(few))
        conv, par = statistics.median(convert_s), statistics.median(declared_s)
        result = {
            "trace_convert_save_s": round(conv, 2),
            "executor_parity_s": round(par, 2),
            "ratio_executor_to_conversion": round(par / conv, 2),
            "parity_samples": len(ids),
            "repeats": repeats,
            "ms_per_sample_by_precision": {
                p: round(statistics.median(v) * 1000, 1) for p, v in modes.items() if v
            },
        }
        if export_parity:
            result["export_parity_s"] = round(statistics.median(export_s), 2)
            result["ratio_export_parity_to_conversion"] = round(statistics.median(export_s) / conv, 2)
            result["fp16_arithmetic_rows"] = len(spread)
        if shares:
            result["declared_profile_percent"] = shares
        out[name] = result
        print(name, result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", nargs="+", default=["neuralnetwork", "mlprogram", "mlprogram-fp16"])
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    parser.add_argument("--executor-only", action="store_true", help="only the executor vs conversion ratio")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fp16-rows", type=int, default=ExportSettings.fp16_arithmetic_samples)
    parser.add_argument(
        "--no-export-parity", action="store_true", help="executor-only: declared precision only (faster)"
    )
    parser.add_argument("--out", default="export_executor", help="executor-only: result file name")
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
        samples = build_parity_samples(val_ids, val_labels, 2000, 200)
        results = executor_vs_conversion(
            net, samples, args.formats, args.repeats, args.profile, args.fp16_rows, not args.no_export_parity
        )
        from threadpoolctl import threadpool_info

        import layoutnet

        save_result(
            args.out,
            {
                "model": "omfk (3,462,292 parameters)",
                "layoutnet": str(Path(layoutnet.__file__).parent),
                "blas_threads": [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"],
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                "results": results,
            },
        )
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
