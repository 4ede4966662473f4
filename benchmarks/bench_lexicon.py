"""What a word lookup in the training vocabulary gets right on the real-text set (a reference point).

The models learn which letter strings are words from wordfreq's lists. This scores a rule that has
those lists by heart instead, at several vocabulary sizes: read the text as typed and through every
other language's layouts, keep the reading whose words are all in the list with the highest mean
log-frequency (the text as typed on a tie), and leave the text as typed when no reading is known.
Where it is wrong, a model trained on the same lists has to guess from spelling alone.

    python benchmarks/bench_lexicon.py --sizes 30000 200000 0     # 0: wordfreq's whole list
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from common import save_result
from layoutnet.contract import CLASSES, class_name
from layoutnet.data.words import BUILTIN_LETTERS, load_words
from layoutnet.layouts import LayoutSet
from layoutnet.quality import AMBIGUOUS, REALTEXT_SPLITS, load_realtext

LANGUAGES = ("en", "ru", "he")
WHOLE_LIST = 10**8
"""A vocabulary size beyond every wordfreq list: the whole list."""


def lexicon(language: str, size: int) -> dict[str, float]:
    """word -> log10 frequency of the `size` most frequent clean words (flattening 1: true frequencies)."""
    words = load_words(
        language, size or WHOLE_LIST, flattening=1.0, extra_letters="'" if language == "en" else ""
    )
    return {
        word: math.log10(float(weight))
        for word, weight in zip(words.words, words.weights.tolist(), strict=True)
    }


def active_languages(text: str) -> tuple[str, ...]:
    """The language whose letters the text has (all three for text with no letters)."""
    found = tuple(lang for lang in LANGUAGES if any(ch in BUILTIN_LETTERS[lang] for ch in text))
    return found[:1] or LANGUAGES


def score(text: str, words: dict[str, float]) -> float | None:
    """Mean log-frequency of the text's words, None when one of them is not in the list."""
    tokens = [token.strip(".,!?;:\"'()-") for token in text.lower().split(" ")]
    tokens = [token for token in tokens if token]
    if not tokens or any(token not in words for token in tokens):
        return None
    return sum(words[token] for token in tokens) / len(tokens)


def lookup_class(text: str, lexicons: dict[str, dict[str, float]], layouts: LayoutSet) -> str:
    readings: list[tuple[float, int, str]] = []  # (score, typed first on a tie, class)
    for active in active_languages(text):
        typed = score(text, lexicons[active])
        if typed is not None:
            readings.append((typed, 1, active))
        for active_layout in layouts.for_language(active):
            for meant in LANGUAGES:
                if meant == active:
                    continue
                for meant_layout in layouts.for_language(meant):
                    converted = layouts.convert(text, active_layout.id, meant_layout.id)
                    value = score(converted, lexicons[meant])
                    if value is not None:
                        readings.append((value, 0, class_name(meant, active)))
    return max(readings)[2] if readings else active_languages(text)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30000, 200000, 0])
    args = parser.parse_args()
    layouts = LayoutSet.builtin()
    splits = load_realtext((*REALTEXT_SPLITS, AMBIGUOUS))
    results = []
    for size in args.sizes:
        lexicons = {lang: lexicon(lang, size) for lang in LANGUAGES}
        row: dict = {
            "vocab_size": size or "whole list",
            "words_per_language": {k: len(v) for k, v in lexicons.items()},
        }
        for name, split in splits.items():
            predicted = np.array([CLASSES.index(lookup_class(t, lexicons, layouts)) for t in split.texts])
            typed = np.array(["_from_" not in CLASSES[label] for label in split.labels])
            rewrites = np.array(["_from_" in CLASSES[p] for p in predicted])
            row[name] = {
                "accuracy": round(float(np.mean(predicted == split.labels)), 4),
                "harmful": round(float(np.mean(rewrites[typed])), 4) if typed.any() else None,
                "fixed": round(float(np.mean((predicted == split.labels)[~typed])), 4)
                if (~typed).any()
                else None,
            }
        print(row)
        results.append(row)
    save_result("lexicon", {"results": results})


if __name__ == "__main__":
    main()
