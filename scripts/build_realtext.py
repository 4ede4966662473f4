"""Build layoutnet's real-text development set (src/layoutnet/resources/realtext/).

Real words and running text in English, Russian and Hebrew from packages this project does not train
on (not wordfreq), typed through the layouts of the shared macOS layout dump:

- Hunspell dictionaries from Debian (`hunspell-en-us`, `hunspell-ru`, `hunspell-he`): word lists, and,
  with their affix rules (read by `spylls`, a pure-Python Hunspell), the test of whether a text is a real
  word, inflected and prefixed forms included.
- gettext catalogues from PyPI wheels (Django's and Sphinx's `ru` and `he` translations; their English
  `msgid`s): running text and the words people actually write.

Every source is pinned (version and sha256 below). The files are fetched with the ordinary clients
(`apt-get download`, `pip download --no-deps`) into a cache directory, or taken from there when present;
nothing is installed. The build is deterministic (fixed seed, sorted inputs).

    python scripts/build_realtext.py                    # fetch into ~/.cache/layoutnet-realtext, build
    python scripts/build_realtext.py --cache DIR --no-download   # only use files already in DIR

Output: `words.csv` (1-3 real words), `sentences.csv` (sentence starts, 20-40 characters), `short.csv`
(one 2-4-letter word), each balanced over the 9 classes, and `ambiguous.csv` (texts that are real words
in two readings, taken out of the three splits), all `text,label`.
"""

from __future__ import annotations

import argparse
import csv
import functools
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from layoutnet.contract import ALPHABET, CLASSES, class_name  # noqa: E402
from layoutnet.layouts import LayoutSet  # noqa: E402

SEED = 20260101
SPYLLS_VERSION = "0.1.7"
"""The Hunspell reader the ambiguity check was built with (pyproject's `realtext` extra pins it)."""
OUT_DIR = ROOT / "src" / "layoutnet" / "resources" / "realtext"
DUMP = ROOT.parent / "shared" / "reference" / "macos_keyboard_layouts.json"

ROWS_PER_CLASS = {"words": 400, "sentences": 300, "short": 400}
"""Rows of each class in each split (9 classes)."""

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
}


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


def deb_member(path: Path, wanted: str) -> bytes:
    """A file of a .deb (an ar archive holding data.tar.*), without dpkg."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise BuildError(f"{path} is not a Debian package")
    pos = 8
    while pos < len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in tar.getmembers():
                    if member.name.lstrip("./") == wanted.lstrip("/"):
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            return extracted.read()
    raise BuildError(f"{path} has no {wanted}")


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


# Corpus -------------------------------------------------------------------------------------------------


@dataclass
class Language:
    dictionary: list[str]  # lower-case dictionary words
    running: Counter  # word tokens of running text (lower case) and their counts
    sentences: list[str]  # cleaned running-text entries
    spelled: Callable[[str], bool] | None = None  # Hunspell's verdict with the affix rules

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


def load_corpus(cache: Path, download: bool) -> dict[str, Language]:
    paths = {name: fetch(source, cache, download) for name, source in SOURCES.items()}
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
        sentences = []
        for raw in texts[language]:
            entry = clean_running(raw)
            for token in re.findall(r"\w+", entry):
                if is_word(token, language):
                    running[token.lower()] += 1
            if entry:
                sentences.append(entry)
        speller = hunspell_speller(dictionaries[language], affixes[language])
        corpus[language] = Language(words, running, sorted(set(sentences)), speller)
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


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "label"])
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
        corpus = load_corpus(args.cache.expanduser(), not args.no_download)
        splits, ambiguous = Builder(corpus, layouts).build()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_csv(args.out / f"{split}.csv", rows)
        print(f"{split}: {len(rows)} rows")
    ambiguous.sort(key=lambda row: (CLASSES.index(row[1]), row[0]))
    write_csv(args.out / "ambiguous.csv", ambiguous)
    print(f"ambiguous: {len(ambiguous)} rows")
    for language, c in corpus.items():
        print(
            f"{language}: {len(c.dictionary)} dictionary words, {len(c.running)} running-text words, "
            f"{len(c.sentences)} running-text entries"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
