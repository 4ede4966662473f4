"""The real-text development set: shipped with the package, balanced, script-clean, and never read by
training (an audit hook watches every file a small training run opens)."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

from layoutnet.contract import ALPHABET, CLASSES, LANGUAGES, SEQ_LEN, split_class
from layoutnet.quality import (
    ALL_SPLITS,
    AMBIGUOUS,
    PAIRS_FILE,
    REALTEXT_SPLITS,
    TECHNICAL_CATEGORIES,
    load_realtext,
    realtext_dir,
    technical_category,
)

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
    for package in (
        "hunspell-en-us",
        "hunspell-ru",
        "hunspell-he",
        "django",
        "sphinx",
        "xtrans-dev",
        "wagtail",
    ):
        assert package in sources
    for name in (*ALL_SPLITS, PAIRS_FILE.removesuffix(".csv")):
        assert f"`{name}.csv`" in sources, name


def test_frequent_words_are_typed_right_and_on_every_other_layout_and_must_be_fixed_or_stay():
    splits = load_realtext(["frequent", AMBIGUOUS])
    rows = set(zip(splits["frequent"].texts, (CLASSES[i] for i in splits["frequent"].labels), strict=True))
    assert all(1 <= len(text) <= 3 and " " not in text for text, _ in rows)
    assert {label for _, label in rows} == set(CLASSES)
    typed_right = Counter(label for _, label in rows if label in LANGUAGES)
    assert all(50 <= typed_right[language] <= 100 for language in LANGUAGES), typed_right
    # The words typed right, and typed on the US layout: не -> yt, на -> yf, вы -> ds, то -> nj
    # (из -> bp and мы -> vs are English words to Hunspell, so they are ambiguous).
    for word, language in [
        ("не", "ru"),
        ("на", "ru"),
        ("из", "ru"),
        ("мы", "ru"),
        ("ты", "ru"),
        ("вы", "ru"),
    ]:
        assert (word, language) in rows
    for word in ("את", "לא", "של", "זה", "מה", "כן"):
        assert (word, "he") in rows
    for word in ("the", "in", "is", "to", "of", "it"):
        assert (word, "en") in rows
    assert {("yt", "ru_from_en"), ("yf", "ru_from_en"), ("ds", "ru_from_en"), ("nj", "ru_from_en")} <= rows
    # A wrong-layout row that reads as a real word of the active layout's language is ambiguous:
    # אם typed on U.S. shows `to`, the English word. Typed right, `to` stays (the words and short
    # splits' rule lists it as ambiguous too, as its Hebrew reading is a word).
    ambiguous = set(zip(splits[AMBIGUOUS].texts, (CLASSES[i] for i in splits[AMBIGUOUS].labels), strict=True))
    assert ("to", "he_from_en") in ambiguous and ("to", "he_from_en") not in rows
    assert ("to", "en") in rows
    assert not {row for row in rows if "_from_" in row[1]} & ambiguous


def test_technical_tokens_are_one_token_each_in_every_category_and_stay_as_typed():
    split = load_realtext(["technical"])["technical"]
    assert len(split) >= 1000
    assert {CLASSES[i] for i in split.labels} == {"en"}
    assert all(text.isascii() and " " not in text for text in split.texts)
    categories = Counter(technical_category(text) for text in split.texts)
    assert None not in categories
    assert set(categories) == {name for name, _ in TECHNICAL_CATEGORIES}
    assert all(count >= 30 for count in categories.values()), categories  # pins: ~40 in the sources
    prefixes = [text[:SEQ_LEN] for text in split.texts]  # what the model reads: no two rows alike
    assert len(prefixes) == len(set(prefixes))


def test_pairs_file_has_runs_typed_on_the_wrong_layout_that_the_app_can_retype():
    from layoutnet.correction import DEFAULT_LAYOUTS, Corrector
    from layoutnet.data import csvfile
    from layoutnet.layouts import LayoutSet

    pairs = csvfile.read_pairs(realtext_dir() / PAIRS_FILE)
    assert 200 <= len(pairs) <= 600
    corrector = Corrector(LayoutSet.builtin(), DEFAULT_LAYOUTS)
    wrong_lines = wrong_tokens = technical = 0
    for typed, expected in zip(pairs.typed, pairs.expected, strict=True):
        differ = [(t, e) for t, e in zip(typed.split(), expected.split(), strict=True) if t != e]
        wrong_lines += bool(differ)
        wrong_tokens += len(differ)
        technical += any(technical_category(token) for token in expected.split())
        for shown, meant in differ:  # each wrong token re-types into the meant one with some class
            assert meant in {corrector.correct(shown, name) for name in CLASSES if "_from_" in name}, shown
    assert 0.5 * len(pairs) <= wrong_lines <= 0.9 * len(pairs)
    assert wrong_tokens >= len(pairs) // 2 and technical >= 20


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
        names = {f"{name}.csv" for name in ALL_SPLITS} | {PAIRS_FILE}
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


def test_build_script_counts_words_that_stand_alone():
    script = _build_script()
    assert script.standalone_words("(не сохранено), ה%(name)s", "ru") == ["не", "сохранено"]
    assert script.standalone_words("e.g. don't use Y-m-d «it»", "en") == ["use", "it"]
    assert script.standalone_words("ה%(name)s של", "he") == ["של"]


def test_build_script_ranks_frequent_words_that_hunspell_knows(shared_dir):
    script = _build_script()
    builder = _tiny_builder(shared_dir, {"en": lambda word: word in {"the", "to", "I", "is"}})
    # `zz` is frequent but no word; `I` is written only in capitals; `it` is a dictionary stem that the
    # issue names although the text never has it standalone; `of` is named but unknown to Hunspell here.
    builder.corpus["en"].tokens.update({"zz": 9, "the": 5, "The": 3, "to": 4, "I": 2, "hello": 7})
    assert builder.frequent_words("en") == ["the", "to", "I", "is", "it"]
    assert "of" not in builder.frequent_words("en") and "hello" not in builder.frequent_words("en")
    assert script.FREQUENT_PER_LANGUAGE >= 50


def test_build_script_types_frequent_words_on_every_other_layout(shared_dir):
    builder = _tiny_builder(shared_dir, {"en": lambda word: word in {"lj"}})
    builder.corpus["ru"].tokens.update({"до": 3})
    rows, ambiguous = builder.frequent()
    # до typed right stays; on U.S. and ABC it shows `lj` (a word here, so ambiguous); on each Hebrew
    # layout its own text.
    assert ("до", "ru") in rows
    assert ("lj", "ru_from_en") in ambiguous and ("lj", "ru_from_en") not in rows
    hebrew = {text for text, label in rows if label == "ru_from_he"}
    assert "לח" in hebrew and len(hebrew) >= 2


def test_build_script_takes_technical_tokens_from_text_and_keeps_one_per_model_input():
    import random

    script = _build_script()
    text = "def get_user_model(): max_length=100 <wk@gnupg.org>. asgiref>=3.8.1; e.g. hello"
    tokens = script.technical_candidates(text)
    for expected in ("get_user_model", "max_length", "wk@gnupg.org", "asgiref>=3.8.1"):
        assert expected in tokens
    found = script.technical_tokens(
        [text, "https://docs.djangoproject.com/en/5.2/a https://docs.djangoproject.com/b"]
    )
    assert found["identifier"] == ["get_user_model", "max_length"] and found["pin"] == ["asgiref>=3.8.1"]
    assert len(found["url"]) == 1  # both URLs read the same in their first 20 characters
    rows = script.technical_rows(found, random.Random(0))
    assert ("wk@gnupg.org", "email") in rows and all(category for _, category in rows)


def test_build_script_types_runs_of_a_sentence_on_another_layout(shared_dir):
    import random

    from layoutnet.correction import DEFAULT_LAYOUTS
    from layoutnet.layouts import LayoutSet

    script = _build_script()
    builder = _tiny_builder(shared_dir)
    sentences = {
        "en": [f"please save the file number {i}" for i in range(200)],
        "ru": [f"сохраните файл номер {i} сейчас" for i in range(200)],
        "he": [f"שמור את הקובץ {i} עכשיו" for i in range(200)],
    }
    lines = builder.pairs(sentences, ["v2.5.1"], random.Random(0))
    assert len(lines) == 3 * script.PAIRS_PER_LANGUAGE
    layouts = LayoutSet.builtin()
    changed = 0
    for typed, expected in lines:
        pairs = list(zip(typed.split(" "), expected.split(" "), strict=True))
        changed += any(t != e for t, e in pairs)
        for shown, meant in pairs:
            if shown != meant:  # typed on another language's default layout, and types back exactly
                assert any(
                    layouts.convert(shown, DEFAULT_LAYOUTS[active], DEFAULT_LAYOUTS[lang]) == meant
                    for lang in DEFAULT_LAYOUTS
                    for active in DEFAULT_LAYOUTS
                    if lang != active
                )
    assert 0.5 * len(lines) < changed < 0.9 * len(lines)
    assert sum("v2.5.1" in expected.split(" ") for _, expected in lines) > 10
