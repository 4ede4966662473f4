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
import re
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

TARGET_SPLITS: tuple[str, ...] = ("frequent", "technical")
"""The "must fix / must stay" splits, read at the correction threshold: `frequent` (the most frequent
1-3-letter words of each language, typed right and in every other language's layouts) and `technical`
(URLs, e-mail addresses, paths, hashes, versions, pins, identifiers, numbers with units, dates, times:
every row must stay as typed)."""

AMBIGUOUS = "ambiguous"
"""Texts that are real words in two readings: reported apart, not in the headline figures."""

ALL_SPLITS: tuple[str, ...] = (*REALTEXT_SPLITS, *TARGET_SPLITS, AMBIGUOUS)
"""Every split of the real-text set, in report order."""

WRONG_LAYOUT_OUTCOMES: tuple[str, ...] = ("fixed", "missed", "miscorrected")
"""What happens to a token typed on the wrong layout: re-typed into the token meant, left as typed, or
re-typed into something else."""

TYPED_RIGHT_OUTCOMES: tuple[str, ...] = ("kept", "harmed")
"""What happens to a correctly typed token: left alone, or rewritten."""

PAIRS_FILE = "pairs.csv"
"""The real-text set's `typed,expected` lines (sentences with runs typed on the wrong layout), scored
token by token as the app applies the model."""

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


def load_realtext(splits: Sequence[str] = ALL_SPLITS) -> dict[str, LabelledSplit]:
    """The real-text splits by name (default: every split of ALL_SPLITS)."""
    unknown = [name for name in splits if name not in ALL_SPLITS]
    if unknown:
        raise DataError(f"no real-text split {', '.join(unknown)}; the splits are {', '.join(ALL_SPLITS)}")
    folder = realtext_dir()
    return {name: _read_split(name, folder / f"{name}.csv") for name in splits}


# Groups of rows ----------------------------------------------------------------------------------------

_PIN_OPERATOR = r"(?:===?|[<>!~]=|[<>])"
_HEX_LETTER_AND_DIGIT = re.compile(r"(?=.*[0-9])(?=.*[a-fA-F])")
_EXTENSIONS = (  # file name endings that are not also attribute names (`self.lock`, `obj.map`)
    "py|pyi|pyc|c|h|cc|cpp|hpp|swift|js|mjs|ts|tsx|jsx|css|scss|html|htm|json|yaml|yml|toml|ini|cfg|conf|"
    "txt|md|rst|po|mo|pot|xml|svg|png|jpg|jpeg|gif|ico|woff|woff2|ttf|eot|sh|bat|gz|zip|tar|whl|deb|dll|exe|"
    "csv|pdf|aff|dic|m4|mlmodel|mlpackage|ckpt|pth|onnx"
)
TECHNICAL_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("url", re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://|www\.)\S+")),
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    (
        "pin",
        re.compile(
            rf"[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9](?:\[[\w,.-]+\])?{_PIN_OPERATOR}v?\d+(?:\.[\w*+!-]+)+"
            rf"(?:,{_PIN_OPERATOR}\d[\w.*+!-]*)*"
        ),
    ),
    (
        "date",
        re.compile(
            r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
            r"|\d{1,2}\.\d{1,2}\.\d{4}|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{2}/\d{2}"
        ),
    ),
    ("time", re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|[ap]m|[AP]M)?")),
    (
        "version",
        re.compile(
            r"[vV]\d+(?:\.\d+)*+(?:[-+.~]?[A-Za-z0-9]+)*+"  # possessive: no backtracking into the tail
            r"|(?:\d+:)?\d+\.\d+\.\d+(?:[-+.~]?[A-Za-z0-9]+)*+"
            r"|\d+\.\d+(?:a|b|rc|dev|post|alpha|beta|-\d+)\d*"
        ),
    ),
    (
        "hex",
        re.compile(
            r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})|0[xX][0-9a-fA-F]+"
            r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
            r"|[0-9a-f]{7,}|[0-9A-F]{7,}"
        ),
    ),
    (
        "unit",
        re.compile(
            r"[-+]?\d+(?:\.\d+)?(?:px|pt|em|rem|ex|ch|vh|vw|vmin|vmax|%|ms|us|ns|s|sec|min|h|d|Hz|kHz|MHz|GHz"
            r"|[KkMGTP]i?B|[KMGT]|b|bit|bps|fps|dpi|deg|x|mm|cm|m|km|in)"
        ),
    ),
    (
        "path",
        re.compile(
            r"(?:~|\.{1,2})?/[\w.@+~-]+(?:/[\w.@+~-]*)*"  # /usr/share, ~/.cache, ./build
            rf"|[\w.@+~-]+(?:/[\w.@+~-]+)*/[\w@+~-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})"  # tools/gpg.c
            r"|[A-Za-z]:\\[^\s]*"  # C:\Users
            rf"|[\w@+~-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})"  # setup.py
        ),
    ),
    (
        "identifier",
        re.compile(
            r"_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*|__[A-Za-z0-9]+__"  # snake_case, SCREAMING, __init__
            r"|[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+"  # camelCase
            r"|[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+"  # PascalCase (two humps at least)
            r"|[A-Za-z_][A-Za-z0-9_]+(?:\.[A-Za-z_][A-Za-z0-9_]+)+(?:\(\))?"  # dotted.name
        ),
    ),
)
"""Categories of technical text, tried in this order; a token is in the first whose pattern matches it
whole. The build of the `technical` split and its report share these definitions. Every pattern runs in
time polynomial in the token's length (no nested repetition that can split a run of characters two ways)."""


def technical_category(text: str) -> str | None:
    """The category of one whitespace-free technical token (`url`, `email`, `pin`, `date`, `time`,
    `version`, `hex`, `unit`, `path`, `identifier`), or None when it is none of them. A token needs 3
    letters or digits (`/+`, `2x` are none); hex strings of 7 or more characters need a digit and a
    letter (`deadbeef` is a word, `1234567` a number)."""
    if sum(ch.isalnum() for ch in text) < 3:
        return None
    for name, pattern in TECHNICAL_CATEGORIES:
        if pattern.fullmatch(text):
            if name == "hex" and text[0] not in "#0" and not _HEX_LETTER_AND_DIGIT.match(text):
                continue
            return name
    return None


def letter_count(text: str) -> str:
    """A word's length as a group name: `1`, `2`, `3` letters."""
    return str(len(text))


SPLIT_GROUPS: dict[str, tuple[str, Callable[[str], str | None], tuple[str, ...]]] = {
    "frequent": ("letters", letter_count, ("1", "2", "3")),
    "technical": ("category", technical_category, tuple(name for name, _ in TECHNICAL_CATEGORIES)),
}
"""The splits whose figures at the correction threshold are also reported by group: (what the groups
are, the group of a row's text, the order groups are reported in)."""


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


CALIBRATION_BINS = 15
"""Equal-width bins of the top probability over [0, 1] for the expected calibration error."""


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """The reliability table of the top probability: bin i holds the rows whose top probability lies in
    (i/bins, (i+1)/bins] (bin 0 also holds 0); per bin its `rows`, mean top probability (`confidence`) and
    share of rows whose top class is the label (`accuracy`), None for an empty bin."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    hits = (probs.argmax(axis=1) == labels).astype(np.float64) if len(probs) else np.zeros(0)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = np.bincount(index, minlength=bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    hit_sum = np.bincount(index, weights=hits, minlength=bins)
    return {
        "bins": bins,
        "rows": rows.tolist(),
        "confidence": [float(c / n) if n else None for c, n in zip(confidence_sum, rows, strict=True)],
        "accuracy": [float(h / n) if n else None for h, n in zip(hit_sum, rows, strict=True)],
    }


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float | None:
    """Expected calibration error of the top probability: sum over the bins of `reliability` of
    (rows in the bin / all rows) * |accuracy - mean top probability|; None for no rows."""
    table = reliability(probs, labels, bins)
    total = sum(table["rows"])
    if not total:
        return None
    bins_of = zip(table["rows"], table["accuracy"], table["confidence"], strict=True)
    return float(sum(n / total * abs(accuracy - confidence) for n, accuracy, confidence in bins_of if n))


def calibration_summary(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """{"ece", "bins", "reliability"}: what reports record about calibration."""
    return {
        "ece": expected_calibration_error(probs, labels, bins),
        "bins": bins,
        "reliability": reliability(probs, labels, bins),
    }


def _figures_at(decisions: Decisions, threshold: float) -> dict:
    harmful = decisions.harmful(threshold)
    return {
        "rows": len(decisions.top),
        "correct_rows": int(decisions.correct_row.sum()),
        "wrong_layout_rows": int((~decisions.correct_row).sum()),
        "fixed": decisions.fixed(threshold),
        "kept": None if harmful is None else 1.0 - harmful,
        "rewritten": harmful,
        "miscorrected": decisions.miscorrected(threshold),
    }


def at_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    groups: Sequence[str | None] | None = None,
    order: Sequence[str] = (),
) -> dict:
    """What the app does at one correction threshold: `fixed` (wrong-layout rows corrected to their class
    with top probability >= threshold), `kept` (correctly typed rows left alone), `rewritten` (correctly
    typed rows rewritten: 1 - kept), `miscorrected`, with row counts; and with `groups` (one name per row,
    None: `other`) the same figures per group: those of `order` first, in its order, then the others
    sorted."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    out: dict = {"threshold": float(threshold), **_figures_at(Decisions.of(probs, labels), threshold)}
    if groups is not None:
        names = np.array(["other" if g is None else g for g in groups], dtype=object)
        present = set(names.tolist())
        ordered = [name for name in order if name in present] + sorted(present - set(order))
        out["groups"] = {
            name: _figures_at(Decisions.of(probs[names == name], labels[names == name]), threshold)
            for name in ordered
        }
    return out


def budget_key(budget: float) -> str:
    """`0.1%` for 0.001: the key of a budget in reports."""
    return f"{budget * 100:g}%"


def quality_summary(
    texts: Sequence[str],
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float | None = None,
    group_of: Callable[[str], str | None] | None = None,
    group_order: Sequence[str] = (),
) -> dict:
    """Accuracy, accuracy by length bucket, harmful/fixed shares without a threshold, the thresholds of
    each budget in HARMFUL_BUDGETS, the trade-off curve and the calibration, for one labelled set; with a
    `threshold`, also `at_threshold` (fixed, kept, rewritten at it; per group of `group_of(text)`, in
    `group_order`)."""
    labels = np.asarray(labels, dtype=np.int64)
    decisions = Decisions.of(probs, labels)
    summary = {
        "rows": len(labels),
        "accuracy": float((decisions.top == labels).mean()) if len(labels) else None,
        "length_buckets": length_bucket_accuracy(texts, decisions.top, labels),
        "correct_rows": int(decisions.correct_row.sum()),
        "wrong_layout_rows": int((~decisions.correct_row).sum()),
        "harmful": decisions.harmful(0.0),
        "fixed": decisions.fixed(0.0),
        "thresholds": {budget_key(b): threshold_for(probs, labels, b) for b in HARMFUL_BUDGETS},
        "curve": correction_curve(probs, labels),
        "calibration": calibration_summary(probs, labels),
    }
    if threshold is not None:
        groups = None if group_of is None else [group_of(text) for text in texts]
        summary["at_threshold"] = at_threshold(probs, labels, threshold, groups, group_order)
    return summary


# Models ------------------------------------------------------------------------------------------------


def _logits_function(model: object) -> Callable[[torch.Tensor], np.ndarray]:
    """Logits of a Scorer-like object (`.logits(ids)`) or of a PyTorch network."""
    from layoutnet.modelfile import predict_logits

    if hasattr(model, "logits"):
        return lambda ids: np.asarray(model.logits(ids), dtype=np.float32)  # type: ignore[attr-defined]
    if isinstance(model, torch.nn.Module):
        return lambda ids: predict_logits(model, ids).float().numpy()
    raise TypeError(f"expected a scorer with .logits(ids) or a torch.nn.Module, got {type(model).__name__}")


def evaluate_realtext(
    model: object, splits: Sequence[str] = ALL_SPLITS, threshold: float | None = None
) -> dict:
    """{split: quality_summary(...) and its "path"} of a scorer or network on the set. Every summary has
    `at_threshold` figures at `threshold`, or when it is None at the app's correction threshold chosen
    on THRESHOLD_SPLIT (when that split is among `splits`); SPLIT_GROUPS' splits by group too."""
    from layoutnet.metrics import softmax

    logits_of = _logits_function(model)
    loaded = load_realtext(splits)
    probs = {name: softmax(logits_of(split.ids())) for name, split in loaded.items()}
    if threshold is None and THRESHOLD_SPLIT in loaded:
        found = threshold_for(probs[THRESHOLD_SPLIT], loaded[THRESHOLD_SPLIT].labels, APP_BUDGET)
        threshold = None if found is None else found["threshold"]
    out = {}
    for name, split in loaded.items():
        _, group_of, order = SPLIT_GROUPS.get(name, (None, None, ()))
        out[name] = quality_summary(split.texts, probs[name], split.labels, threshold, group_of, order)
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
