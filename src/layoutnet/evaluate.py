"""`python -m layoutnet.evaluate model_path=<.ckpt | .pth | .mlpackage | .mlmodel> [data_path=<csv>]`:
accuracy, per-class accuracy and confusion matrix of any model file a user holds.

Without `data_path` the model is scored on the configured generated test set. Core ML artifacts are
scored from the file itself (Core ML on macOS, layoutnet's reference executor elsewhere). A JSON report
and a confusion-matrix picture are written next to the model (or into `output_dir`); the last line
printed is `accuracy=<float>`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layoutnet.commandline import run_command
from layoutnet.config import CONF_DIR, build, build_from_file, check_output_dir
from layoutnet.contract import CLASSES, decode
from layoutnet.data import csvfile
from layoutnet.data.sources import KNOWN_SOURCES
from layoutnet.errors import ConfigError, DataError
from layoutnet.metrics import classification_summary, softmax
from layoutnet.modelfile import Scorer, open_model
from layoutnet.quality import (
    APP_BUDGET,
    HARMFUL_BUDGETS,
    LENGTH_BUCKETS,
    THRESHOLD_SPLIT,
    budget_key,
    evaluate_realtext,
    quality_summary,
)
from layoutnet.reporting.pictures import save_confusion_matrix, save_tradeoff_curve
from layoutnet.reporting.record import record
from layoutnet.reporting.runreport import EVALUATION_SECTIONS, versions

MISTAKES_KEPT = 25
"""Misclassified rows written into the report (the most confident mistakes first)."""

SHORT_NAMES = {name: name.replace("_from_", "←") for name in CLASSES}
"""Narrow class names for the console tables (`ru←en` = meant ru, typed on en)."""

NARROW = {"box": box.SIMPLE_HEAD, "padding": (0, 1), "title_justify": "left"}
"""Table style of the console reports: fits 80 columns."""


# Data ---------------------------------------------------------------------------------------------------


@dataclass
class EvalData:
    ids: torch.Tensor  # int64 [N, SEQ_LEN]
    labels: torch.Tensor  # int64 [N]
    texts: list[str] | None  # the CSV's texts; None for generated rows (decoded when needed)
    description: dict

    def text(self, index: int) -> str:
        return self.texts[index] if self.texts is not None else decode(self.ids[index])


def csv_data(path: str | Path) -> EvalData:
    rows = csvfile.read(path)
    return EvalData(
        rows.ids(),
        rows.label_tensor(),
        rows.texts,
        {"source": "csv", "path": str(rows.path), "rows": len(rows)},
    )


def run_data_config(model_path: Path) -> tuple[DictConfig, Path] | None:
    """The `data` config of the layoutnet run a model file lies in (`<run>/checkpoints/best.ckpt`,
    `<run>/export/LayoutClassifier.mlmodel`: `<run>/config_resolved.yaml`), or None. Read as values
    only: it is built by `build_from_file`, which accepts only layoutnet's own data classes."""
    resolved = model_path.absolute().parent.parent / "config_resolved.yaml"
    if not resolved.is_file():
        return None
    try:
        run_cfg = OmegaConf.load(resolved)
    except Exception as exc:
        raise DataError(f"{resolved} is not a readable run config ({type(exc).__name__}: {exc})") from exc
    data = run_cfg.get("data") if isinstance(run_cfg, DictConfig) else None
    return (data, resolved) if isinstance(data, DictConfig) and "_target_" in data else None


def _data_given_on_command_line() -> bool:
    if not HydraConfig.initialized():
        return False
    keys = (o.lstrip("+~").split("=", 1)[0] for o in HydraConfig.get().overrides.task)
    return any(key == "data" or key.startswith(("data.", "data/")) for key in keys)


def generated_test_data(cfg: DictConfig, model_path: Path | None = None) -> EvalData:
    """The data module's fixed test set. Its config is the run's own (`config_resolved.yaml` of the run
    the model lies in) when `run_data` is on and no `data` override was given, else `cfg.data`."""
    data_cfg, origin = cfg.get("data"), "data config"
    found = run_data_config(model_path) if model_path is not None and cfg.get("run_data", True) else None
    if found is not None and not _data_given_on_command_line():
        data_cfg, origin = found[0], str(found[1])
    if data_cfg is None:
        raise ConfigError("data", None, "no data config to generate a test set from; pass data_path=<csv>")
    if found is not None and origin == str(found[1]):
        datamodule = build_from_file(data_cfg, "data", origin, tuple(KNOWN_SOURCES))
    else:
        datamodule = build(data_cfg, "data")
    if hasattr(datamodule, "check"):
        datamodule.check()
    if hasattr(datamodule, "setup"):
        datamodule.setup("test")
    ids, labels = datamodule.test_tensors()
    description: dict = {"source": "generated test set", "config_from": origin}
    if hasattr(datamodule, "describe"):
        description["config"] = datamodule.describe()
    return EvalData(ids.long(), labels.long(), None, description)


# Evaluation ---------------------------------------------------------------------------------------------


def default_outputs(model_path: Path, output_dir: str | Path | None) -> tuple[Path, Path]:
    """(<stem>.eval.json, <stem>.eval_confusion.png) next to the model file or in `output_dir`."""
    directory = Path(output_dir).expanduser() if output_dir else model_path.parent
    stem = model_path.name[: -len(model_path.suffix)] if model_path.suffix else model_path.name
    return directory / f"{stem}.eval.json", directory / f"{stem}.eval_confusion.png"


def _mistakes(data: EvalData, probs: np.ndarray, predictions: np.ndarray, limit: int) -> list[dict]:
    labels = data.labels.numpy()
    wrong = np.flatnonzero(predictions != labels)
    order = wrong[np.argsort(-probs[wrong, predictions[wrong]], kind="stable")][:limit]
    return [
        {
            "row": int(i),
            "text": data.text(int(i)),
            "label": CLASSES[labels[i]],
            "predicted": CLASSES[predictions[i]],
            "probability": round(float(probs[i, predictions[i]]), 4),
        }
        for i in order
    ]


def evaluate(scorer: Scorer, data: EvalData, mistakes: int = MISTAKES_KEPT) -> dict:
    """The evaluation section: accuracy, per-class accuracy, support, confusion matrix, worst mistakes, and
    the quality figures (accuracy by length, harmful corrections and fixes by threshold)."""
    start = time.perf_counter()
    logits = scorer.logits(data.ids)
    seconds = time.perf_counter() - start
    predictions = logits.argmax(axis=1)
    probs = softmax(logits)
    summary = classification_summary(predictions, data.labels.numpy())
    summary["classes"] = list(CLASSES)
    summary["mistakes"] = _mistakes(data, probs, predictions, mistakes)
    summary["quality"] = quality_summary(
        [data.text(i) for i in range(len(data.labels))], probs, data.labels.numpy()
    )
    summary["predict_seconds"] = round(seconds, 3)
    return summary


def realtext_section(scorer: Scorer) -> dict:
    """The real-text set's figures per split and the app's correction threshold (harmful <= 0.1% of the
    correctly typed rows of the `words` split)."""
    start = time.perf_counter()
    splits = evaluate_realtext(scorer)
    chosen = splits[THRESHOLD_SPLIT]["thresholds"][budget_key(APP_BUDGET)]
    return {
        "splits": splits,
        "correction_threshold": {
            "value": chosen["threshold"],
            "split": THRESHOLD_SPLIT,
            "max_harmful": APP_BUDGET,
            "harmful": chosen["harmful"],
            "fixed": chosen["fixed"],
        },
        "seconds": round(time.perf_counter() - start, 3),
    }


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%" if value >= 0.1 else f"{100 * value:.2f}%"


def _accuracy(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def print_evaluation(result: dict, console: Console) -> None:
    per_class = Table(title="per-class accuracy", **NARROW)
    per_class.add_column("class")
    per_class.add_column("support", justify="right")
    per_class.add_column("accuracy", justify="right")
    for name in CLASSES:
        value = result["per_class_accuracy"][name]
        per_class.add_row(SHORT_NAMES[name], str(result["support"][name]), _accuracy(value))
    console.print(per_class)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted; ru←en = ru_from_en)", **NARROW)
    matrix.add_column("true")
    for name in CLASSES:
        matrix.add_column(SHORT_NAMES[name], justify="right")
    for i, name in enumerate(CLASSES):
        cells = []
        for j, count in enumerate(result["confusion_matrix"][i]):
            text = str(count) if count else "·"
            cells.append(f"[bold]{text}[/]" if i == j and count else text)
        matrix.add_row(SHORT_NAMES[name], *cells)
    console.print(matrix)
    correct = int(np.trace(np.asarray(result["confusion_matrix"])))
    console.print(f"overall accuracy {result['accuracy']:.4f} ({correct:,} of {result['samples']:,} rows)")


_REALTEXT_NOTE = "real-text set (not trained on): words, sentences, short, ambiguous"


def print_quality(sets: dict[str, dict], console: Console) -> None:
    """Accuracy by text length and the harmful/fixed table of each evaluated set, 80 columns wide."""
    lengths = Table(title="accuracy by text length (characters)", caption=_REALTEXT_NOTE, **NARROW)
    for column in ("set", "rows", "all", *(name for name, _, _ in LENGTH_BUCKETS)):
        lengths.add_column(column, justify="left" if column == "set" else "right")
    for name, summary in sets.items():
        buckets = summary["length_buckets"]
        lengths.add_row(
            name,
            f"{summary['rows']:,}",
            _accuracy(summary["accuracy"]),
            *(_accuracy(buckets[bucket]["accuracy"]) for bucket, _, _ in LENGTH_BUCKETS),
        )
    console.print(lengths)
    corrections = Table(title="corrections at a threshold t on the top probability", **NARROW)
    corrections.add_column("set")
    corrections.add_column("harm", justify="right")
    corrections.add_column("fixed", justify="right")
    for budget in HARMFUL_BUDGETS:
        key = budget_key(budget)
        corrections.add_column(f"t@{key}", justify="right")
        corrections.add_column("fixed", justify="right")
    for name, summary in sets.items():
        cells = [name, _share(summary["harmful"]), _share(summary["fixed"])]
        for budget in HARMFUL_BUDGETS:
            found = summary["thresholds"][budget_key(budget)]
            cells += ["—", "—"] if found is None else [f"{found['threshold']:.3f}", _share(found["fixed"])]
        corrections.add_row(*cells)
    console.print(corrections)
    console.print(
        "harm: correctly typed (ru/en/he) rows rewritten; fixed: wrong-layout rows\n"
        "corrected to their class; t@0.1%: the lowest t keeping harm <= 0.1%",
        style="dim",
    )


def run_evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    console = Console(highlight=False)
    scorer = open_model(cfg.get("model_path"), cfg.get("legacy"))
    if cfg.get("output_dir"):
        check_output_dir(cfg.output_dir)
    model_path = Path(scorer.source)
    data = csv_data(cfg.data_path) if cfg.get("data_path") else generated_test_data(cfg, model_path)
    console.print(
        f"model: {escape(scorer.source)} ({escape(scorer.kind)}, scored by {escape(scorer.backend)})",
        soft_wrap=True,
    )
    data_text = data.description.get("path") or data.description["source"]
    origin = f" ({data.description['config_from']})" if "config_from" in data.description else ""
    console.print(f"data: {escape(str(data_text) + origin)}, {len(data.labels):,} rows", soft_wrap=True)
    result = evaluate(scorer, data, int(cfg.get("mistakes", MISTAKES_KEPT)))
    print_evaluation(result, console)
    data_name = "synthetic" if data.texts is None else Path(str(data_text)).name
    if len(data_name) > 16:
        data_name = data_name[:15] + "…"
    sets = {data_name: result["quality"]}
    realtext = realtext_section(scorer) if cfg.get("realtext", True) else None
    if realtext is not None:
        sets.update({name: summary for name, summary in realtext["splits"].items()})
    print_quality(sets, console)
    if realtext is not None:
        chosen = realtext["correction_threshold"]
        console.print(
            f"correction threshold {chosen['value']:.4f} (harm {_share(chosen['harmful'])}, fixed "
            f"{_share(chosen['fixed'])} on real-text {THRESHOLD_SPLIT})"
        )
    json_path, png_path = default_outputs(model_path, cfg.get("output_dir"))
    curve_path = json_path.with_name(json_path.name.replace(".eval.json", ".eval_corrections.png"))
    save_confusion_matrix(
        result["confusion_matrix"],
        png_path,
        title=f"{model_path.name} on {Path(str(data_text)).name}: accuracy {result['accuracy']:.4f}",
    )
    save_tradeoff_curve(
        {name: summary for name, summary in sets.items() if name != "ambiguous"},
        curve_path,
        title=f"{model_path.name}: harmful corrections vs fixes by threshold",
    )
    report = {
        "command": "evaluate",
        "model": scorer.describe(),
        "data": data.description,
        **result,
        "realtext": realtext,
        "correction_threshold": None if realtext is None else realtext["correction_threshold"]["value"],
        "paths": {
            "report": str(json_path),
            "confusion_matrix": str(png_path),
            "corrections": str(curve_path),
        },
        "timings": {"total_seconds": round(time.perf_counter() - started, 3)},
        "versions": versions(),
    }
    record(
        json_path,
        report,
        console=console,
        files={"report": json_path, "confusion matrix": png_path, "corrections curve": curve_path},
        last_line=f"accuracy={result['accuracy']:.6f}",
        schema=EVALUATION_SECTIONS,
        replace=True,
    )
    return report


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_command(cfg, run_evaluate)


if __name__ == "__main__":
    main()
