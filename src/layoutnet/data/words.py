"""Word lists for synthesis: wordfreq's vocabulary of a language, cleaned to that language's letters."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from layoutnet.contract import CHAR_TO_ID, PAD_ID, SEQ_LEN
from layoutnet.data import tablecache
from layoutnet.errors import ConfigError, DataError
from layoutnet.layouts import Charset, LayoutSet

_LATIN = "abcdefghijklmnopqrstuvwxyz"
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_HEBREW = "אבגדהוזחטיכלמנסעפצקרשתךםןףץ"

BUILTIN_LETTERS: dict[str, frozenset[str]] = {
    "en": frozenset(_LATIN + _LATIN.upper()),
    "ru": frozenset(_CYRILLIC + _CYRILLIC.upper()),
    "he": frozenset(_HEBREW),
}
"""Letters of the contract languages; each lies in the contract alphabet."""


def letter_set(language: str, layouts: LayoutSet | None = None, extra: str = "") -> frozenset[str]:
    """Characters a word of `language` may consist of.

    en/ru/he: their letters in the contract alphabet. Other languages: the letters (alphabetic
    characters, with their case partners) the language's layouts in `layouts` type. `extra` adds
    characters such as the apostrophe of English `don't`.
    """
    if language in BUILTIN_LETTERS:
        letters = set(BUILTIN_LETTERS[language])
    else:
        own = layouts.for_language(language) if layouts is not None else ()
        if not own:
            known = ", ".join(layouts.languages()) if layouts is not None else "none"
            raise DataError(
                f"no keyboard layout of language {language!r} is loaded (layouts exist for: {known}); add a "
                "layout dump with one (data.layouts_dump) to take its letters and its conversions"
            )
        letters = set()
        for layout in own:
            for ch in layout.chars():
                if ch.isalpha():
                    letters.update(c for c in (ch, ch.lower(), ch.upper()) if len(c) == 1)
    letters.update(extra)
    return frozenset(letters)


def _iter_frequencies(language: str) -> Iterator[tuple[str, float]]:
    """(word, frequency) of wordfreq's `best` list of `language`, most frequent first.

    Reads the list file directly rather than through wordfreq's caches, which would keep every list
    (hundreds of MB for en+ru+he) alive for the whole process.
    """
    import wordfreq

    available = wordfreq.available_languages(wordlist="best")
    if language not in available:
        raise DataError(
            f"wordfreq has no word list for language {language!r}; it has: {', '.join(sorted(available))}. "
            "Use one of those codes as the language key"
        )
    for index, bucket in enumerate(wordfreq.read_cBpack(available[language])):
        freq = 10 ** (-index / 100)  # bucket i holds the words of frequency -i centibels
        for word in bucket:
            yield word, freq


@dataclass(frozen=True)
class WordList:
    """The most frequent clean words of a language and their sampling weights (frequency ** flattening)."""

    language: str
    words: tuple[str, ...]
    weights: torch.Tensor
    """float64 [V], not normalised."""

    def __len__(self) -> int:
        return len(self.words)

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the words and weights (what tables built from this list depend on)."""
        text = np.frombuffer("\n".join(self.words).encode("utf-32-le"), dtype="<u4")
        lengths = np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))
        return tablecache.digest(text, lengths, self.weights.numpy())

    def encode(
        self, charset: Charset | None = None, max_len: int = SEQ_LEN
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids int64 [V, max word length], lengths int64 [V]) of the words, cut to `max_len` characters."""
        charset = charset or Charset()
        width = max(1, min(max_len, max((len(w) for w in self.words), default=1)))
        cut = [word[:width] for word in self.words]
        lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
        # All words as one array of code points, each distinct code point looked up once.
        points = np.frombuffer("".join(cut).encode("utf-32-le"), dtype=np.uint32)
        distinct, inverse = np.unique(points, return_inverse=True)
        table = np.array([charset.id(chr(cp)) for cp in distinct.tolist()], dtype=np.int64)
        ids = np.full((len(cut), width), PAD_ID, dtype=np.int64)
        row = np.repeat(np.arange(len(cut)), lengths)
        column = np.arange(points.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ids[row, column] = table[inverse.reshape(-1)]
        return torch.from_numpy(ids), torch.from_numpy(lengths)


def load_words(
    language: str,
    size: int,
    flattening: float = 0.5,
    layouts: LayoutSet | None = None,
    extra_letters: str = "",
) -> WordList:
    """The `size` most frequent words of `language` in wordfreq made only of `letter_set` characters.

    Words with digits, punctuation or another script (wordfreq's Russian list has Latin `lord`) are
    dropped, then the next most frequent words fill the list up to `size` (or to what the list has).
    """
    if size < 1:
        raise ConfigError(f"languages.{language}.vocab_size", size, "must be at least 1")
    if flattening < 0:
        raise ConfigError("flattening", flattening, "must be >= 0 (1 = true frequencies, 0 = uniform)")
    letters = letter_set(language, layouts, extra_letters)
    return _load_words(language, size, flattening, letters, language in BUILTIN_LETTERS, extra_letters)


@functools.lru_cache(maxsize=32)
def _load_words(
    language: str, size: int, flattening: float, letters: frozenset[str], builtin: bool, extra_letters: str
) -> WordList:
    key = {
        "format": 1,
        "wordfreq": wordfreq_version(),
        "language": language,
        "size": size,
        "flattening": flattening,
        "letters": "".join(sorted(letters)),
        "builtin": builtin,
        "extra_letters": extra_letters,
    }
    arrays = tablecache.cached(
        "words",
        key,
        ("points", "lengths", "weights"),
        lambda: _read_words(language, size, flattening, letters, builtin, extra_letters),
        _consistent_words,
    )
    text = arrays["points"].astype("<u4", copy=False).tobytes().decode("utf-32-le")
    lengths = arrays["lengths"].tolist()
    ends = np.cumsum(arrays["lengths"]).tolist()
    words = tuple(text[end - length : end] for end, length in zip(ends, lengths, strict=True))
    return WordList(language=language, words=words, weights=torch.from_numpy(arrays["weights"].copy()))


def _consistent_words(arrays: dict[str, np.ndarray]) -> bool:
    points, lengths, weights = arrays["points"], arrays["lengths"], arrays["weights"]
    return (
        points.dtype == np.dtype("<u4")
        and lengths.dtype == np.int64
        and weights.dtype == np.float64
        and points.ndim == lengths.ndim == weights.ndim == 1
        and 0 < lengths.size == weights.size
        and bool((lengths > 0).all())
        and int(lengths.sum()) == points.size
        and bool((points < 0x110000).all())
    )


def wordfreq_version() -> str:
    """The installed wordfreq's version (its word lists ship with it), read without importing it."""
    from importlib.metadata import version

    return version("wordfreq")


def _read_words(
    language: str, size: int, flattening: float, letters: frozenset[str], builtin: bool, extra_letters: str
) -> dict[str, np.ndarray]:
    """The word list read from wordfreq: code points (uint32, all words end to end), lengths and weights."""
    words: list[str] = []
    freqs: list[float] = []
    seen: set[str] = set()
    allowed = [ch for ch in letters if not builtin or ch in CHAR_TO_ID]
    clean = re.compile("[" + "".join(re.escape(ch) for ch in sorted(allowed)) + "]+").fullmatch
    for word, freq in _iter_frequencies(language):
        if not word or word in seen or not clean(word):
            continue
        # A word made only of the extra characters (a lone apostrophe) is no word.
        if extra_letters and all(ch in extra_letters for ch in word):
            continue
        seen.add(word)
        words.append(word)
        freqs.append(freq)
        if len(words) == size:
            break
    if not words:
        raise DataError(
            f"wordfreq's {language!r} list has no word made only of the letters "
            f"{''.join(sorted(letters))!r}; check the language's layouts and extra_letters"
        )
    weights = torch.tensor(freqs, dtype=torch.float64) ** flattening
    return {
        "points": np.frombuffer("".join(words).encode("utf-32-le"), dtype="<u4"),
        "lengths": np.fromiter(map(len, words), dtype=np.int64, count=len(words)),
        "weights": weights.numpy(),
    }


def extra_chars(wordlists: Iterable[WordList], layouts: Iterable[object] = ()) -> list[str]:
    """Characters of the word lists and layouts outside the contract alphabet, in first-seen order."""
    seen: dict[str, None] = {}
    for wordlist in wordlists:
        for ch in dict.fromkeys("".join(wordlist.words)):  # distinct characters, first-seen order
            if ch not in CHAR_TO_ID:
                seen[ch] = None
    for layout in layouts:
        for ch in sorted(layout.chars()):  # type: ignore[attr-defined]
            if ch not in CHAR_TO_ID:
                seen[ch] = None
    return list(seen)
