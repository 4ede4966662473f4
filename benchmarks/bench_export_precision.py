"""Parity margins of exported artifacts at the precisions a device may run them, and the size /
parity / accuracy of each weight-compression level, on briefly trained networks.

    python benchmarks/bench_export_precision.py [--steps 1500] [--families cnn transformer ensemble]
        [--compress ensemble omfk] [--omfk-steps 300] [--fp16-rows 256]

Each network (conf/model/<family>.yaml at its configured size) is trained for `--steps` Adam steps
on the smoke-sized synthetic data (conf/data/tiny.yaml, batch 256): "trained" enough for its
probabilities to be confident, which is where fp16 errors show; it is not a production model. Every
artifact is checked as an export checks it: the reference executor at fp32, fp16 storage and fp16
arithmetic on the held-out rows + random + edge-case inputs (fp16 arithmetic on `--fp16-rows` spread
rows + the edge cases, as `export.fp16_arithmetic_samples`); accuracy on the labelled held-out rows.
Rows are merged into benchmarks/results/export_precision.json after each export, so runs of
different families add up (and a cut run keeps what it measured).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from common import load_result, save_result
from layoutnet.config import build
from layoutnet.data.datamodule import as_datamodule
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.result import ExportFailure
from layoutnet.export.settings import ExportSettings

CONF = str(Path(__file__).resolve().parents[1] / "conf")
FORMATS = {
    "neuralnetwork": {"format": "neuralnetwork"},
    "mlprogram": {"format": "mlprogram"},
    "mlprogram-fp16": {"format": "mlprogram", "precision": "fp16"},
}
LEVELS = ("none", "int8", "palettize6", "palettize4")


def trained_net(model: str, steps: int, seed: int = 0):
    # The omfk experiment sets a GPU-sized batch and data set; every network here trains on tiny's.
    overrides = (
        ["+experiment=omfk", "data=tiny", "trainer=default", "data.batch_size=256", "data.train_size=4096"]
        if model == "omfk"
        else [f"model={model}", "data=tiny"]
    )
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(seed)
    net = build(cfg.model, "model").net
    datamodule = as_datamodule(build(cfg.data, "data"))
    datamodule.setup("fit")
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.01)
    net.train()
    done, start = 0, time.perf_counter()
    while done < steps:
        for ids, labels in datamodule.train_dataloader():
            loss = F.cross_entropy(net(ids), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
    seconds = time.perf_counter() - start
    val_ids, val_labels = datamodule.val_tensors()
    return (
        net.eval(),
        val_ids,
        val_labels,
        {"steps": steps, "train_seconds": round(seconds, 1), "last_loss": loss.item()},
    )


def export_figures(net, val_ids, val_labels, fp16_rows: int, **settings) -> dict:
    full = ExportSettings(
        parity_samples=1024,
        app_precision="fp32",
        tolerance=1.0,
        fp16_arithmetic_samples=fp16_rows,
        **settings,
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = export_model(
                net, full, Path(tmp) / "export", ModelInfo(run_id="bench"), val_ids, val_labels
            )
        except ExportFailure as failure:
            return {"error": str(failure)[:300]}
    return {
        "size_bytes": result.artifact_size_bytes,
        "torch_accuracy": result.accuracy["torch"],
        "artifact_accuracy": result.accuracy["artifact"],
        **{
            f"{precision}_max_prob_diff": figures["max_prob_diff"]
            for precision, figures in result.parity_by_precision.items()
        },
        **{
            f"{precision}_argmax_agreement": figures["argmax_agreement"]
            for precision, figures in result.parity_by_precision.items()
        },
        "seconds": result.timings.get("total"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--families", nargs="*", default=["cnn", "transformer", "ensemble"])
    parser.add_argument("--compress", nargs="*", default=["ensemble", "omfk"])
    parser.add_argument("--omfk-steps", type=int, default=300)
    parser.add_argument(
        "--fp16-rows",
        type=int,
        default=ExportSettings.fp16_arithmetic_samples,
        help="rows checked at fp16 arithmetic (export.fp16_arithmetic_samples; edge cases are added)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    precision_rows, compression_rows, training = {}, {}, {}
    nets = {}
    for family in dict.fromkeys(args.families + args.compress):
        steps = args.omfk_steps if family == "omfk" else args.steps
        net, val_ids, val_labels, info = trained_net(family, steps)
        nets[family] = (net, val_ids, val_labels)
        training[family] = info
        print(family, info, flush=True)
    run = {"when": time.strftime("%Y-%m-%d %H:%M"), "fp16_arithmetic_rows": args.fp16_rows}
    for family in args.families:
        net, val_ids, val_labels = nets[family]
        for name, settings in FORMATS.items():
            precision_rows[f"{family}/{name}"] = row = export_figures(
                net, val_ids, val_labels, args.fp16_rows, **settings
            )
            print(family, name, row, flush=True)
            save(training, precision_rows, compression_rows, run)
    for family in args.compress:
        net, val_ids, val_labels = nets[family]
        for level in LEVELS:
            if level == "none" and f"{family}/mlprogram" in precision_rows:  # the same export
                row = precision_rows[f"{family}/mlprogram"]
            else:
                row = export_figures(
                    net, val_ids, val_labels, args.fp16_rows, format="mlprogram", compression=level
                )
            compression_rows[f"{family}/{level}"] = row
            print(family, level, row, flush=True)
            save(training, precision_rows, compression_rows, run)


def save(training: dict, precision_rows: dict, compression_rows: dict, run: dict) -> None:
    """Rows accumulate across runs (one run per family fits the time a loaded machine has) and are
    saved after each export: a run replaces the rows it measured and keeps the others, each row
    saying when and with how many fp16-arithmetic rows it was taken."""
    previous = load_result("export_precision") or {}
    merged = {
        "training": {**previous.get("training", {}), **training},
        "precision": {**previous.get("precision", {}), **stamp(precision_rows, run)},
        "compression": {**previous.get("compression", {}), **stamp(compression_rows, run)},
    }
    save_result("export_precision", {**merged, "data": "conf/data/tiny.yaml"})


def stamp(rows: dict, run: dict) -> dict:
    return {key: {**row, "run": run} for key, row in rows.items()}


if __name__ == "__main__":
    main()
