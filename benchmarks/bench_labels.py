"""What the labels and calibration buy, on the real-text splits (issue 18): one row per trained run.

For each run's best checkpoint: accuracy on real words, sentence starts and 2-4-letter words; fixes at
harm <= 0.1% on the short words; on `frequent` (the most frequent 1-3-letter words of each language) the
share of wrong-layout words fixed and of correctly typed ones kept at the model's own correction
threshold (harm <= 0.1% on real words), by length; on `technical` the share rewritten; the expected
calibration error (15 bins) of every split, the synthetic test set included. Then two corrections that
could go into the exported model, measured, not applied:

- temperature scaling: one scale on the logits fitted on the run's own synthetic validation set (NLL);
- prior shift: for runs trained on the generating labels (`data/prior=generating`), the logit adjustment
  log(prior class share / training class share) that moves the model to the declared typing prior.

    python benchmarks/bench_labels.py --run base=outputs/default/runs/<time> --run post=...
    (results: benchmarks/results/labels.json)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import save_result
from layoutnet.contract import CLASSES
from layoutnet.metrics import softmax
from layoutnet.quality import (
    APP_BUDGET,
    SPLIT_GROUPS,
    THRESHOLD_SPLIT,
    expected_calibration_error,
    load_realtext,
    quality_summary,
    threshold_for,
)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on labelled rows (golden section on
    log T in [1/8, 8])."""
    x = torch.from_numpy(logits.astype(np.float64))
    y = torch.from_numpy(labels.astype(np.int64))

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(x / np.exp(log_t), y))

    lo, hi = np.log(1 / 8), np.log(8)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def run_data(run_dir: Path):
    """The run's own data source (its config_resolved.yaml, read as values through the allowlist)."""
    from layoutnet.config import build_from_file
    from layoutnet.data.sources import KNOWN_SOURCES
    from layoutnet.evaluation import run_data_config

    data_cfg, origin = run_data_config(run_dir / "checkpoints" / "best.ckpt")
    source = build_from_file(data_cfg, "data", str(origin), tuple(KNOWN_SOURCES))
    source.setup()
    return source


def figures(logits: dict[str, np.ndarray], splits: dict, synthetic: tuple[np.ndarray, np.ndarray]) -> dict:
    """The row of one model (logits per real-text split and of the synthetic test set)."""
    probs = {name: softmax(value) for name, value in logits.items()}
    words = splits[THRESHOLD_SPLIT]
    threshold = threshold_for(probs[THRESHOLD_SPLIT], words.labels, APP_BUDGET)["threshold"]
    summary = {}
    for name, split in splits.items():
        _, group_of, order = SPLIT_GROUPS.get(name, (None, None, ()))
        summary[name] = quality_summary(split.texts, probs[name], split.labels, threshold, group_of, order)
    frequent = summary["frequent"]["at_threshold"]
    groups = frequent.get("groups", {})
    short_words = [groups[n] for n in ("2", "3") if n in groups]  # the 2-3-letter target
    wrong = sum(g["wrong_layout_rows"] for g in short_words)
    typed = sum(g["correct_rows"] for g in short_words)
    synthetic_logits, synthetic_labels = synthetic
    return {
        "threshold": threshold,
        "accuracy": {name: summary[name]["accuracy"] for name in ("words", "sentences", "short")},
        "short_fixed_at_0.1%": summary["short"]["thresholds"]["0.1%"]["fixed"],
        "frequent": {
            "fixed": frequent["fixed"],
            "kept": frequent["kept"],
            "fixed_2_3": sum(g["fixed"] * g["wrong_layout_rows"] for g in short_words) / max(1, wrong),
            "kept_2_3": sum(g["kept"] * g["correct_rows"] for g in short_words) / max(1, typed),
            "by_length": {name: {"fixed": g["fixed"], "kept": g["kept"]} for name, g in groups.items()},
        },
        "technical_rewritten": summary["technical"]["at_threshold"]["rewritten"],
        "ece": {
            "synthetic": expected_calibration_error(softmax(synthetic_logits), synthetic_labels),
            **{name: summary[name]["calibration"]["ece"] for name in summary},
        },
    }


def measure(name: str, run_dir: Path) -> dict:
    from layoutnet.modelfile import open_model

    scorer = open_model(run_dir / "checkpoints" / "best.ckpt")
    splits = load_realtext()
    logits = {split: scorer.logits(data.ids()) for split, data in splits.items()}
    data = run_data(run_dir)
    test_ids, test_labels = data.test_tensors()
    val_ids, val_labels = data.val_tensors()
    synthetic = (scorer.logits(test_ids), test_labels.numpy())
    out = {"run": str(run_dir), "as_trained": figures(logits, splits, synthetic)}
    temperature = fit_temperature(scorer.logits(val_ids), val_labels.numpy())
    out["temperature"] = temperature
    scaled = {split: value / temperature for split, value in logits.items()}
    out["temperature_scaled"] = figures(scaled, splits, (synthetic[0] / temperature, synthetic[1]))
    meaning = (scorer.metadata.get("labels") or {}) if scorer.metadata else {}
    if meaning.get("labels") == "generating":
        prior = meaning["class_prior"]
        shares = data.describe()["expected_class_shares"]
        shift = np.array([np.log(prior[c] / shares[c]) if prior[c] > 0 else -30.0 for c in CLASSES])
        shifted = {split: value + shift for split, value in logits.items()}
        out["prior_shift"] = list(shift)
        out["prior_shifted"] = figures(shifted, splits, (synthetic[0] + shift, synthetic[1]))
    print(f"{name}: {json.dumps(out['as_trained'])}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="name=<run directory>")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = {}
    for item in args.run:
        name, _, path = item.partition("=")
        runs[name] = measure(name, Path(path))
    save_result("labels", {"runs": runs})


if __name__ == "__main__":
    main()
