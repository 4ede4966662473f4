"""Build layoutnet's real-text development set (src/layoutnet/resources/realtext/).

Real words and running text in English, Russian and Hebrew from packages this project does not train
on (not wordfreq), typed through the layouts of the shared macOS layout dump:

- Hunspell dictionaries from Debian (`hunspell-en-us`, `hunspell-ru`, `hunspell-he`): word lists, and,
  with their affix rules (read by `spylls`, a pure-Python Hunspell), the test of whether a text is a real
  word, inflected and prefixed forms included.
- gettext catalogues from PyPI wheels (Django's and Sphinx's `ru` and `he` translations; their English
  `msgid`s): running text and the words people actually write, and the ranking of the frequent words.
- technical text from those packages and `xtrans-dev` (a git changelog: commit hashes): wheel metadata,
  sources, CSS/JS, catalogue headers, Debian changelogs and md5sums.
- wagtail's `ru`/`he` catalogues, for the typed,expected file only (no split reads them).

Every source is pinned (version and sha256 below). The files are fetched with the ordinary clients
(`apt-get download`, `pip download --no-deps`) into a cache directory, or taken from there when present;
nothing is installed. The build is deterministic (fixed seed, sorted inputs).

    python scripts/build_realtext.py                    # fetch into ~/.cache/layoutnet-realtext, build
    python scripts/build_realtext.py --cache DIR --no-download   # only use files already in DIR

Output: `words.csv` (1-3 real words), `sentences.csv` (sentence starts, 20-40 characters), `short.csv`
(one 2-4-letter word), each balanced over the 9 classes; `frequent.csv` (each language's most frequent
1-3-letter words typed right and on every other layout), `technical.csv` (tokens that must stay as
typed); `ambiguous.csv` (texts that are real words in two readings, taken out of the splits), all
`text,label`; and `pairs.csv` (`typed,expected` lines with runs typed on the wrong layout).
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import hashlib
import io
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from layoutnet.contract import ALPHABET, CLASSES, SEQ_LEN, class_name  # noqa: E402
from layoutnet.correction import DEFAULT_LAYOUTS  # noqa: E402
from layoutnet.layouts import LayoutSet  # noqa: E402
from layoutnet.quality import PAIRS_FILE, TECHNICAL_CATEGORIES, technical_category  # noqa: E402

SEED = 20260101
SPYLLS_VERSION = "0.1.7"
"""The Hunspell reader the ambiguity check was built with (pyproject's `realtext` extra pins it)."""
OUT_DIR = ROOT / "src" / "layoutnet" / "resources" / "realtext"
DUMP = ROOT.parent / "shared" / "reference" / "macos_keyboard_layouts.json"

ROWS_PER_CLASS = {"words": 400, "sentences": 300, "short": 400}
"""Rows of each class in each split (9 classes)."""

FREQUENT_PER_LANGUAGE = 75
"""Words of each language in the `frequent` split: its most frequent 1-3-letter words in running text."""

NAMED_FREQUENT: dict[str, tuple[str, ...]] = {
    "en": ("the", "in", "is", "to", "of", "it"),
    "ru": ("не", "на", "из", "мы", "ты", "до", "от", "вы"),
    "he": ("את", "לא", "של", "זה", "מה", "כן"),
}
"""The corrections issue 18 names as the most common: in the `frequent` split even where the software
catalogues' counts rank them lower (`ты` and `מה` are rare in UI text), when Hunspell knows them."""

TECHNICAL_PER_CATEGORY = 120
"""Rows of each technical category (fewer when the sources hold fewer distinct ones)."""

PAIRS_PER_LANGUAGE = 100
"""Lines of each language in the typed,expected file."""

LAYOUT_WEIGHTS: dict[str, dict[str, float]] = {
    "en": {"us": 0.5, "abc": 0.5},
    "ru": {"russianwin": 0.7, "russian": 0.3},
    "he": {"hebrew": 0.6, "hebrew_pc": 0.25, "hebrew_qwerty": 0.15},
}
"""Layout variants per language (as conf/data/synthetic.yaml weighs them), all read from the dump."""


@dataclass(frozen=True)
class Source:
    kind: str  # "deb" or "wheel"
    package: str
    version: str
    filename: str
    sha256: str
    licence: str


SOURCES: dict[str, Source] = {
    "hunspell-en-us": Source(
        "deb",
        "hunspell-en-us",
        "1:2020.12.07-2",
        "hunspell-en-us_1%3a2020.12.07-2_all.deb",
        "04fdf8f6d3171d72980e8ebe4cb1a00c8100e609025cabb65dfb8f7170e65e07",
        "SCOWL / en_US Hunspell: BSD-like (Kevin Atkinson et al.)",
    ),
    "hunspell-ru": Source(
        "deb",
        "hunspell-ru",
        "1:7.5.0-1",
        "hunspell-ru_1%3a7.5.0-1_all.deb",
        "ef3f0a54a8e52682be80932e414b97d7d268d4a33dfcb5b27b46142b5d84cfe3",
        "ru_RU by Alexander I. Lebedev: custom BSD 4-clause",
    ),
    "hunspell-he": Source(
        "deb",
        "hunspell-he",
        "1:7.5.0-1",
        "hunspell-he_1%3a7.5.0-1_all.deb",
        "6285f541a0b5925b7b5d0be4823d2ed759ab43ad4f87bc23d71005491a6147ff",
        "he_IL (Hspell) by Nadav Har'El and Dan Kenigsberg: AGPL-3+",
    ),
    "django": Source(
        "wheel",
        "django",
        "5.2.9",
        "django-5.2.9-py3-none-any.whl",
        "3a4ea88a70370557ab1930b332fd2887a9f48654261cdffda663fef5976bb00a",
        "BSD-3-Clause (Django Software Foundation and translators)",
    ),
    "sphinx": Source(
        "wheel",
        "sphinx",
        "8.2.3",
        "sphinx-8.2.3-py3-none-any.whl",
        "4405915165f13521d875a8c29c8970800a0141c14cc5416a38feca4ea5d9b9c3",
        "BSD-2-Clause (Sphinx team and translators)",
    ),
    "xtrans-dev": Source(
        "deb",
        "xtrans-dev",
        "1.4.0-1",
        "xtrans-dev_1.4.0-1_all.deb",
        "9ce1af9464faee0c679348dd11cdf63934c12e734a64e0903692b0cb5af38e06",
        "MIT/X11 (X.Org Foundation and contributors)",
    ),
    "wagtail": Source(
        "wheel",
        "wagtail",
        "6.3.1",
        "wagtail-6.3.1-py3-none-any.whl",
        "d7d4e4fcb5edb4a5d0aaff5de72eaf33a51e4fa26c2d3a57801c58c4da35b209",
        "BSD-3-Clause (Wagtail core team and translators)",
    ),
}
"""Every pinned file. `technical` is read from django, sphinx, the hunspell packages and xtrans-dev
(commit hashes of its git changelog); the typed,expected file only from wagtail, which no split uses."""


class BuildError(RuntimeError):
    pass


# Fetching -----------------------------------------------------------------------------------------------


def fetch(source: Source, cache: Path, download: bool) -> Path:
    path = cache / source.filename
    if not path.is_file():
        if not download:
            raise BuildError(
                f"{path} is missing: fetch {source.package}=={source.version} into {cache} "
                "or run without --no-download"
            )
        cache.mkdir(parents=True, exist_ok=True)
        if source.kind == "deb":
            command = ["apt-get", "download", f"{source.package}={source.version}"]
        else:
            command = [
                "pip",
                "download",
                "--no-deps",
                "-d",
                str(cache),
                f"{source.package}=={source.version}",
            ]
        done = subprocess.run(command, cwd=cache, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.is_file():
            raise BuildError(
                f"could not fetch {source.package} {source.version} with `{' '.join(command)}`: "
                f"{(done.stderr or done.stdout).strip()[-300:]} (for apt-get, run `apt-get update` first)"
            )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise BuildError(
            f"{path}: sha256 {digest} is not the pinned {source.sha256}; delete it and fetch again"
        )
    return path


def deb_files(path: Path) -> dict[str, bytes]:
    """Every regular file of a .deb (an ar archive holding control.tar.* and data.tar.*), without dpkg:
    data files by their path (`usr/share/doc/...`), control files as `control/<name>` (`control/md5sums`)."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise BuildError(f"{path} is not a Debian package")
    files: dict[str, bytes] = {}
    pos = 8
    while pos < len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith(("data.tar", "control.tar")):
            prefix = "" if name.startswith("data.tar") else "control/"
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member) if member.isfile() else None
                    if extracted is not None:
                        files[prefix + member.name.removeprefix("./")] = extracted.read()
    return files


def deb_member(path: Path, wanted: str) -> bytes:
    """One file of a .deb by its path."""
    found = deb_files(path).get(wanted.lstrip("/"))
    if found is None:
        raise BuildError(f"{path} has no {wanted}")
    return found


def wheel_members(path: Path, pattern: str) -> dict[str, bytes]:
    regex = re.compile(pattern)
    with zipfile.ZipFile(path) as wheel:
        return {name: wheel.read(name) for name in sorted(wheel.namelist()) if regex.fullmatch(name)}


# Parsing ------------------------------------------------------------------------------------------------


def hunspell_words(dic: bytes) -> list[str]:
    lines = dic.decode("utf-8").splitlines()[1:]
    return sorted({line.split("/", 1)[0].strip() for line in lines if line.strip()})


def _unquote(fragment: str) -> str:
    body = fragment.strip()[1:-1]
    return body.replace('\\"', '"').replace("\\n", " ").replace("\\t", " ").replace("\\\\", "\\")


def po_pairs(text: str) -> list[tuple[str, list[str]]]:
    """(msgid, [msgstr, msgstr[1], ...]) of a gettext catalogue; the header entry is dropped."""
    pairs: list[tuple[str, list[str]]] = []
    msgid: list[str] = []
    msgstrs: list[list[str]] = []
    current: list[str] | None = None

    def flush() -> None:
        if msgid or msgstrs:
            ident = "".join(msgid)
            if ident:
                pairs.append((ident, ["".join(s) for s in msgstrs]))

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") or not line:
            continue
        if line.startswith("msgctxt"):
            continue
        if line.startswith("msgid_plural"):
            current = None
            continue
        if line.startswith("msgid "):
            flush()
            msgid, msgstrs = [], []
            msgid.append(_unquote(line[6:]))
            current = msgid
        elif line.startswith("msgstr"):
            msgstrs.append([_unquote(line.split(" ", 1)[1])])
            current = msgstrs[-1]
        elif line.startswith('"') and current is not None:
            current.append(_unquote(line))
    flush()
    return pairs


_MARKUP = re.compile(r"%\([^)]*\)[sdifr]|%[sdifr]|\{[^}]*\}|<[^>]*>|&[a-z]+;|https?://\S+|\S+@\S+")
_TYPOGRAPHY = str.maketrans({"«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "—": "-", "–": "-", "’": "'"})
_LETTERS = {
    "en": set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "ru": set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"),
    "he": set("אבגדהוזחטיכלמנסעפצקרשתךםןףץ"),
}
_OTHER_LETTERS = {lang: set().union(*(v for k, v in _LETTERS.items() if k != lang)) for lang in _LETTERS}


def clean_running(text: str) -> str:
    text = _MARKUP.sub(" ", text.translate(_TYPOGRAPHY)).replace("…", "...").replace("_", "")
    return " ".join(text.split())


def script_clean(text: str, language: str) -> bool:
    """Only characters of the contract alphabet, letters of `language` only, at least one letter."""
    return (
        all(ch in ALPHABET for ch in text)
        and not any(ch in _OTHER_LETTERS[language] for ch in text)
        and any(ch in _LETTERS[language] for ch in text)
    )


def is_word(token: str, language: str) -> bool:
    return len(token) >= 1 and all(ch in _LETTERS[language] for ch in token)


_OPENING = "\"'([{<*"
_CLOSING = "\"')]}>*,;:.!?"


def strip_token(token: str) -> str:
    """A whitespace token without the quotes, brackets and sentence punctuation around it."""
    return token.lstrip(_OPENING).rstrip(_CLOSING)


def standalone_words(text: str, language: str) -> list[str]:
    """The words of a running-text entry that stand alone between spaces (punctuation around them
    aside), as written: `e.g.`, `don't`, `Y-m-d` and `ה%(name)s` hold no word; `не` in `(не сохранено)`
    is one."""
    tokens = (strip_token(token) for token in text.translate(_TYPOGRAPHY).split())
    return [token for token in tokens if is_word(token, language)]


# Corpus -------------------------------------------------------------------------------------------------


@dataclass
class Language:
    dictionary: list[str]  # lower-case dictionary words
    running: Counter  # word tokens of running text (lower case) and their counts
    sentences: list[str]  # cleaned running-text entries
    spelled: Callable[[str], bool] | None = None  # Hunspell's verdict with the affix rules
    tokens: Counter = field(default_factory=Counter)  # whole words between spaces, as written

    def lexicon(self) -> set[str]:
        return set(self.dictionary) | set(self.running)


def hunspell_speller(dic: bytes, aff: bytes) -> Callable[[str], bool]:
    """Whether Hunspell accepts a word, with the dictionary's affix rules: the `.dic` lists stems
    (`книга`, `חבר`), the rules add the forms people type (`книгами`, `לחבר`)."""
    try:
        from spylls.hunspell import Dictionary
    except ImportError:
        raise BuildError(
            "the ambiguity check reads Hunspell's affix rules with spylls, which is not installed: "
            f"pip install 'spylls=={SPYLLS_VERSION}' (or pip install -e '.[realtext]')"
        ) from None
    with tempfile.TemporaryDirectory() as folder:
        stem = Path(folder) / "dictionary"
        stem.with_suffix(".dic").write_bytes(dic)
        stem.with_suffix(".aff").write_bytes(aff)
        dictionary = Dictionary.from_files(str(stem))
    return functools.lru_cache(maxsize=None)(dictionary.lookup)


def fetch_all(cache: Path, download: bool) -> dict[str, Path]:
    """Every pinned file of SOURCES, by source name."""
    return {name: fetch(source, cache, download) for name, source in SOURCES.items()}


def load_corpus(paths: dict[str, Path]) -> dict[str, Language]:
    files = {
        "en": ("hunspell-en-us", "en_US"),
        "ru": ("hunspell-ru", "ru_RU"),
        "he": ("hunspell-he", "he_IL"),
    }
    dictionaries = {
        language: deb_member(paths[package], f"usr/share/hunspell/{name}.dic")
        for language, (package, name) in files.items()
    }
    affixes = {
        language: deb_member(paths[package], f"usr/share/hunspell/{name}.aff")
        for language, (package, name) in files.items()
    }
    catalogues: dict[str, list[bytes]] = {"ru": [], "he": []}
    for name in ("django", "sphinx"):
        for member, data in wheel_members(paths[name], r".*/locale/(ru|he)/LC_MESSAGES/[^/]+\.po").items():
            catalogues["ru" if "/ru/" in member else "he"].append(data)
    texts: dict[str, list[str]] = {"en": [], "ru": [], "he": []}
    seen_ids: set[str] = set()
    for language, blobs in catalogues.items():
        for blob in blobs:
            for msgid, msgstrs in po_pairs(blob.decode("utf-8")):
                texts[language].extend(s for s in msgstrs if s)
                if msgid not in seen_ids:  # the English source strings, once
                    seen_ids.add(msgid)
                    texts["en"].append(msgid)
    corpus = {}
    for language in ("en", "ru", "he"):
        words = [w for w in hunspell_words(dictionaries[language]) if is_word(w, language) and w == w.lower()]
        running: Counter = Counter()
        tokens: Counter = Counter()
        sentences = []
        for raw in texts[language]:
            tokens.update(standalone_words(raw, language))
            entry = clean_running(raw)
            for token in re.findall(r"\w+", entry):
                if is_word(token, language):
                    running[token.lower()] += 1
            if entry:
                sentences.append(entry)
        speller = hunspell_speller(dictionaries[language], affixes[language])
        corpus[language] = Language(words, running, sorted(set(sentences)), speller, tokens)
    return corpus


# Samples ------------------------------------------------------------------------------------------------


def weighted_choice(rng: random.Random, weights: dict[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def dump_layouts(dump: Path) -> LayoutSet:
    """The layouts of LAYOUT_WEIGHTS, read from the dump alone (none of layoutnet's built-in tables)."""
    ids = [layout for weights in LAYOUT_WEIGHTS.values() for layout in weights]
    return LayoutSet.from_dump(dump, layout_ids=ids, base=LayoutSet([]))


class Typist:
    """Types meant text through the dump's layouts."""

    def __init__(self, layouts: LayoutSet):
        self.layouts = layouts

    def typable(self, text: str, layout_id: str) -> bool:
        layout = self.layouts[layout_id]
        return all(ch == " " or layout.locate(ch) is not None for ch in text)

    def type(self, text: str, meant_layout: str, active_layout: str) -> str:
        return self.layouts.convert(text, meant_layout, active_layout)


def sentence_start(entry: str, language: str, rng: random.Random) -> str | None:
    """A 20-40 character prefix of a running-text entry, ending at a word boundary, script-clean."""
    if not entry or entry[0] not in _LETTERS[language]:
        return None
    words = entry.split(" ")
    if len(words) < 3:
        return None
    limit = rng.randint(20, 40)
    prefix = ""
    for word in words:
        candidate = f"{prefix} {word}" if prefix else word
        if len(candidate) > limit:
            break
        prefix = candidate
    if len(prefix) < 20 or not script_clean(prefix, language):
        return None
    return prefix


class Builder:
    def __init__(self, corpus: dict[str, Language], layouts: LayoutSet, seed: int = SEED):
        self.corpus = corpus
        self.typist = Typist(layouts)
        self.rng = random.Random(seed)
        self.lexicons = {lang: c.lexicon() for lang, c in corpus.items()}
        self.pools: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
        for language, c in corpus.items():
            for name, (low, high) in {"words": (2, 12), "short": (2, 4)}.items():
                running = sorted(w for w in c.running if low <= len(w) <= high)
                dictionary = sorted(w for w in c.dictionary if low <= len(w) <= high)
                # Half of the draws from running text (weighted by sqrt of count), half from the dictionary.
                run_total = sum(c.running[w] ** 0.5 for w in running) or 1.0
                words = running + dictionary
                weights = [0.5 * c.running[w] ** 0.5 / run_total for w in running] + [
                    0.5 / max(len(dictionary), 1)
                ] * len(dictionary)
                self.pools[(language, name)] = (words, weights)

    def meant_text(self, split: str, language: str) -> str | None:
        if split == "sentences":
            entry = self.rng.choice(self.corpus[language].sentences)
            return sentence_start(entry, language, self.rng)
        words, weights = self.pools[(language, split)]
        count = 1 if split == "short" else self.rng.choices([1, 2, 3], weights=[0.5, 0.3, 0.2])[0]
        return " ".join(self.rng.choices(words, weights=weights, k=count))

    def readings(self, shown: str, active: str) -> list[tuple[str, str]]:
        """(language, text) of every reading of shown text typed on a layout of `active`: as typed, and
        re-typed on each layout of each other language."""
        found = [(active, shown)]
        for active_layout in LAYOUT_WEIGHTS[active]:
            if not self.typist.typable(shown, active_layout):
                continue
            for other, layouts in LAYOUT_WEIGHTS.items():
                if other == active:
                    continue
                for other_layout in layouts:
                    found.append((other, self.typist.type(shown, active_layout, other_layout)))
        return found

    def real_word(self, token: str, language: str) -> bool:
        """In the lexicon (dictionary and running-text words), or a form Hunspell's affix rules allow."""
        if token.lower() in self.lexicons[language]:
            return True
        spelled = self.corpus[language].spelled
        return spelled is not None and is_word(token.lower(), language) and spelled(token.lower())

    def is_word_text(self, text: str, language: str) -> bool:
        tokens = [token for token in text.split(" ") if token]
        return bool(tokens) and all(self.real_word(token, language) for token in tokens)

    def ambiguous(self, shown: str, active: str, meant: str) -> bool:
        """Shown text that is a real word (or words) as typed and also in another language's reading:
        no model can tell whether it needs a correction. A wrong-layout row's meant text is real by
        construction, and a layout may type one letter from several keys (`hebrew_qwerty` types `ו`
        from `o`, `u` and `v`), so re-typing the shown text need not give the meant text back: its
        reading is not looked for."""
        if not self.is_word_text(shown, active):
            return False
        if meant != active:
            return True
        readings = self.readings(shown, active)[1:]
        return any(self.is_word_text(text, language) for language, text in readings)

    def sample(self, split: str, meant: str, active: str) -> tuple[str, bool] | None:
        text = self.meant_text(split, meant)
        if not text:
            return None
        meant_layout = weighted_choice(self.rng, LAYOUT_WEIGHTS[meant])
        if not self.typist.typable(text, meant_layout):
            return None
        if meant == active:
            shown = text
        else:
            shown = self.typist.type(text, meant_layout, weighted_choice(self.rng, LAYOUT_WEIGHTS[active]))
        if not shown.strip() or any(ch not in ALPHABET for ch in shown):
            return None
        ambiguous = split != "sentences" and self.ambiguous(shown, active, meant)
        return shown, ambiguous

    def build(self) -> tuple[dict[str, list[tuple[str, str]]], list[tuple[str, str]]]:
        splits: dict[str, list[tuple[str, str]]] = {}
        ambiguous: dict[tuple[str, str], None] = {}
        for split, per_class in ROWS_PER_CLASS.items():
            rows: list[tuple[str, str]] = []
            for label in CLASSES:
                meant, _, active = label.partition("_from_")
                active = active or meant
                assert class_name(meant, active) == label
                kept: dict[str, None] = {}
                attempts = 0
                while len(kept) < per_class:
                    attempts += 1
                    if attempts > per_class * 200:
                        raise BuildError(f"{split}/{label}: only {len(kept)} rows after {attempts} draws")
                    drawn = self.sample(split, meant, active)
                    if drawn is None:
                        continue
                    shown, is_ambiguous = drawn
                    if is_ambiguous:
                        ambiguous[(shown, label)] = None
                    elif shown not in kept:
                        kept[shown] = None
                rows.extend((text, label) for text in kept)
            splits[split] = rows
        return splits, list(ambiguous)

    def frequent_words(self, language: str) -> list[str]:
        """The FREQUENT_PER_LANGUAGE most frequent 1-3-letter words of `language` that stand alone in its
        running text and that Hunspell knows (a dictionary stem, or a form its affix rules allow), most
        frequent first, then the words of NAMED_FREQUENT not among them. A word is written as it is
        most often written in lower case, else as most often written (`I`)."""
        c = self.corpus[language]
        counts: Counter = Counter()
        forms: dict[str, Counter] = {}
        for token, count in c.tokens.items():
            if len(token) <= 3:
                counts[token.lower()] += count
                forms.setdefault(token.lower(), Counter())[token] += count
        stems = set(c.dictionary)

        def real(form: str) -> bool:
            return form.lower() in stems or (c.spelled is not None and c.spelled(form))

        def written(word: str) -> str:
            if word in forms[word]:
                return word
            return min(forms[word].items(), key=lambda item: (-item[1], item[0]))[0]

        ranked = [written(word) for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
        chosen = [form for form in ranked if real(form)][:FREQUENT_PER_LANGUAGE]
        chosen += [word for word in NAMED_FREQUENT[language] if word not in chosen and real(word)]
        return chosen

    def frequent(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(rows, ambiguous rows) of the `frequent` split: each frequent word typed right, and typed on
        every layout of every other language from every layout of its own that can type it (distinct
        texts per class). Every row must be fixed or must stay: a word typed right stays (its reading on
        another layout is far less likely, however real); a wrong-layout row whose text is a real word of
        the active language goes to the ambiguous rows; a text that two wrong-layout classes share (`ещ`
        is `to` and `אם` typed on Russian) must be fixed but has no one right class, and is left out."""
        rows: dict[tuple[str, str], None] = {}
        for meant in LAYOUT_WEIGHTS:
            for word in self.frequent_words(meant):
                rows[(word, meant)] = None
                for active in LAYOUT_WEIGHTS:
                    if active == meant:
                        continue
                    for meant_layout in sorted(LAYOUT_WEIGHTS[meant]):
                        if not self.typist.typable(word, meant_layout):
                            continue
                        for active_layout in sorted(LAYOUT_WEIGHTS[active]):
                            shown = self.typist.type(word, meant_layout, active_layout)
                            if shown.strip() and all(ch in ALPHABET for ch in shown):
                                rows[(shown, class_name(meant, active))] = None
        wrong_labels: dict[str, set[str]] = {}
        for text, label in rows:
            if "_from_" in label:
                wrong_labels.setdefault(text, set()).add(label)
        kept: list[tuple[str, str]] = []
        ambiguous: list[tuple[str, str]] = []
        for text, label in sorted(rows, key=lambda row: CLASSES.index(row[1])):  # stable: rank order
            meant, _, active = label.partition("_from_")
            if not active:
                kept.append((text, label))
            elif self.ambiguous(text, active, meant):
                ambiguous.append((text, label))
            elif len(wrong_labels[text]) == 1:
                kept.append((text, label))
        return kept, ambiguous

    def pairs(
        self, sentences: dict[str, list[str]], technical: list[str], rng: random.Random
    ) -> list[tuple[str, str]]:
        """(typed, expected) lines: PAIRS_PER_LANGUAGE sentences of each language, 70% of them with a run
        of 1-4 words typed on another language's layout (from the first word in 60% of those: the user
        starts typing before noticing the layout), 15% with a technical token inserted (typed right).
        Each language is typed on its layout of DEFAULT_LAYOUTS (the layouts `predict` and `evaluate`
        re-type with); a run that does not type back to its words exactly is drawn again."""
        layouts = self.typist.layouts
        out: list[tuple[str, str]] = []
        for language in LAYOUT_WEIGHTS:
            pool = list(sentences[language])
            rng.shuffle(pool)
            made = 0
            for sentence in pool:
                if made == PAIRS_PER_LANGUAGE:
                    break
                expected = sentence.split(" ")
                typed = list(expected)
                if rng.random() < 0.7:
                    active = rng.choice([other for other in LAYOUT_WEIGHTS if other != language])
                    start = 0 if rng.random() < 0.6 else rng.randrange(len(expected))
                    end = start + rng.randint(1, min(4, len(expected) - start))
                    mine, theirs = DEFAULT_LAYOUTS[language], DEFAULT_LAYOUTS[active]
                    typed[start:end] = [layouts.convert(word, mine, theirs) for word in expected[start:end]]
                    if any(
                        not all(ch in ALPHABET for ch in shown)
                        or layouts.convert(shown, theirs, mine) != word
                        for shown, word in zip(typed[start:end], expected[start:end], strict=True)
                    ):
                        continue
                if technical and rng.random() < 0.15:
                    token = rng.choice(technical)
                    position = rng.randrange(len(expected) + 1)
                    typed.insert(position, token)
                    expected.insert(position, token)
                out.append((" ".join(typed), " ".join(expected)))
                made += 1
            if made < PAIRS_PER_LANGUAGE:
                raise BuildError(f"pairs/{language}: only {made} lines from {len(pool)} sentences")
        return out


# Technical text -----------------------------------------------------------------------------------------

_PIECES = re.compile(r"[()\[\]{},;\"'`<>|]|(?<![=<>!~])=(?!=)")


def technical_candidates(text: str) -> list[str]:
    """Whitespace tokens of a file and their pieces between brackets, quotes, commas and single `=`
    (`get_user_model():` gives `get_user_model`, `max_length=100` gives `100`), each without the
    punctuation around it: the tokens a user could type or paste."""
    found: list[str] = []
    for token in text.split():
        for piece in dict.fromkeys([token, *_PIECES.split(token)]):
            piece = strip_token(piece)
            if piece:
                found.append(piece)
    return found


def po_header(text: str) -> str:
    """The comments and header entry of a gettext catalogue (translators, e-mail addresses, dates)."""
    first = text.find("msgid ")
    second = text.find("\nmsgid ", first + 1) if first >= 0 else -1
    return text if second < 0 else text[:second]


def technical_documents(paths: dict[str, Path], wheels: tuple[str, ...], debs: tuple[str, ...]) -> list[str]:
    """Texts to take technical tokens from: the wheels' METADATA, RECORD, Python sources, CSS,
    unminified JavaScript and catalogue headers; the Debian packages' md5sums, documentation
    (changelogs, copyright) and C sources."""
    texts: list[str] = []
    pattern = r".*\.dist-info/(METADATA|RECORD|entry_points\.txt)|.*\.(py|css|js|po)"
    for name in wheels:
        for member, data in wheel_members(paths[name], pattern).items():
            if member.endswith(".min.js"):
                continue
            text = data.decode("utf-8", errors="replace")
            if member.endswith(".po"):
                text = po_header(text)
            elif member.endswith("RECORD"):  # the paths, not the base64 digests beside them
                text = "\n".join(line.split(",", 1)[0] for line in text.splitlines())
            texts.append(text)
    for name in debs:
        for member, data in sorted(deb_files(paths[name]).items()):
            wanted = member == "control/md5sums" or member.startswith(("usr/share/doc/", "usr/include/"))
            if wanted:
                texts.append(
                    (gzip.decompress(data) if member.endswith(".gz") else data).decode("utf-8", "replace")
                )
    return texts


def technical_tokens(texts: list[str]) -> dict[str, list[str]]:
    """{category: tokens} of every technical token in `texts` (printable ASCII, 2-200 characters, one
    per distinct first SEQ_LEN characters: the model reads no more, so longer tokens that share them
    are one input), sorted."""
    found: dict[str, dict[str, str]] = {name: {} for name, _ in TECHNICAL_CATEGORIES}
    for text in texts:
        for token in technical_candidates(text):
            if not 2 <= len(token) <= 200 or not all(ch.isascii() and ch in ALPHABET for ch in token):
                continue
            category = technical_category(token)
            if category is not None:
                prefix = token[:SEQ_LEN]
                held = found[category].get(prefix)
                if held is None or token < held:
                    found[category][prefix] = token
    return {name: sorted(tokens.values()) for name, tokens in found.items()}


def technical_rows(tokens: dict[str, list[str]], rng: random.Random) -> list[tuple[str, str]]:
    """(token, category) rows: TECHNICAL_PER_CATEGORY tokens of each category drawn with `rng` (all of
    them when there are fewer), no two sharing their first SEQ_LEN characters."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, _ in TECHNICAL_CATEGORIES:
        pool = [token for token in tokens[name] if token[:SEQ_LEN] not in seen]
        chosen = sorted(
            pool if len(pool) <= TECHNICAL_PER_CATEGORY else rng.sample(pool, TECHNICAL_PER_CATEGORY)
        )
        seen.update(token[:SEQ_LEN] for token in chosen)
        rows.extend((token, name) for token in chosen)
    return rows


def catalogue_sentences(path: Path, typist: Typist) -> dict[str, list[str]]:
    """Running-text entries of a wheel's ru and he catalogues (and their English msgids) with 3-12
    words, without placeholders or markup, script-clean and typable on the language's layout of
    DEFAULT_LAYOUTS."""
    found: dict[str, set[str]] = {"en": set(), "ru": set(), "he": set()}
    for member, data in wheel_members(path, r".*/locale/(ru|he|he_IL)/LC_MESSAGES/[^/]+\.po").items():
        language = "ru" if "/ru/" in member else "he"
        for msgid, msgstrs in po_pairs(data.decode("utf-8")):
            for text, lang in [(s, language) for s in msgstrs] + [(msgid, "en")]:
                if _MARKUP.search(text):
                    continue  # a sentence with a placeholder or markup cut out is not what anyone types
                entry = clean_running(text)
                if (
                    3 <= len(entry.split(" ")) <= 12
                    and script_clean(entry, lang)
                    and typist.typable(entry, DEFAULT_LAYOUTS[lang])
                ):
                    found[lang].add(entry)
    return {language: sorted(entries) for language, entries in found.items()}


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "layoutnet-realtext")
    parser.add_argument("--no-download", action="store_true", help="only use files already in --cache")
    parser.add_argument("--dump", type=Path, default=DUMP, help="macOS layout dump (layouts.json schema)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    try:
        if not args.dump.is_file():
            raise BuildError(f"layout dump {args.dump} not found; pass --dump PATH")
        layouts = dump_layouts(args.dump)
        paths = fetch_all(args.cache.expanduser(), not args.no_download)
        corpus = load_corpus(paths)
        builder = Builder(corpus, layouts)
        splits, ambiguous = builder.build()
        splits["frequent"], frequent_ambiguous = builder.frequent()
        ambiguous += [row for row in frequent_ambiguous if row not in set(ambiguous)]
        technical = technical_rows(
            technical_tokens(
                technical_documents(
                    paths,
                    ("django", "sphinx"),
                    ("hunspell-en-us", "hunspell-ru", "hunspell-he", "xtrans-dev"),
                )
            ),
            random.Random(SEED),
        )
        splits["technical"] = [(token, "en") for token, _ in technical]
        inline = [
            token
            for tokens in technical_tokens(technical_documents(paths, ("wagtail",), ())).values()
            for token in tokens
        ]
        pairs = builder.pairs(
            catalogue_sentences(paths["wagtail"], builder.typist), sorted(inline), random.Random(SEED + 1)
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_csv(args.out / f"{split}.csv", rows)
        print(f"{split}: {len(rows)} rows")
    ambiguous.sort(key=lambda row: (CLASSES.index(row[1]), row[0]))
    write_csv(args.out / "ambiguous.csv", ambiguous)
    print(f"ambiguous: {len(ambiguous)} rows ({len(frequent_ambiguous)} of them from the frequent words)")
    print(
        "technical: "
        + ", ".join(f"{name} {sum(c == name for _, c in technical)}" for name, _ in TECHNICAL_CATEGORIES)
    )
    write_csv(args.out / PAIRS_FILE, pairs, header=("typed", "expected"))
    print(f"{PAIRS_FILE}: {len(pairs)} lines")
    for language, c in corpus.items():
        print(
            f"{language}: {len(c.dictionary)} dictionary words, {len(c.running)} running-text words, "
            f"{len(c.sentences)} running-text entries"
        )
        print(f"{language} frequent words: {' '.join(builder.frequent_words(language))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
