"""The vectorised synthesizer and the word lists it draws from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from layoutnet.contract import CLASS_TO_ID, CLASSES, NUM_CLASSES, SEQ_LEN, VOCAB_SIZE, decode, split_class
from layoutnet.data.settings import AugmentSettings, SyntheticSettings
from layoutnet.data.synth import CHUNK_SIZE, SynthConfig, Synthesizer
from layoutnet.data.words import load_words
from layoutnet.errors import ConfigError, DataError
from layoutnet.layouts import KEYS, LayoutSet

VOCAB = 400
NO_AUGMENT = {name: 0.0 for name in AugmentSettings.__dataclass_fields__ if name != "case_flip_rate"}


def languages(vocab: int = VOCAB) -> dict[str, dict]:
    return {
        "en": {"vocab_size": vocab, "layouts": {"us": 1.0}, "extra_letters": "'"},
        "ru": {"vocab_size": vocab, "layouts": {"russianwin": 0.5, "russian": 0.5}},
        "he": {"vocab_size": vocab, "layouts": {"hebrew": 0.5, "hebrew_pc": 0.3, "hebrew_qwerty": 0.2}},
    }


def make(**options) -> Synthesizer:
    """A synthesizer of the test vocabularies; labels are the generating classes unless `prior` says
    otherwise (the posterior labels are tested in test_readings.py)."""
    options.setdefault("prior", {"labels": "generating"})
    return Synthesizer(SynthConfig.from_options(languages=options.pop("languages", languages()), **options))


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return make()


@pytest.fixture(scope="module")
def plain() -> Synthesizer:
    """No augmentation: every sample is vocabulary words joined by spaces, then converted."""
    return make(augment=NO_AUGMENT)


@pytest.fixture(scope="module")
def plain_sample(plain: Synthesizer) -> tuple[torch.Tensor, torch.Tensor]:
    return plain.generate(20_000, seed=11)


# Word lists ---------------------------------------------------------------------------------------------


def test_russian_vocabulary_has_only_cyrillic_words() -> None:
    words = load_words("ru", 3000).words
    assert len(words) == 3000
    cyrillic = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
    assert all(set(word) <= cyrillic for word in words)
    assert "lord" not in words and "xxvii" not in words
    assert {"в", "и", "что"} <= set(words)


def test_english_and_hebrew_vocabularies_are_clean() -> None:
    english = load_words("en", 3000, extra_letters="'").words
    assert all(set(word) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'") for word in english)
    assert "don't" in english and "'" not in english
    assert not any(ch.isdigit() for word in load_words("en", 3000).words for ch in word)
    assert "don't" not in load_words("en", 3000).words  # apostrophe not allowed without extra_letters
    hebrew = load_words("he", 3000).words
    assert all(set(word) <= set("אבגדהוזחטיכלמנסעפצקרשתךםןףץ") for word in hebrew)
    assert "של" in hebrew


def test_word_weights_follow_flattening() -> None:
    full = load_words("en", 100, flattening=1.0)
    flat = load_words("en", 100, flattening=0.0)
    half = load_words("en", 100, flattening=0.5)
    assert torch.all(flat.weights == 1.0)
    assert torch.allclose(half.weights, full.weights.sqrt())
    assert full.weights[0] > full.weights[-1]


def test_word_list_encoding(plain: Synthesizer) -> None:
    words = load_words("ru", 50)
    ids, lengths = words.encode()
    assert ids.shape[0] == 50 and lengths.tolist() == [len(w) for w in words.words]
    assert decode(ids[2]) == words.words[2]


def test_unknown_wordfreq_language() -> None:
    with pytest.raises(DataError, match="no keyboard layout of language 'xx'"):
        load_words("xx", 10)


# Generation ---------------------------------------------------------------------------------------------


def test_deterministic_for_a_seed(synth: Synthesizer) -> None:
    ids, labels = synth.generate(5000, seed=3)
    again_ids, again_labels = synth.generate(5000, seed=3)
    assert torch.equal(ids, again_ids) and torch.equal(labels, again_labels)
    other_ids, _ = synth.generate(5000, seed=4)
    assert not torch.equal(ids, other_ids)
    # A shorter request is a prefix of a longer one, across chunk boundaries too.
    longer_ids, longer_labels = synth.generate(CHUNK_SIZE + 100, seed=3)
    assert torch.equal(longer_ids[:5000], ids) and torch.equal(longer_labels[:5000], labels)
    small, _ = synth.generate(CHUNK_SIZE + 10, seed=3, dtype=torch.uint8)
    assert small.dtype == torch.uint8 and torch.equal(small.long(), longer_ids[: CHUNK_SIZE + 10])


def test_shapes_dtypes_and_ranges(synth: Synthesizer) -> None:
    ids, labels = synth.generate(3000, seed=1)
    assert ids.shape == (3000, SEQ_LEN) and labels.shape == (3000,)
    assert ids.dtype == torch.long and labels.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < VOCAB_SIZE
    assert int(labels.min()) >= 0 and int(labels.max()) < NUM_CLASSES
    assert bool((ids != 0).any(1).all())  # no empty sample
    assert synth.generate(0, seed=1)[0].shape == (0, SEQ_LEN)


def test_label_distribution_matches_config(synth: Synthesizer) -> None:
    _, labels = synth.generate(40_000, seed=5)
    counts = torch.bincount(labels, minlength=NUM_CLASSES).double() / labels.numel()
    expected = synth.expected_class_shares()
    assert sum(expected.values()) == pytest.approx(1.0)
    assert expected["ru"] == pytest.approx(0.5 / 3) and expected["ru_from_en"] == pytest.approx(0.5 / 6)
    for name in CLASSES:
        assert counts[CLASS_TO_ID[name]] > 0, f"class {name} never generated"
        assert float(counts[CLASS_TO_ID[name]]) == pytest.approx(expected[name], abs=0.01), name


def test_correct_layout_share_and_language_weights() -> None:
    langs = languages(200)
    langs["he"]["weight"] = 0.0  # neither meant nor active
    synth = make(languages=langs, correct_layout_share=0.8)
    _, labels = synth.generate(20_000, seed=2)
    names = [CLASSES[i] for i in labels.tolist()]
    correct = sum(1 for name in names if "_from_" not in name) / len(names)
    assert correct == pytest.approx(0.8, abs=0.015)
    assert not any("he" in split_class(name) for name in names)
    assert {"ru", "en", "ru_from_en", "en_from_ru"} == set(names)


def test_padding_is_right_aligned_and_single_words_dominate(plain_sample) -> None:
    ids, labels = plain_sample
    # Classes whose conversions only produce alphabet characters from word letters.
    safe = torch.tensor([CLASS_TO_ID[c] for c in ("ru", "en", "he", "ru_from_en", "en_from_ru")])
    rows = ids[torch.isin(labels, safe)]
    nonzero = rows != 0
    length = nonzero.sum(1)
    assert bool((length >= 1).all())
    assert torch.equal(nonzero, torch.arange(SEQ_LEN) < length.unsqueeze(1))  # zeros only at the end
    texts = [decode(row) for row in ids[:5000]]
    single = sum(" " not in text for text in texts) / len(texts)
    assert single == pytest.approx(SyntheticSettings().word_count_weights[0], abs=0.03)
    assert max(len(text) for text in texts) == SEQ_LEN
    assert all("  " not in text and not text.startswith(" ") for text in texts)


def test_ru_from_en_converts_back_to_vocabulary_words(plain: Synthesizer, plain_sample) -> None:
    ids, labels = plain_sample
    vocabulary = set(plain.wordlists["ru"].words)
    rows = ids[labels == CLASS_TO_ID["ru_from_en"]][:300]
    assert rows.shape[0] == 300
    layouts = plain.layouts
    for row in rows:
        text = decode(row)
        assert all(ch.isascii() for ch in text)
        found = False
        for variant in ("russianwin", "russian"):
            words = layouts.convert(text, "us", variant).split(" ")
            whole = words if len(text) < SEQ_LEN else words[:-1]  # the last word may be cut
            if all(w in vocabulary for w in whole if w) and (
                len(text) < SEQ_LEN or any(v.startswith(words[-1]) for v in vocabulary)
            ):
                found = True
                assert all(ch in "абвгдеёжзийклмнопрстуфхцчшщъыьэюя " for ch in " ".join(words))
                break
        assert found, text


def test_correct_layout_samples_are_vocabulary_words(plain: Synthesizer, plain_sample) -> None:
    ids, labels = plain_sample
    for lang in ("en", "he", "ru"):
        vocabulary = set(plain.wordlists[lang].words)
        for row in ids[labels == CLASS_TO_ID[lang]][:200]:
            text = decode(row)
            words = text.split(" ")
            whole = words if len(text) < SEQ_LEN else words[:-1]
            assert all(w in vocabulary for w in whole if w), (lang, text)


# Augmentations (same seed, so the same words before augmenting) ----------------------------------------


def _augmented(plain_sample, **augment) -> tuple[torch.Tensor, torch.Tensor]:
    """The same samples augmented. Rows whose label changed (an empty row is replaced by the next row,
    and augmentation changes which rows are empty: a handful) are marked with label -1."""
    synth = make(augment={**NO_AUGMENT, **augment})
    ids, labels = synth.generate(20_000, seed=11)
    same = labels == plain_sample[1]
    assert float(same.double().mean()) > 0.998
    return ids, torch.where(same, labels, -1)


def _lengths(ids: torch.Tensor) -> torch.Tensor:
    return (ids != 0).sum(1)


def test_all_caps_and_capitalize(plain_sample) -> None:
    base_ids, base_labels = plain_sample
    english = base_labels == CLASS_TO_ID["en"]
    caps, caps_labels = _augmented(plain_sample, all_caps=1.0)
    english &= caps_labels == base_labels
    for before, after in zip(base_ids[english][:100], caps[english][:100], strict=True):
        assert decode(after) == decode(before).upper()
    cap, cap_labels = _augmented(plain_sample, capitalize=1.0)
    russian = cap_labels == CLASS_TO_ID["ru"]
    for before, after in zip(base_ids[russian][:100], cap[russian][:100], strict=True):
        text = decode(before)
        assert decode(after) == text[0].upper() + text[1:]


def test_deletion_duplication_swap_and_typos(plain_sample) -> None:
    base_ids, base_labels = plain_sample
    deleted, deleted_labels = _augmented(plain_sample, delete=1.0)
    doubled, doubled_labels = _augmented(plain_sample, duplicate=1.0)
    swapped, swapped_labels = _augmented(plain_sample, swap=1.0)
    typo, typo_labels = _augmented(plain_sample, neighbour_typo=1.0)
    english = base_labels == CLASS_TO_ID["en"]
    for labels in (deleted_labels, doubled_labels, swapped_labels, typo_labels):
        english &= labels == base_labels
    base = base_ids[english]
    long_enough = _lengths(base) >= 2

    deleted = deleted[english]
    assert torch.equal(_lengths(deleted)[long_enough], _lengths(base)[long_enough] - 1)

    doubled = doubled[english]
    short = _lengths(base) < SEQ_LEN
    assert torch.equal(_lengths(doubled)[short], _lengths(base)[short] + 1)

    swapped = swapped[english]
    assert torch.equal(swapped.sort(1).values, base.sort(1).values)  # same characters
    assert float((swapped != base).any(1).double().mean()) > 0.5  # most swaps change something

    typo = typo[english]
    changed = (typo != base).sum(1)
    assert int(changed.max()) == 1 and float(changed.double().mean()) > 0.8
    us = LayoutSet.builtin()["us"]
    for before, after in zip(base[:200], typo[:200], strict=True):
        diff = (before != after).nonzero().flatten().tolist()
        if diff:
            old, new = decode(before[diff]), decode(after[diff])
            key, shifted = us.locate(old)
            new_key, new_shift = us.locate(new)
            assert shifted == new_shift and new_key in {k for k in KEYS if k != key}


def test_punctuation_is_typed_in_the_meant_layout(plain_sample) -> None:
    base_ids, _ = plain_sample
    ids, labels = _augmented(plain_sample, punctuation=1.0)
    short = _lengths(base_ids) < SEQ_LEN
    correct_en = (labels == CLASS_TO_ID["en"]) & short
    assert torch.equal(_lengths(ids[correct_en]), _lengths(base_ids[correct_en]) + 1)
    inserted = {
        ch for row in ids[correct_en][:500] for ch in decode(row) if not ch.isalpha() and ch not in " '"
    }
    assert inserted and all(not ch.isalpha() for ch in inserted)


def test_all_augmentations_keep_the_contract(synth: Synthesizer) -> None:
    heavy = make(augment={name: 0.5 for name in NO_AUGMENT})
    ids, labels = heavy.generate(20_000, seed=9)
    assert int(ids.min()) >= 0 and int(ids.max()) < VOCAB_SIZE
    assert bool((ids != 0).any(1).all())
    same = labels == make(augment=NO_AUGMENT).generate(20_000, seed=9)[1]
    assert float(same.double().mean()) > 0.998  # the labels do not depend on augmentation


# Config errors and other languages ----------------------------------------------------------------------


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"augment.*typo_rate"):
        SynthConfig.from_options(augment={"typo_rate": 0.1})
    with pytest.raises(ConfigError, match="correct_layout_share"):
        SynthConfig.from_options(correct_layout_share=1.5)
    with pytest.raises(ConfigError, match="weight > 0"):
        SynthConfig.from_options(languages={"en": {"weight": 0, "layouts": {"us": 1.0}}})
    with pytest.raises(ConfigError, match="word_count_weights"):
        SynthConfig.from_options(word_count_weights=[])
    with pytest.raises(ConfigError, match=r"languages\.uk\.label_as"):
        SynthConfig.from_options(languages={"uk": {"layouts": {"ukrainian": 1.0}}})
    with pytest.raises(ConfigError, match=r"languages\.en\.layouts\.russianwin.*ru layout"):
        make(languages={"en": {"vocab_size": 10, "layouts": {"russianwin": 1.0}}})
    with pytest.raises(DataError, match="unknown keyboard layout 'colemak'"):
        make(languages={"en": {"vocab_size": 10, "layouts": {"colemak": 1.0}}})


def test_a_language_from_a_dump_labelled_as_russian(tmp_path: Path) -> None:
    builtin = LayoutSet.builtin()
    source = builtin["russianwin"]
    keymap: dict = {key: {} for key in KEYS}
    for key in KEYS:
        keymap[key]["ukr_test"] = {"n": source.normal[key], "s": source.shift.get(key, "")}
    keymap["KeyS"]["ukr_test"] = {"n": "і", "s": "І"}
    keymap["Quote"]["ukr_test"] = {"n": "є", "s": "Є"}
    keymap["BracketRight"]["ukr_test"] = {"n": "ї", "s": "Ї"}
    dump = {"layouts": [{"id": "ukr_test", "name": "Ukrainian test", "language": "uk"}], "map": keymap}
    path = tmp_path / "layouts.json"
    path.write_text(json.dumps(dump, ensure_ascii=False), encoding="utf-8")
    layouts = LayoutSet.from_dump(path, ["ukr_test"])

    config = SynthConfig.from_options(
        languages={
            "en": {"vocab_size": 300, "layouts": {"us": 1.0}},
            "uk": {"vocab_size": 300, "layouts": {"ukr_test": 1.0}, "label_as": "ru"},
        },
        augment=NO_AUGMENT,
    )
    synth = Synthesizer(config, layouts)
    assert any("і" in word for word in synth.wordlists["uk"].words)
    ids, labels = synth.generate(4000, seed=0)
    assert {CLASSES[i] for i in labels.unique().tolist()} == {"en", "ru", "ru_from_en", "en_from_ru"}
    assert int(ids.max()) < VOCAB_SIZE
    # Ukrainian letters typed on the US layout come out as the US keys: і is on the S key.
    typed = [decode(row) for row in ids[labels == CLASS_TO_ID["ru_from_en"]]]
    assert all(text.isascii() for text in typed)
    assert synth.describe()["languages"]["uk"]["label_as"] == "ru"


# Texts that are real words in both readings -------------------------------------------------------------


def test_wrong_layout_texts_that_spell_an_active_language_word_are_labelled_as_typed(plain_sample) -> None:
    relabelled = make(augment=NO_AUGMENT, ambiguous={"typed_share": 1.0, "lexicon_size": 5000})
    ids, labels = relabelled.generate(20_000, seed=11)
    base_ids, base_labels = plain_sample
    assert torch.equal(ids, base_ids)  # same texts: only labels change
    changed = (labels != base_labels).nonzero().squeeze(1)
    assert 20 < changed.numel() < 2000
    lexicons = {
        lang: set(load_words(lang, 5000, extra_letters="'" if lang == "en" else "").words)
        for lang in ["en", "ru", "he"]
    }
    for row in changed.tolist():
        meant, active = split_class(CLASSES[int(base_labels[row])])
        assert meant != active and CLASSES[int(labels[row])] == active  # now "typed correctly"
        text = decode(ids[row])
        assert all(word in lexicons[active] for word in text.split(" ")), text
    # Wrong-layout rows left alone do not spell a lexicon word (single-word rows checked).
    kept = (labels == base_labels) & torch.tensor(
        [split_class(CLASSES[int(x)])[0] != split_class(CLASSES[int(x)])[1] for x in base_labels]
    )
    for row in kept.nonzero().squeeze(1)[:500].tolist():
        text = decode(ids[row])
        active = split_class(CLASSES[int(labels[row])])[1]
        if " " not in text and len(text) < SEQ_LEN:
            assert text not in lexicons[active], text


def test_ambiguous_typed_share_splits_the_labels_and_zero_changes_nothing(plain_sample) -> None:
    half = make(augment=NO_AUGMENT, ambiguous={"typed_share": 0.5, "lexicon_size": 5000})
    full = make(augment=NO_AUGMENT, ambiguous={"typed_share": 1.0, "lexicon_size": 5000})
    off = make(augment=NO_AUGMENT, ambiguous={"typed_share": 0.0, "lexicon_size": 5000})
    base = plain_sample[1]
    n_half = int((half.generate(20_000, seed=11)[1] != base).sum())
    n_full = int((full.generate(20_000, seed=11)[1] != base).sum())
    assert torch.equal(off.generate(20_000, seed=11)[1], base)
    assert 0.35 * n_full < n_half < 0.65 * n_full
    assert off.describe()["ambiguous"] == {"typed_share": 0.0, "lexicon_size": 5000}


def test_ambiguous_settings_are_checked_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"ambiguous\.typed_share"):
        SynthConfig.from_options(ambiguous={"typed_share": 1.5})
    with pytest.raises(ConfigError, match=r"ambiguous\.lexicon_size"):
        SynthConfig.from_options(ambiguous={"lexicon_size": 0})
    with pytest.raises(ConfigError, match=r"ambiguous.*share"):
        SynthConfig.from_options(ambiguous={"share": 0.5})


def test_length_balance_gives_every_language_the_same_share_of_short_words() -> None:
    def short_share_per_language(synth: Synthesizer) -> list[float]:
        ids, labels = synth.generate(CHUNK_SIZE, seed=5)
        short = ((ids != 0).sum(1) >= 2) & ((ids != 0).sum(1) <= 4)
        meant = torch.tensor([["en", "ru", "he"].index(split_class(CLASSES[int(x)])[0]) for x in labels])
        return [float(short[meant == lang].double().mean()) for lang in range(3)]

    options = {"languages": languages(3000), "augment": NO_AUGMENT, "word_count_weights": [1.0]}
    natural = short_share_per_language(make(length_balance=False, **options))
    balanced = short_share_per_language(make(length_balance=True, **options))
    assert max(natural) - min(natural) > 0.1  # Hebrew words are short, Russian ones long
    assert max(balanced) - min(balanced) < 0.03
    assert make(length_balance=True, **options).describe()["length_balance"] is True
