"""Scoring a model file on labelled rows: the rows (a CSV, or the generated test set of the run's own data
config), accuracy, per-class accuracy, confusion matrix, the most confident mistakes, the quality figures,
the real-text set's figures with the app's correction threshold, and typed text scored token by token as
the app applies the model (`score_pairs`). `python -m layoutnet.evaluate` runs it, prints it
(`reporting.console`) and records it (`reporting.record`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from layoutnet.config import build, build_from_file
from layoutnet.contract import CLASSES, decode, encode_batch
from layoutnet.correction import Corrector
from layoutnet.data import csvfile
from layoutnet.data.sources import KNOWN_SOURCES
from layoutnet.errors import ConfigError, DataError
from layoutnet.metrics import classification_summary, softmax
from layoutnet.modelfile import Scorer
from layoutnet.quality import (
    APP_BUDGET,
    METADATA_KEY,
    PAIRS_FILE,
    THRESHOLD_SPLIT,
    TYPED_RIGHT_OUTCOMES,
    WRONG_LAYOUT_OUTCOMES,
    budget_key,
    evaluate_realtext,
    parse_threshold,
    quality_summary,
    realtext_dir,
)

MISTAKES_KEPT = 25
"""Misclassified rows written into the report (the most confident mistakes first)."""

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
    if not (isinstance(data, DictConfig) and "_target_" in data):
        return None
    if data.get("_target_") == SYNTHETIC_TARGET and "prior" not in data:
        # written before the typing prior: its samples were labelled as they were generated
        data.prior = {"labels": "generating"}
    return data, resolved


SYNTHETIC_TARGET = "layoutnet.data.synthetic.SyntheticSource"


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


def evaluate(
    scorer: Scorer, data: EvalData, mistakes: int = MISTAKES_KEPT, threshold: float | None = None
) -> dict:
    """The evaluation section: accuracy, per-class accuracy, support, confusion matrix, worst mistakes, and
    the quality figures (accuracy by length, harmful corrections and fixes by threshold, calibration, and
    with a `threshold` the figures at it)."""
    start = time.perf_counter()
    logits = scorer.logits(data.ids)
    seconds = time.perf_counter() - start
    predictions = logits.argmax(axis=1)
    probs = softmax(logits)
    summary = classification_summary(predictions, data.labels.numpy())
    summary["classes"] = list(CLASSES)
    summary["mistakes"] = _mistakes(data, probs, predictions, mistakes)
    summary["quality"] = quality_summary(
        [data.text(i) for i in range(len(data.labels))], probs, data.labels.numpy(), threshold
    )
    summary["predict_seconds"] = round(seconds, 3)
    return summary


def metadata_threshold(scorer: Scorer) -> float | None:
    """The correction threshold an artifact carries in its metadata (what the app applies), or None."""
    metadata = getattr(scorer, "metadata", None) or {}
    value = metadata.get(METADATA_KEY)
    return None if value in (None, "") else parse_threshold(value, f"{scorer.source} metadata {METADATA_KEY}")


def realtext_section(scorer: Scorer, threshold: float | None = None) -> dict:
    """The real-text set's figures per split and the app's correction threshold (harmful <= 0.1% of the
    correctly typed rows of the `words` split). Every split's `at_threshold` figures are at `threshold`
    (an artifact's own, from its metadata) or, when None, at the threshold chosen here."""
    start = time.perf_counter()
    splits = evaluate_realtext(scorer, threshold=threshold)
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
        "applied_threshold": {
            "value": chosen["threshold"] if threshold is None else threshold,
            "from": f"chosen on {THRESHOLD_SPLIT}" if threshold is None else "model metadata",
        },
        "seconds": round(time.perf_counter() - start, 3),
    }


# Typed text, token by token -----------------------------------------------------------------------------


def shipped_pairs_path() -> Path:
    """The real-text set's own typed,expected file."""
    return realtext_dir() / PAIRS_FILE


def score_pairs(
    scorer: Scorer, corrector: Corrector, pairs: csvfile.TextPairs, threshold: float | None, worst: int
) -> dict:
    """Each whitespace token of the typed lines classified alone, corrected when its top class is some
    X_from_Y with top probability >= `threshold` (re-typed by `corrector`), compared with the expected
    token. Counts and shares of the outcomes (WRONG_LAYOUT_OUTCOMES of the tokens typed on the wrong
    layout, TYPED_RIGHT_OUTCOMES of the others), lines whose every token came out right, and the `worst`
    most confident wrong tokens."""
    tokens: list[tuple[int, str, str]] = [
        (line, shown, meant)
        for line, typed, expected in zip(pairs.lines, pairs.typed, pairs.expected, strict=True)
        for shown, meant in zip(typed.split(), expected.split(), strict=True)
    ]
    probs = (
        softmax(scorer.logits(encode_batch([shown for _, shown, _ in tokens])))
        if tokens
        else np.zeros((0, 1))
    )
    counts = dict.fromkeys((*WRONG_LAYOUT_OUTCOMES, *TYPED_RIGHT_OUTCOMES), 0)
    wrong: list[dict] = []
    right_lines = dict.fromkeys(pairs.lines, True)
    for (line, shown, meant), row in zip(tokens, probs, strict=True):
        top = int(row.argmax())
        output = corrector.apply(shown, CLASSES[top], float(row[top]), threshold)
        if shown != meant:
            outcome = "fixed" if output == meant else "missed" if output == shown else "miscorrected"
        else:
            outcome = "kept" if output == shown else "harmed"
        counts[outcome] += 1
        if output != meant:
            right_lines[line] = False
            wrong.append(
                {
                    "line": line,
                    "typed": shown,
                    "expected": meant,
                    "output": output,
                    "outcome": outcome,
                    "class": CLASSES[top],
                    "probability": round(float(row[top]), 4),
                }
            )
    wrong_layout = sum(counts[outcome] for outcome in WRONG_LAYOUT_OUTCOMES)
    typed_right = sum(counts[outcome] for outcome in TYPED_RIGHT_OUTCOMES)

    def share(count: int, total: int) -> float | None:
        return count / total if total else None

    wrong.sort(key=lambda item: -item["probability"])
    return {
        "path": str(pairs.path),
        "threshold": threshold,
        "lines": len(pairs),
        "lines_right": sum(right_lines.values()),
        "tokens": len(tokens),
        "wrong_layout_tokens": wrong_layout,
        "correct_tokens": typed_right,
        "counts": counts,
        **{outcome: share(counts[outcome], wrong_layout) for outcome in WRONG_LAYOUT_OUTCOMES},
        **{outcome: share(counts[outcome], typed_right) for outcome in TYPED_RIGHT_OUTCOMES},
        "worst": wrong[:worst],
    }
