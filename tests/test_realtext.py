"""The real-text development set: shipped with the package, balanced, script-clean, and never read by
training (an audit hook watches every file a small training run opens)."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

from layoutnet.contract import ALPHABET, CLASSES, LANGUAGES, split_class
from layoutnet.quality import AMBIGUOUS, REALTEXT_SPLITS, load_realtext, realtext_dir

from .conftest import REPO_ROOT, in_process_run_config

SCRIPT_LETTERS = {
    "en": set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "ru": set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"),
    "he": set("אבגדהוזחטיכלמנסעפצקרשתךםןףץ"),
}


def test_every_split_is_balanced_over_the_nine_classes():
    splits = load_realtext()
    for name in REALTEXT_SPLITS:
        counts = Counter(splits[name].labels.tolist())
        assert sorted(counts) == list(range(len(CLASSES))), name
        assert len(set(counts.values())) == 1 and min(counts.values()) >= 300, (name, counts)
    assert len(splits[AMBIGUOUS]) > 0


def test_texts_fit_their_split_and_the_contract_alphabet():
    splits = load_realtext()
    for name, split in splits.items():
        for text in split.texts:
            assert text and all(ch in ALPHABET for ch in text), (name, text)
    assert all(2 <= len(t) <= 4 and " " not in t for t in splits["short"].texts)
    assert all(20 <= len(t) <= 40 for t in splits["sentences"].texts)
    assert all(1 <= len(t.split(" ")) <= 3 for t in splits["words"].texts)


def test_correctly_typed_rows_are_in_their_own_script_and_wrong_rows_in_the_active_one():
    # A correctly typed ru row has Cyrillic letters and no Latin or Hebrew; ru_from_en shows Latin letters.
    for split in load_realtext(REALTEXT_SPLITS).values():
        for text, label in zip(split.texts, split.labels, strict=True):
            meant, active = split_class(CLASSES[label])
            letters = {ch for ch in text if ch.isalpha()}
            others = set().union(*(SCRIPT_LETTERS[lang] for lang in LANGUAGES if lang != active))
            if meant == active or active != "he":  # Hebrew - PC types Latin capitals with Shift
                assert letters and not letters & others, (text, CLASSES[label])


def test_no_text_is_in_two_splits_or_twice_in_one_class():
    splits = load_realtext()
    for split in splits.values():
        pairs = list(zip(split.texts, split.labels.tolist(), strict=True))
        assert len(pairs) == len(set(pairs))
    headline = {
        (t, label)
        for name in REALTEXT_SPLITS
        for t, label in zip(splits[name].texts, splits[name].labels.tolist(), strict=True)
    }
    ambiguous = set(zip(splits[AMBIGUOUS].texts, splits[AMBIGUOUS].labels.tolist(), strict=True))
    assert not headline & ambiguous


def test_files_are_package_data_with_their_sources():
    folder = realtext_dir()
    assert (folder / "SOURCES.md").is_file()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"layoutnet.resources.realtext" = ["*.csv", "*.md"]' in pyproject
    sources = (folder / "SOURCES.md").read_text()
    for package in ("hunspell-en-us", "hunspell-ru", "hunspell-he", "django", "sphinx"):
        assert package in sources


def test_unknown_split_is_refused():
    from layoutnet.errors import DataError

    with pytest.raises(DataError, match="no real-text split"):
        load_realtext(["nouns"])


_OPENED: list[str] = []
_RECORDING: list[bool] = [False]


def _audit(event: str, args: tuple) -> None:
    if _RECORDING[0] and event == "open" and args and isinstance(args[0], str | bytes):
        _OPENED.append(args[0] if isinstance(args[0], str) else args[0].decode(errors="replace"))


@pytest.mark.slow
def test_training_never_opens_the_real_text_files(tmp_path):
    """Train a few steps of the smoke experiment and of the default data config with an audit hook on
    `open`: no file of the real-text folder is opened, while the training's own files are (the hook works)."""
    from layoutnet.fit import Run

    sys.addaudithook(_audit)  # hooks cannot be removed; it records only while _RECORDING is on
    folder = str(realtext_dir())
    for data in ("tiny", "synthetic"):
        run_dir = tmp_path / data
        overrides = [
            "+experiment=smoke",
            f"data={data}",
            "export=none",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=1",
            "data.train_size=2048",
            "data.val_size=512",
            "data.test_size=512",
        ]
        cfg = in_process_run_config(run_dir, overrides)
        _OPENED.clear()
        _RECORDING[0] = True
        try:
            run = Run(cfg, run_dir)
            run.prepare()
            run.fit()
        finally:
            _RECORDING[0] = False
        assert any(str(run_dir) in path for path in _OPENED), "the audit hook saw no file of the run"
        # Any path inside the set's folder, or any file named like one of its CSVs, wherever it lies.
        names = {f"{name}.csv" for name in (*REALTEXT_SPLITS, AMBIGUOUS)}
        touched = [path for path in _OPENED if folder in path or path.rsplit("/", 1)[-1] in names]
        assert not touched, f"training with data={data} opened real-text files: {touched}"


def test_training_code_does_not_refer_to_the_real_text_set():
    # The training side (data module, synthesizer, word lists, train) never names the set or quality.py.
    # The evaluation-only real-text source and the allowlist naming it are the exceptions; that source
    # refuses to give training batches.
    evaluation_only = {"realtext_source.py", "sources.py", "__init__.py"}
    data_dir = REPO_ROOT / "src" / "layoutnet" / "data"
    sources = [p for p in data_dir.glob("*.py") if p.name not in evaluation_only]
    sources += [REPO_ROOT / "src/layoutnet/train.py", REPO_ROOT / "src/layoutnet/fit.py"]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "realtext" not in text and "layoutnet.quality" not in text, path
    from layoutnet.data.realtext_source import RealTextSource
    from layoutnet.errors import DataError

    with pytest.raises(DataError, match="evaluation only"):
        RealTextSource().train_batches(lambda: 0)


def test_overlap_with_the_training_vocabulary_is_partial():
    """The set is not drawn from wordfreq: many of its words are absent from wordfreq's 30,000 most
    frequent words (common words overlap, as any two lists of real words do; the default training
    vocabulary, 200,000 words, holds more of them). The figure is printed for the record."""
    from layoutnet.data.words import load_words

    splits = load_realtext(["short", "words"])
    vocab = {lang: set(load_words(lang, 30000).words) for lang in LANGUAGES}
    for name, split in splits.items():
        shares = {}
        for lang in LANGUAGES:
            words = [
                w.lower()
                for text, label in zip(split.texts, split.labels.tolist(), strict=True)
                if CLASSES[label] == lang
                for w in text.split(" ")
            ]
            shares[lang] = float(np.mean([w in vocab[lang] for w in words]))
        print(f"{name}: share of correctly typed words in the training vocabulary: {shares}")
        assert all(share < 0.9 for share in shares.values()), (name, shares)


def _build_script():
    import importlib.util

    if "build_realtext" in sys.modules:
        return sys.modules["build_realtext"]
    path = REPO_ROOT / "scripts" / "build_realtext.py"
    spec = importlib.util.spec_from_file_location("build_realtext", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_realtext"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_build_script_names_a_missing_source_package(tmp_path, capsys, shared_dir):
    script = _build_script()
    assert script.main(["--cache", str(tmp_path), "--no-download", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hunspell-en-us" in err and "1:2020.12.07-2" in err
    assert not (tmp_path / "out").exists()


def test_build_script_refuses_a_source_file_that_is_not_the_pinned_one(tmp_path):
    script = _build_script()
    source = script.SOURCES["django"]
    (tmp_path / source.filename).write_bytes(b"not django")
    with pytest.raises(script.BuildError, match="sha256"):
        script.fetch(source, tmp_path, download=False)


def test_build_script_reads_gettext_catalogues_and_cleans_running_text():
    script = _build_script()
    catalogue = (
        '# comment\nmsgid ""\nmsgstr "Content-Type: text/plain"\n\n'
        'msgid "Enter a valid %(name)s."\nmsgstr ""\n"Введите правильный "\n"%(name)s."\n\n'
        'msgid "one"\nmsgid_plural "many"\nmsgstr[0] "один"\nmsgstr[1] "много"\n'
    )
    assert script.po_pairs(catalogue) == [
        ("Enter a valid %(name)s.", ["Введите правильный %(name)s."]),
        ("one", ["один", "много"]),
    ]
    assert script.clean_running("«Сохранить» — <b>{0}</b> файл") == '"Сохранить" - файл'
    assert script.script_clean("Введите правильный", "ru") and not script.script_clean("Введите URL", "ru")


def _tiny_builder(shared_dir, spelled=None):
    """The build script's Builder over a three-word corpus per language and the dump's layouts."""
    script = _build_script()
    layouts = script.dump_layouts(shared_dir / "reference" / "macos_keyboard_layouts.json")
    words = {"en": ["it", "hello", "autumn"], "ru": ["до", "книга", "мир"], "he": ["אם", "חבר", "שלום"]}
    corpus = {
        language: script.Language(list(w), Counter(), [], (spelled or {}).get(language))
        for language, w in words.items()
    }
    return script.Builder(corpus, layouts)


def test_build_script_counts_affixed_forms_as_real_words(shared_dir):
    # Hunspell's .dic lists stems; `לחבר` (to connect) is `חבר` with a prefix its affix rules allow.
    # Without the rules it reads as a non-word, so a Hebrew word typed correctly looked like a wrong
    # layout's text and was scored as one.
    plain = _tiny_builder(shared_dir)
    assert plain.real_word("חבר", "he") and not plain.real_word("לחבר", "he")
    spelled = _tiny_builder(shared_dir, {"he": lambda word: word in {"חבר", "לחבר"}})
    assert spelled.real_word("לחבר", "he") and spelled.is_word_text("לחבר חבר", "he")
    assert not spelled.real_word("חבר1", "he")  # the speller only sees the language's letters


def test_build_script_lists_a_real_word_typed_in_the_wrong_layout_as_ambiguous(shared_dir):
    builder = _tiny_builder(shared_dir, {"he": lambda word: word == "אותו"})
    # An English word typed on hebrew_qwerty that reads as the Hebrew word `אותו`: re-typing it back
    # need not give the meant word (that layout types `ו` from several keys), yet both readings are real.
    assert builder.ambiguous("אותו", "he", meant="en")
    assert not builder.ambiguous("שלוםם", "he", meant="en")  # not a Hebrew word as typed
    # Correctly typed text is ambiguous only when another language's reading is a real word too:
    # `до` on hebrew_qwerty reads `לח` (moist).
    assert not builder.ambiguous("до", "ru", meant="ru")
    assert _tiny_builder(shared_dir, {"he": lambda word: word == "לח"}).ambiguous("до", "ru", meant="ru")
    assert not builder.ambiguous("hello", "en", meant="en")


def test_build_script_names_the_missing_hunspell_reader(monkeypatch):
    script = _build_script()
    monkeypatch.setitem(sys.modules, "spylls.hunspell", None)  # import fails as if not installed
    with pytest.raises(script.BuildError, match=r"spylls.*pip install"):
        script.hunspell_speller(b"1\nword\n", b"SET UTF-8\n")
