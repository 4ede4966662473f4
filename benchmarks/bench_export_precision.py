"""Parity margins of exported artifacts at the precisions a device may run them (the device bracket),
and the size / parity against its own weights / cost of each weight-compression level.

    python benchmarks/bench_export_precision.py [--steps 1500] [--families cnn transformer ensemble]
        [--fp16-rows 256]
    python benchmarks/bench_export_precision.py --families --networks default omfk \
        [--ckpt <run>/checkpoints/best.ckpt] [--omfk-steps 300] [--fp16-rows 256]

Each network (conf/model/<family>.yaml at its configured size) is trained for `--steps` Adam steps
on the smoke-sized synthetic data (conf/data/tiny.yaml, batch 256): "trained" enough for its
probabilities to be confident, which is where fp16 errors show; it is not a production model. Every
artifact is checked as an export checks it: the reference executor at fp32, fp16 storage and fp16
arithmetic on the held-out rows + random + edge-case inputs (fp16 arithmetic on `--fp16-rows` spread
rows + the edge cases, as `export.fp16_arithmetic_samples`); accuracy on the labelled held-out rows.
Rows are merged into benchmarks/results/export_precision.json after each export, so runs of
different families add up (and a cut run keeps what it measured).

`--networks`: for each network and each compression level (none, int8, palettize6, palettize4) an ML
Program export as `export.compression=<level>` makes it, with the budget and the tolerance opened so
that every level's figures are recorded (whether each would publish under the defaults is computed
from them): size and its ratio to the uncompressed file, parity against the model carrying the file's
own weights at every precision of the bracket, the range guards, and the cost against the
uncompressed model (validation accuracy, accuracy and harmful rewrites per real-text split). The
`default` network is the checkpoint `--ckpt` (validation rows: the default data config's, as
`python -m layoutnet.export` uses), or trained like the families when none is given; `omfk` is the
production ensemble trained `--omfk-steps` steps on tiny's data (0: random initialisation). Rows go
to benchmarks/results/export_compression.json.
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
from layoutnet.export.settings import LEVELS_BY_SIZE, CompressionBudget, ExportSettings

CONF = str(Path(__file__).resolve().parents[1] / "conf")
FORMATS = {
    "neuralnetwork": {"format": "neuralnetwork"},
    "mlprogram": {"format": "mlprogram"},
    "mlprogram-fp16": {"format": "mlprogram", "precision": "fp16"},
}
LEVELS = tuple(reversed(LEVELS_BY_SIZE))  # none, int8, palettize6, palettize4
OPEN_BUDGET = {"realtext_points": 100.0, "validation_points": 100.0, "harm_points": 100.0}


def trained_net(model: str, steps: int, seed: int = 0):
    """`model`'s network trained `steps` AdamW steps on tiny's data (0: as initialised)."""
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
    done, start, loss = 0, time.perf_counter(), None
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
        {
            "steps": steps,
            "train_seconds": round(seconds, 1),
            "last_loss": None if loss is None else loss.item(),
        },
    )


def exported(net, val_ids, val_labels, settings: ExportSettings):
    """The ExportResult of exporting `net` into a temporary folder, or {"error": ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return export_model(
                net, settings, Path(tmp) / "export", ModelInfo(run_id="bench"), val_ids, val_labels
            )
        except ExportFailure as failure:
            return {"error": str(failure)[:300]}


def export_figures(net, val_ids, val_labels, fp16_rows: int, **settings) -> dict:
    full = ExportSettings(
        parity_samples=1024,
        app_precision="fp32",
        tolerance=1.0,
        fp16_arithmetic_samples=fp16_rows,
        **settings,
    )
    result = exported(net, val_ids, val_labels, full)
    if isinstance(result, dict):
        return result
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


def compression_figures(net, val_ids, val_labels, fp16_rows: int, level: str) -> dict:
    """One level's export as `export.compression=<level>` makes it (budget and tolerance opened so
    that the figures exist at every level), and whether it would publish under the defaults."""
    settings = ExportSettings(
        format="mlprogram",
        compression=level,
        compression_budget=OPEN_BUDGET,
        tolerance=1.0,
        app_precision="fp16_sequential",  # every mode reported with its samples
        fp16_arithmetic_samples=fp16_rows,
    )
    result = exported(net, val_ids, val_labels, settings)
    if isinstance(result, dict):
        return result
    defaults = ExportSettings()
    bracket_modes = ("fp32", "fp16_storage", "fp16_wide", "fp16")  # export.app_precision=fp16
    parity = {
        mode: {k: figures[k] for k in ("max_prob_diff", "argmax_agreement", "samples", "seconds")}
        for mode, figures in result.parity_by_precision.items()
    }
    cost = result.compression_cost
    return {
        "size_bytes": result.artifact_size_bytes,
        "size_ratio": cost["size_ratio"] if cost else 1.0,
        "parity": parity,
        "range_guards": {
            k: {"largest": g["largest"], "op": g["op"], "margin": g["margin"]}
            for k, g in result.range_guards.items()
        },
        "cost": cost,
        "publishes_with_defaults": all(
            parity[m]["max_prob_diff"] <= defaults.tolerance for m in bracket_modes
        )
        and all(g["passed"] for g in result.range_guards.values() if g["gates"])
        and (cost is None or within(cost, defaults.compression_budget)),
        "seconds": result.timings.get("total"),
    }


def within(cost: dict, budget: CompressionBudget) -> bool:
    """Whether a cost report (measured with an opened budget) is within `budget`."""
    ok = cost["validation"] is None or cost["validation"]["points_lost"] <= budget.validation_points + 1e-9
    for figures in cost["realtext"].values():
        ok &= figures["points_lost"] <= budget.realtext_points + 1e-9
        ok &= figures["harm_added_points"] <= budget.harm_points + 1e-9
    return ok


def checkpoint_net(path: str):
    """A trained checkpoint's network and the default data config's validation rows (what
    `python -m layoutnet.export ckpt_path=...` checks it on)."""
    from layoutnet.export.parity import validation_tensors
    from layoutnet.modelfile import open_model

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("export_model")
    val_ids, val_labels = validation_tensors(cfg.data)
    return open_model(path).net.eval(), val_ids, val_labels, {"checkpoint": path}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--families", nargs="*", default=["cnn", "transformer", "ensemble"])
    parser.add_argument("--networks", nargs="*", default=[], choices=["default", "omfk"])
    parser.add_argument("--ckpt", help="the default network's checkpoint (else trained --steps steps)")
    parser.add_argument("--omfk-steps", type=int, default=300, help="0: the omfk network at random init")
    parser.add_argument("--levels", nargs="*", default=list(LEVELS), choices=LEVELS)
    parser.add_argument(
        "--fp16-rows",
        type=int,
        default=ExportSettings.fp16_arithmetic_samples,
        help="rows checked at fp16 arithmetic (export.fp16_arithmetic_samples; edge cases are added)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    precision_rows, training = {}, {}
    run = {"when": time.strftime("%Y-%m-%d %H:%M"), "fp16_arithmetic_rows": args.fp16_rows}
    for family in args.families:
        net, val_ids, val_labels, info = trained_net(family, args.steps)
        training[family] = info
        print(family, info, flush=True)
        for name, settings in FORMATS.items():
            precision_rows[f"{family}/{name}"] = row = export_figures(
                net, val_ids, val_labels, args.fp16_rows, **settings
            )
            print(family, name, row, flush=True)
            save(training, precision_rows, run)
    for network in args.networks:
        if network == "default" and args.ckpt:
            net, val_ids, val_labels, info = checkpoint_net(args.ckpt)
        else:
            family = "ensemble" if network == "default" else "omfk"
            steps = args.steps if network == "default" else args.omfk_steps
            net, val_ids, val_labels, info = trained_net(family, steps)
        print(network, info, flush=True)
        for level in args.levels:
            row = compression_figures(net, val_ids, val_labels, args.fp16_rows, level)
            print(network, level, row, flush=True)
            save_compression(network, info, level, row, run)


def save_compression(network: str, info: dict, level: str, row: dict, run: dict) -> None:
    previous = load_result("export_compression") or {}
    networks = previous.get("networks", {})
    networks.setdefault(network, {"levels": {}})
    networks[network]["source"] = info
    networks[network]["levels"][level] = {**row, "run": run}
    save_result("export_compression", {"networks": networks})


def save(training: dict, precision_rows: dict, run: dict) -> None:
    """Rows accumulate across runs (one run per family fits the time a loaded machine has) and are
    saved after each export: a run replaces the rows it measured and keeps the others, each row
    saying when and with how many fp16-arithmetic rows it was taken."""
    previous = load_result("export_precision") or {}
    merged = {
        "training": {**previous.get("training", {}), **training},
        "precision": {**previous.get("precision", {}), **stamp(precision_rows, run)},
        "compression": previous.get("compression", {}),  # earlier runs' (parity against the original weights)
    }
    save_result("export_precision", {**merged, "data": "conf/data/tiny.yaml"})


def stamp(rows: dict, run: dict) -> dict:
    return {key: {**row, "run": run} for key, row in rows.items()}


if __name__ == "__main__":
    main()
