"""Quality on text people really type: the real-text development set, accuracy by text length, and the
trade-off between harmful corrections and fixes as a function of a threshold on the top probability.

A *harmful* correction rewrites text that was typed correctly: a row labelled `ru`, `en` or `he` that the
model assigns to some `X_from_Y` class with top probability >= t. A *fix* is a wrong-layout row (`X_from_Y`)
assigned to its own class with top probability >= t. The app applies a correction only at or above its
threshold, so the threshold trades fixes for harm; `threshold_for` finds the lowest threshold that keeps the
harmful share within a budget.

The real-text set (`src/layoutnet/resources/realtext/`, built by `scripts/build_realtext.py`) is made from
dictionaries and software translations, never from the training vocabularies, and training never reads it.
This module imports no Lightning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from layoutnet.contract import CLASS_TO_ID, LANGUAGES, encode_batch
from layoutnet.data import csvfile
from layoutnet.errors import ConfigError, DataError

REALTEXT_SPLITS: tuple[str, ...] = ("words", "sentences", "short")
"""The balanced splits of the real-text set, in report order."""

AMBIGUOUS = "ambiguous"
"""Texts that are real words in two readings: reported apart, not in the headline figures."""

THRESHOLD_SPLIT = "words"
"""The split the app's correction threshold is chosen on."""

HARMFUL_BUDGETS: tuple[float, ...] = (0.001, 0.01)
"""Harmful-correction shares the report finds thresholds for (0.1% and 1%)."""

APP_BUDGET = 0.001
"""The budget of the threshold that ships with the app (harmful corrections <= 0.1%)."""

LENGTH_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1-2", 1, 2),
    ("3-4", 3, 4),
    ("5-8", 5, 8),
    ("9+", 9, None),
)
"""Text length buckets in characters (a text of 0 characters falls in none)."""

CURVE_STEP = 0.01
"""Spacing of the thresholds of the trade-off curve written into reports."""

CORRECT_IDS = np.array([CLASS_TO_ID[lang] for lang in LANGUAGES])
"""Class ids of correctly typed text (`ru`, `en`, `he`)."""


# The real-text set --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSplit:
    name: str
    texts: list[str]
    labels: np.ndarray  # int64 [N]
    path: Path

    def __len__(self) -> int:
        return len(self.texts)

    def ids(self) -> torch.Tensor:
        return encode_batch(self.texts)


def realtext_dir() -> Path:
    """The folder of the real-text CSVs inside the installed package."""
    return Path(str(resources.files("layoutnet.resources.realtext")))


def _read_split(name: str, path: Path) -> LabelledSplit:
    if not path.is_file():
        raise DataError(
            f"real-text file {path} is missing; reinstall layoutnet or rebuild it with "
            "`python scripts/build_realtext.py`"
        )
    rows = csvfile.read(path)  # the one text,label format
    texts, labels = rows.texts, rows.labels
    return LabelledSplit(name, texts, np.asarray(labels, dtype=np.int64), path)


def load_realtext(splits: Sequence[str] = (*REALTEXT_SPLITS, AMBIGUOUS)) -> dict[str, LabelledSplit]:
    """The real-text splits by name (default: `words`, `sentences`, `short` and the `ambiguous` list)."""
    known = (*REALTEXT_SPLITS, AMBIGUOUS)
    unknown = [name for name in splits if name not in known]
    if unknown:
        raise DataError(f"no real-text split {', '.join(unknown)}; the splits are {', '.join(known)}")
    folder = realtext_dir()
    return {name: _read_split(name, folder / f"{name}.csv") for name in splits}


# Metrics on probability arrays -------------------------------------------------------------------------


def length_bucket_accuracy(texts: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict:
    """{bucket: {"rows", "accuracy"}} by text length in characters; accuracy None for an empty bucket."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    hits = np.asarray(predictions) == np.asarray(labels)
    out = {}
    for name, low, high in LENGTH_BUCKETS:
        inside = (lengths >= low) & (lengths <= (high if high is not None else np.iinfo(np.int64).max))
        rows = int(inside.sum())
        out[name] = {"rows": rows, "accuracy": float(hits[inside].mean()) if rows else None}
    return out


@dataclass(frozen=True)
class Decisions:
    """What the app would do with each row: the top class, its probability, and the row's kind."""

    top: np.ndarray  # int64 [N] predicted class
    confidence: np.ndarray  # float64 [N] top probability
    correct_row: np.ndarray  # bool [N]: labelled ru/en/he (typed correctly)
    rewrite: np.ndarray  # bool [N]: the prediction is some X_from_Y class
    right_fix: np.ndarray  # bool [N]: wrong-layout row predicted as its own class

    @classmethod
    def of(cls, probs: np.ndarray, labels: np.ndarray) -> Decisions:
        probs = np.asarray(probs, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
        correct_row = np.isin(labels, CORRECT_IDS)
        rewrite = ~np.isin(top, CORRECT_IDS)
        return cls(top, confidence, correct_row, rewrite, (~correct_row) & (top == labels))

    def harmful(self, threshold: float) -> float | None:
        """Share of correctly typed rows that would be rewritten at this threshold."""
        n = int(self.correct_row.sum())
        if not n:
            return None
        return float((self.correct_row & self.rewrite & (self.confidence >= threshold)).sum() / n)

    def fixed(self, threshold: float) -> float | None:
        """Share of wrong-layout rows that would be corrected to the right class at this threshold."""
        n = int((~self.correct_row).sum())
        if not n:
            return None
        return float((self.right_fix & (self.confidence >= threshold)).sum() / n)

    def miscorrected(self, threshold: float) -> float | None:
        """Share of wrong-layout rows rewritten into a wrong class at this threshold."""
        n = int((~self.correct_row).sum())
        if not n:
            return None
        wrong = (~self.correct_row) & self.rewrite & ~self.right_fix
        return float((wrong & (self.confidence >= threshold)).sum() / n)


def threshold_for(probs: np.ndarray, labels: np.ndarray, max_harmful: float) -> dict | None:
    """The lowest threshold on the top probability at which the harmful share is <= `max_harmful`.

    Returns {"threshold", "harmful", "fixed", "miscorrected"}; the threshold is 0.0 when no threshold is
    needed, otherwise the smallest top probability of any row above the harmful rewrite that must go (so
    the figures are exact for the rule "correct when p >= threshold"). None when the data has no correctly
    typed rows.
    """
    decisions = Decisions.of(probs, labels)
    n_correct = int(decisions.correct_row.sum())
    if not n_correct:
        return None
    allowed = int(np.floor(max_harmful * n_correct + 1e-9))
    harmful_p = np.sort(decisions.confidence[decisions.correct_row & decisions.rewrite])[::-1]
    if len(harmful_p) <= allowed:
        threshold = 0.0
    else:
        cut = harmful_p[allowed]  # the largest harmful confidence that must fall below the threshold
        above = decisions.confidence[decisions.confidence > cut]
        threshold = float(above.min()) if len(above) else float(np.nextafter(cut, np.inf))
    return {
        "threshold": threshold,
        "harmful": decisions.harmful(threshold),
        "fixed": decisions.fixed(threshold),
        "miscorrected": decisions.miscorrected(threshold),
    }


def correction_curve(probs: np.ndarray, labels: np.ndarray, step: float = CURVE_STEP) -> dict:
    """{"threshold": [...], "harmful": [...], "fixed": [...]} on a grid of thresholds 0, step, ..., 1."""
    decisions = Decisions.of(probs, labels)
    grid = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    return {
        "threshold": grid.tolist(),
        "harmful": [decisions.harmful(float(t)) for t in grid],
        "fixed": [decisions.fixed(float(t)) for t in grid],
    }


def budget_key(budget: float) -> str:
    """`0.1%` for 0.001: the key of a budget in reports."""
    return f"{budget * 100:g}%"


def quality_summary(texts: Sequence[str], probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, accuracy by length bucket, harmful/fixed shares without a threshold, the thresholds of
    each budget in HARMFUL_BUDGETS and the trade-off curve, for one labelled set."""
    labels = np.asarray(labels, dtype=np.int64)
    decisions = Decisions.of(probs, labels)
    return {
        "rows": len(labels),
        "accuracy": float((decisions.top == labels).mean()) if len(labels) else None,
        "length_buckets": length_bucket_accuracy(texts, decisions.top, labels),
        "correct_rows": int(decisions.correct_row.sum()),
        "wrong_layout_rows": int((~decisions.correct_row).sum()),
        "harmful": decisions.harmful(0.0),
        "fixed": decisions.fixed(0.0),
        "thresholds": {budget_key(b): threshold_for(probs, labels, b) for b in HARMFUL_BUDGETS},
        "curve": correction_curve(probs, labels),
    }


# Models ------------------------------------------------------------------------------------------------


def _logits_function(model: object) -> Callable[[torch.Tensor], np.ndarray]:
    """Logits of a Scorer-like object (`.logits(ids)`) or of a PyTorch network."""
    from layoutnet.modelfile import predict_logits

    if hasattr(model, "logits"):
        return lambda ids: np.asarray(model.logits(ids), dtype=np.float32)  # type: ignore[attr-defined]
    if isinstance(model, torch.nn.Module):
        return lambda ids: predict_logits(model, ids).float().numpy()
    raise TypeError(f"expected a scorer with .logits(ids) or a torch.nn.Module, got {type(model).__name__}")


def evaluate_realtext(model: object, splits: Sequence[str] = (*REALTEXT_SPLITS, AMBIGUOUS)) -> dict:
    """{split: quality_summary(...) plus "probabilities"-free fields} of a scorer or network on the set."""
    from layoutnet.metrics import softmax

    logits_of = _logits_function(model)
    out = {}
    for name, split in load_realtext(splits).items():
        probs = softmax(logits_of(split.ids()))
        out[name] = quality_summary(split.texts, probs, split.labels)
        out[name]["path"] = str(split.path)
    return out


def correction_threshold(
    model: object, split: str = THRESHOLD_SPLIT, max_harmful: float = APP_BUDGET
) -> float:
    """The app's correction threshold for a model: the lowest top probability at which at most
    `max_harmful` of the correctly typed rows of the real-text `split` would be rewritten.

    `model` is a PyTorch network or anything with `.logits(ids)` (a layoutnet Scorer). Export passes the
    result as `app_metadata["correction_threshold"]`.
    """
    from layoutnet.metrics import softmax

    data = load_realtext([split])[split]
    probs = softmax(_logits_function(model)(data.ids()))
    found = threshold_for(probs, data.labels, max_harmful)
    assert found is not None  # every split has correctly typed rows
    return found["threshold"]


def app_metadata(model: object) -> dict[str, str]:
    """What export writes into the artifact for the app: {"correction_threshold": "<float>"}, the threshold
    of `correction_threshold(model)` (harmful <= 0.1% on the real-text words)."""
    return {METADATA_KEY: format_threshold(correction_threshold(model))}


def format_threshold(value: float) -> str:
    """A threshold as metadata text: enough digits that p >= threshold decides as the exact value does."""
    return repr(float(value))


METADATA_KEY = "correction_threshold"
"""Key of the threshold in an artifact's user metadata, parity_vectors.json and eval reports."""


def parse_threshold(value: object, where: str) -> float:
    """A threshold in [0, 1] from a command line, metadata or a report; anything else is refused."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ConfigError(where, value, "must be a number between 0 and 1 (a top probability)")
    return number


def stored_threshold(
    model_path: str | Path, metadata: Mapping[str, object] | None = None
) -> tuple[float, str] | None:
    """The correction threshold that belongs to a model file, and where it came from: the artifact's own
    metadata (`metadata`, as read from the file), else the `correction_threshold` of the evaluate report
    written next to it (`<stem>.eval.json`), else None. Values are read as plain numbers."""
    if metadata and metadata.get(METADATA_KEY) not in (None, ""):
        return parse_threshold(
            metadata[METADATA_KEY], f"{model_path} metadata {METADATA_KEY}"
        ), "model metadata"
    path = Path(model_path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    report = path.with_name(f"{stem}.eval.json")
    if report.is_file():
        try:
            value = json.loads(report.read_text(encoding="utf-8")).get(METADATA_KEY)
        except (OSError, ValueError, AttributeError):
            return None
        if value is not None:
            return parse_threshold(value, f"{report} {METADATA_KEY}"), str(report)
    return None


# Picture -----------------------------------------------------------------------------------------------
