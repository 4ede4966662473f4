"""The on-disk cache of synthesis tables (issue 12.8: building them for 3 x 200,000 words was most of
`generate`'s start-up): cached tables are bit for bit the fresh ones, samples for a seed are the ones the
code made before the cache existed, and a corrupt, foreign or unreadable entry is rebuilt, never trusted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from layoutnet.data import tablecache, words
from layoutnet.data.synth import SynthConfig, Synthesizer
from layoutnet.data.synthetic import SyntheticSource

TABLES = (
    "_words",
    "_word_len",
    "_word_prob",
    "_word_alias",
    "_vocab_sizes",
    "_vocab_offsets",
    "_ambiguous",
    "_count_cdf",
)

# generate(n, seed) of the default data config (conf/data/synthetic.yaml), SHA-256 of the ids' and labels'
# bytes, computed with the code before the cache existed (commit 0891a96), with wordfreq 3.1.1.
DEFAULT_SAMPLES = {
    # sha256 of the ids (unchanged since before the typing prior), and of ids + generating labels
    (0, 5000): (
        "0863e40aab59e15ed632959cecd25e9a3f0c5cb77696c11579581d6d5467ff41",
        "de30c48d6e606bac87cf85d2ac6ab5b37891f5a07f29801fe2bbc8bf33f28fdf",
    ),
    (12345, 20000): (
        "12dd2eb91cc31c1c8f646bcca2848d48accb7582f90af1631f27b7f38f014733",
        "066a3deb6ba5e64b534bfb6e3fb495b9231d6d9b6a5dce3a97fc4813c013fe3a",
    ),
}
DEFAULT_SAMPLES_WORDFREQ = "3.1.1"


def small(typed_share: float = 1.0, **options) -> SynthConfig:
    languages = {
        "en": {"vocab_size": 300, "layouts": {"us": 1.0}, "extra_letters": "'"},
        "ru": {"vocab_size": 300, "layouts": {"russianwin": 0.5, "russian": 0.5}},
        "he": {"vocab_size": 300, "layouts": {"hebrew": 0.5, "hebrew_pc": 0.5}},
    }
    return SynthConfig.from_options(
        languages=languages,
        ambiguous={"typed_share": typed_share, "lexicon_size": 1000},
        prior={"labels": "generating"},
        **options,
    )


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(tablecache.CACHE_ENV, str(folder))
    words._load_words.cache_clear()  # word lists are also kept in memory: read them through the cache
    yield folder
    words._load_words.cache_clear()


def assert_same_tables(a: Synthesizer, b: Synthesizer) -> None:
    for name in TABLES:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
    assert (a._word_width, a._zero_block, a.charset.chars) == (b._word_width, b._zero_block, b.charset.chars)
    for code in a.language_codes:
        assert a.wordlists[code].words == b.wordlists[code].words
        assert torch.equal(a.wordlists[code].weights, b.wordlists[code].weights)


def entries(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.iterdir())


def test_default_data_samples_are_unchanged_and_cached_tables_equal_fresh_ones(cache, monkeypatch):
    if words.wordfreq_version() != DEFAULT_SAMPLES_WORDFREQ:
        pytest.skip(f"the recorded samples were made with wordfreq {DEFAULT_SAMPLES_WORDFREQ}")
    # The default data (what training and generate build) with the labels it was made as: the posterior
    # labels' tables (whole word lists) are checked on small data in test_readings.py.
    options = {"prior": {"labels": "generating"}}
    fresh = SyntheticSource(**options).synthesizer()
    assert entries(cache) == ["synth", "words", "words", "words"]
    words._load_words.cache_clear()
    cached = SyntheticSource(**options).synthesizer()
    assert_same_tables(fresh, cached)
    monkeypatch.setenv(tablecache.CACHE_ENV, "off")
    words._load_words.cache_clear()
    uncached = SyntheticSource(**options).synthesizer()
    assert_same_tables(fresh, uncached)
    for synth in (fresh, cached):
        for (seed, n), (expected_ids, expected) in DEFAULT_SAMPLES.items():
            ids, labels = synth.generate(n, seed)
            assert hashlib.sha256(ids.numpy().tobytes()).hexdigest() == expected_ids
            assert hashlib.sha256(ids.numpy().tobytes() + labels.numpy().tobytes()).hexdigest() == expected


def test_entries_are_written_whole_and_read_back(cache):
    first = Synthesizer(small())
    # The synthesizer's tables, 3 vocabularies and 3 larger lexicons; no temporary file left.
    assert entries(cache) == ["synth"] + ["words"] * 6 and all(p.suffix == ".npz" for p in cache.iterdir())
    words._load_words.cache_clear()
    second = Synthesizer(small())
    assert_same_tables(first, second)
    assert torch.equal(first.generate(3000, 5)[0], second.generate(3000, 5)[0])


def test_every_setting_that_shapes_the_tables_has_its_own_entry(cache):
    base = Synthesizer(small(length_balance=False))
    balanced = Synthesizer(small(length_balance=True))
    no_ambiguity = Synthesizer(small(typed_share=0.0))
    assert not torch.equal(base._word_prob, balanced._word_prob)
    assert no_ambiguity._ambiguous is None
    assert len(list(cache.glob("synth-*.npz"))) == 3


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "foreign key", "pickled object", "missing array", "index out of range"]
)
def test_a_damaged_or_foreign_entry_is_rebuilt_not_trusted(cache, damage):
    good = Synthesizer(small())
    (entry,) = cache.glob("synth-*.npz")
    content = entry.read_bytes()
    with np.load(entry, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    expected = dict(arrays)
    if damage == "garbage":
        entry.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        entry.write_bytes(content[: len(content) // 2])
    elif damage == "foreign key":
        arrays["__key__"] = np.frombuffer(b'{"kind":"synth","format":0}', dtype=np.uint8)
        arrays["word_prob"] = np.zeros_like(arrays["word_prob"])
        np.savez(entry, **arrays)
    elif damage == "pickled object":
        arrays["word_prob"] = np.array([Explodes()], dtype=object)
        np.savez(entry, **arrays)
    elif damage == "missing array":
        del arrays["word_alias"]
        np.savez(entry, **arrays)
    else:  # the right key, arrays that would index past the tables
        arrays["word_alias"] = arrays["word_alias"].copy()
        arrays["word_alias"][0] = 10**9
        np.savez(entry, **arrays)
    words._load_words.cache_clear()
    rebuilt = Synthesizer(small())
    assert_same_tables(good, rebuilt)
    with np.load(entry, allow_pickle=False) as stored:  # rewritten whole
        assert sorted(stored.files) == sorted(expected)
        assert all(np.array_equal(stored[name], expected[name]) for name in expected)


class Explodes:
    def __reduce__(self):
        return (pytest.fail, ("a cache file was unpickled",))


def test_an_inconsistent_word_list_entry_is_rebuilt(cache):
    good = words.load_words("ru", 50)
    (entry,) = cache.glob("words-*.npz")
    with np.load(entry, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["lengths"] = arrays["lengths"] + 1  # more characters than the entry holds
    np.savez(entry, **arrays)
    words._load_words.cache_clear()
    again = words.load_words("ru", 50)
    assert again.words == good.words and torch.equal(again.weights, good.weights)


def test_cache_off_writes_nothing_and_an_unwritable_folder_only_costs_time(tmp_path, monkeypatch):
    monkeypatch.setenv(tablecache.CACHE_ENV, "off")
    words._load_words.cache_clear()
    assert tablecache.cache_dir() is None
    off = Synthesizer(small())
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(tablecache.CACHE_ENV, str(blocker / "cache"))
    words._load_words.cache_clear()
    unwritable = Synthesizer(small())
    assert_same_tables(off, unwritable)
    words._load_words.cache_clear()


def test_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(tablecache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tablecache.cache_dir() == tmp_path / "layoutnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tablecache.cache_dir() == Path.home() / ".cache" / "layoutnet"


def test_a_builder_missing_an_array_is_an_error(cache):
    with pytest.raises(ValueError, match="no \\['b'\\]"):
        tablecache.cached("test", {"k": 1}, ("a", "b"), lambda: {"a": np.zeros(1)})


def test_the_cache_keeps_its_most_recently_used_entries_within_its_size(cache, monkeypatch):
    import os

    def entry(name: str, size: int, age: float) -> Path:
        path = cache / f"words-{hashlib.sha256(name.encode()).hexdigest()[:32]}.npz"
        path.write_bytes(b"x" * size)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
        return path

    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(tablecache, "MAX_BYTES", 3500)
    old, used, newer = entry("old", 1000, 30), entry("used", 1000, 20), entry("newer", 1000, 10)
    mine = cache / "notes.npz"  # not named like an entry: never touched
    mine.write_bytes(b"y" * 5000)
    leftover = cache / f".words-{'0' * 32}-abc.tmp"  # a killed writer's, hours old
    leftover.write_bytes(b"z")
    os.utime(leftover, (1_000_000, 1_000_000))
    os.utime(used)  # read a moment ago: most recently used
    tablecache.cached("words", {"n": 1}, ["a"], lambda: {"a": np.arange(3)})
    # the new entry (under 1,500 bytes) and the two most recently used fit; the least recently used goes
    (new,) = [p for p in cache.glob("words-*.npz") if p not in (old, used, newer)]
    assert new.stat().st_size < 1500
    assert used.exists() and newer.exists() and not old.exists()
    assert mine.exists() and not leftover.exists()
    assert len([p for p in cache.glob("words-*.npz")]) == 3


def test_reading_an_entry_marks_it_recently_used(cache):
    import os

    build = lambda: {"a": np.arange(5)}  # noqa: E731
    tablecache.cached("words", {"n": 2}, ["a"], build)
    (path,) = cache.glob("words-*.npz")
    os.utime(path, (1_000_000, 1_000_000))
    assert np.array_equal(tablecache.cached("words", {"n": 2}, ["a"], build)["a"], np.arange(5))
    assert path.stat().st_mtime > 1_000_000 + 3600


def test_pruning_skips_what_is_not_a_regular_entry_file(cache, monkeypatch):
    # A folder or a dangling link among the entries neither stops the pruning nor is removed.
    import os

    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(tablecache, "MAX_BYTES", 0)
    folder = cache / f"words-{'0' * 32}.npz"
    folder.mkdir()
    os.symlink(cache / "nowhere", cache / f"words-{'1' * 32}.npz")
    os.symlink(cache / "nowhere", cache / "zz-dangling")
    tablecache.cached("words", {"n": 3}, ["a"], lambda: {"a": np.arange(2)})
    tablecache.cached("words", {"n": 4}, ["a"], lambda: {"a": np.arange(2)})  # prunes the first
    regular = [p for p in cache.glob("words-*.npz") if p.is_file() and not p.is_symlink()]
    assert len(regular) == 1  # only the entry just written
    assert folder.is_dir() and (cache / f"words-{'1' * 32}.npz").is_symlink()
