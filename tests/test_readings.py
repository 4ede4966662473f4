"""Labels under the typing prior (`layoutnet.data.readings`): every reading of a typed text, weighed by
the prior of its (meant, active) pair times the frequency of its words."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layoutnet.contract import CLASS_TO_ID, CLASSES, NUM_CLASSES, class_name
from layoutnet.data.readings import PRIOR_METADATA_KEY, joint_prior, prior_metadata, prior_spec
from layoutnet.data.settings import AugmentSettings
from layoutnet.data.synth import SynthConfig, Synthesizer
from layoutnet.data.words import load_words
from layoutnet.errors import ConfigError
from layoutnet.layouts import LayoutSet
from layoutnet.module import rewrite_penalty

LEXICON = 25_000
"""Readings from each language's 25,000 most frequent words: enough for English `yt` (rank ~21,800), the
rare word Russian `не` spells on the US layout."""
NO_AUGMENT = {name: 0.0 for name in AugmentSettings.__dataclass_fields__ if name != "case_flip_rate"}
LANGUAGES = {
    "en": {"vocab_size": 400, "layouts": {"us": 1.0}, "extra_letters": "'"},
    "ru": {"vocab_size": 400, "layouts": {"russianwin": 0.5, "russian": 0.5}},
    "he": {"vocab_size": 400, "layouts": {"hebrew": 0.5, "hebrew_pc": 0.3, "hebrew_qwerty": 0.2}},
}


def make(prior: dict, augment: dict | None = None) -> Synthesizer:
    config = SynthConfig.from_options(languages=LANGUAGES, augment=augment or NO_AUGMENT, prior=prior)
    return Synthesizer(config)


@pytest.fixture(scope="module")
def posterior() -> Synthesizer:
    return make({"lexicon_size": LEXICON})


def target_of(synth: Synthesizer, meant: str, word: str, meant_layout: str, active_layout: str) -> dict:
    """The soft label the synthesizer gives `word` of language `meant` typed from `meant_layout` on
    `active_layout` (the sample's own path: pair, global word index, the labeller)."""
    codes = synth.language_codes
    active = next(
        code for code in codes if active_layout in synth.config.languages[codes.index(code)].layouts
    )
    offset = sum(len(synth.wordlists[code]) for code in codes[: codes.index(meant)])
    index = offset + synth.wordlists[meant].words.index(word)
    n = len(synth.layout_ids)
    pair = synth.layout_ids.index(meant_layout) * n + synth.layout_ids.index(active_layout)
    targets = synth._labeller.targets(
        torch.tensor([codes.index(meant)]),
        torch.tensor([codes.index(active)]),
        torch.tensor([pair]),
        torch.tensor([[index]]),
        torch.tensor([1]),
        NUM_CLASSES,
    )[0]
    return {name: float(targets[i]) for i, name in enumerate(CLASSES) if targets[i] > 0}


def expected_posterior(text: str, active: str, wrong: float = 0.05) -> dict:
    """The posterior computed independently, on strings: each language's lexicon typed on every variant
    pair with `LayoutSet.convert`, frequencies summed per typed text, times the prior."""
    layouts = LayoutSet.builtin()
    likelihood = {}
    for reading, spec in LANGUAGES.items():
        lexicon = load_words(reading, LEXICON, 1.0, extra_letters=spec.get("extra_letters", ""))
        if reading == active:
            frequencies = dict(zip(lexicon.words, lexicon.weights.tolist(), strict=True))
            likelihood[reading] = frequencies.get(text, 0.0)
            continue
        typed = defaultdict(float)
        total = sum(spec["layouts"].values())
        active_layouts = LANGUAGES[active]["layouts"]
        active_total = sum(active_layouts.values())
        for vx, wx in spec["layouts"].items():
            for va, wa in active_layouts.items():
                for word, freq in zip(lexicon.words, lexicon.weights.tolist(), strict=True):
                    typed[layouts.convert(word, vx, va)] += wx / total * wa / active_total * freq
        likelihood[reading] = typed.get(text, 0.0)
    score = {
        class_name(reading, active): (1 / 3) * ((1 - 2 * wrong) if reading == active else wrong) * value
        for reading, value in likelihood.items()
    }
    total = sum(score.values())
    return {name: value / total for name, value in score.items() if value > 0}


def test_a_frequent_word_typed_on_the_wrong_layout_outweighs_the_rare_word_it_spells(posterior):
    # не (frequency 1.6e-2) on the US layout shows `yt`, an English token of frequency 1.6e-6
    target = target_of(posterior, "ru", "не", "russianwin", "us")
    assert target == pytest.approx(expected_posterior("yt", "en"), rel=1e-4)
    assert target["ru_from_en"] > 0.99 and target["en"] > 0  # both readings count, by prior x frequency


def test_a_correctly_typed_word_that_spells_a_frequent_word_elsewhere_shares_its_label(posterior):
    # English `go` is Hebrew `עם` ("with", 5.6 times as frequent) on the Apple and PC Hebrew layouts
    target = target_of(posterior, "en", "go", "us", "us")
    assert target == pytest.approx(expected_posterior("go", "en"), rel=1e-4)
    assert 0.1 < target["he_from_en"] < 0.5


def test_a_text_with_one_reading_keeps_its_generating_class(posterior):
    generating = make({"labels": "generating"})
    ids, labels = generating.generate_chunk(seed=5, index=0, n=8192)
    same_ids, targets = posterior.generate_chunk(seed=5, index=0, n=8192)
    assert torch.equal(ids, same_ids)  # the labels draw no randomness: the same texts
    assert targets.dtype == torch.float32 and targets.shape == (8192, NUM_CLASSES)
    assert torch.allclose(targets.sum(1), torch.ones(8192), atol=1e-5)
    certain = targets.max(1).values == 1.0
    assert torch.equal(targets[certain].argmax(1), labels[certain])
    assert 0.5 < float(certain.float().mean()) < 1.0  # most texts have one reading; short ones often more
    # soft mass only within the classes of the layout that was active (the text's script)
    active = {name: name.partition("_from_")[2] or name for name in CLASSES}
    for row in torch.nonzero(~certain).squeeze(1)[:200].tolist():
        classes = {active[CLASSES[i]] for i in torch.nonzero(targets[row]).squeeze(1).tolist()}
        assert classes == {active[CLASSES[int(labels[row])]]}


def test_the_hard_labels_of_posterior_data_are_its_top_class(posterior):
    _, targets = posterior.generate_chunk(seed=9, index=0, n=4096)
    _, labels = next(iter(posterior.iter_chunks(4096, seed=9)))[1:]
    assert torch.equal(labels, targets.argmax(1))
    argmax = make({"lexicon_size": LEXICON, "labels": "argmax"})
    assert torch.equal(argmax.generate_chunk(seed=9, index=0, n=4096)[1], targets.argmax(1))


def test_the_prior_moves_ambiguous_texts_and_leaves_the_others(posterior):
    rare = make({"lexicon_size": LEXICON, "default_wrong_layout": 0.0001})
    often = make({"lexicon_size": LEXICON, "default_wrong_layout": 0.3})
    go = [target_of(s, "en", "go", "us", "us")["en"] for s in (often, posterior, rare)]
    assert go[0] < 0.5 < go[1] < go[2] and go[2] > 0.99
    for synth in (rare, often):
        assert target_of(synth, "ru", "может", "russianwin", "us") == {"ru_from_en": 1.0}


def test_the_typing_prior_follows_the_data_and_its_own_settings():
    codes, labels = ["en", "ru", "he"], ["en", "ru", "he"]
    joint = joint_prior(prior_spec({}, codes), codes, labels, [1.0, 1.0, 1.0])
    assert joint.sum() == pytest.approx(1.0) and joint[0, 0] == pytest.approx(0.9 / 3)
    assert joint[1, 0] == pytest.approx(0.05 / 3)
    nobody = joint_prior(prior_spec({}, codes), codes, labels, [1.0, 1.0, 0.0])
    assert nobody[2].sum() == 0 and nobody[:, 2].sum() == 0  # Hebrew weight 0: neither meant nor active
    spec = prior_spec({"typed": {"en": 3}, "wrong_layout": {"ru": {"en": 0.2, "he": 0.0}}}, codes)
    joint = joint_prior(spec, codes, labels, [1.0, 1.0, 1.0])
    assert joint[0].sum() == pytest.approx(0.6) and joint[1, 0] == pytest.approx(0.2 * 0.2)
    assert joint[1, 2] == 0 and joint[1, 1] == pytest.approx(0.8 * 0.2)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"labels": "soft"}, "prior.labels"),
        ({"typed": {"de": 1.0}}, "prior.typed.de"),
        ({"typed": {"en": -1}}, "prior.typed.en"),
        ({"wrong_layout": {"ru": {"ru": 0.1}}}, "prior.wrong_layout.ru.ru"),
        ({"wrong_layout": {"ru": {"en": 1.5}}}, "prior.wrong_layout.ru.en"),
        ({"wrong_layout": {"ru": {"en": 0.7, "he": 0.6}}}, "prior.wrong_layout.ru"),
        ({"lexicon_size": 0}, "prior.lexicon_size"),
        ({"default": 0.1}, "prior.default"),
    ],
)
def test_bad_prior_settings_are_refused_naming_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        SynthConfig.from_options(languages=LANGUAGES, prior=options)
    assert info.value.key == key


def test_the_old_ambiguity_rule_only_goes_with_generating_labels():
    with pytest.raises(ConfigError, match=r"ambiguous\.typed_share"):
        SynthConfig.from_options(languages=LANGUAGES, ambiguous={"typed_share": 1.0})
    SynthConfig.from_options(
        languages=LANGUAGES, ambiguous={"typed_share": 1.0}, prior={"labels": "generating"}
    )


def test_soft_targets_train_as_cross_entropy_with_probabilities():
    logits = torch.randn(6, NUM_CLASSES)
    hard = torch.tensor([0, 3, 1, 5, 2, 8])
    one_hot = F.one_hot(hard, NUM_CLASSES).float()
    assert torch.allclose(F.cross_entropy(logits, one_hot), F.cross_entropy(logits, hard))
    assert torch.allclose(rewrite_penalty(logits, one_hot), rewrite_penalty(logits, hard))
    half = one_hot.clone()
    half[0] = 0.0
    half[0, CLASS_TO_ID["ru"]] = half[0, CLASS_TO_ID["en_from_ru"]] = 0.5  # a row half typed correctly
    expected = rewrite_penalty(logits[:1], torch.tensor([0])) * 0.5
    assert torch.allclose(rewrite_penalty(logits[:1], half[:1]), expected)


def test_the_typing_prior_in_a_model_file_is_read_as_plain_values():
    prior = {name: 1 / 9 for name in CLASSES}
    stored = prior_metadata({"labels": {"labels": "posterior", "class_prior": prior, "lexicon_size": None}})
    assert json.loads(stored[PRIOR_METADATA_KEY]) == {"labels": "posterior", "class_prior": prior}
    for bad in (
        None,
        {"labels": "posterior"},
        {"labels": {"labels": "__import__('os')", "class_prior": prior}},
        {"labels": {"labels": "posterior", "class_prior": {**prior, "ru": "1e9"}}},
        {"labels": {"labels": "posterior", "class_prior": {**prior, "ru": float("nan")}}},
        {"labels": {"labels": "posterior", "class_prior": {"ru": 1.0}}},
    ):
        assert prior_metadata(bad) == {}
    assert np.isclose(sum(prior.values()), 1.0)


def test_a_run_recorded_before_the_typing_prior_is_read_with_the_labels_it_was_made_with(tmp_path):
    from omegaconf import OmegaConf

    from layoutnet.config import build_from_file
    from layoutnet.data.sources import KNOWN_SOURCES
    from layoutnet.evaluation import run_data_config

    (tmp_path / "checkpoints").mkdir()
    old = {"_target_": "layoutnet.data.synthetic.SyntheticSource", "languages": LANGUAGES}
    old["ambiguous"] = {"typed_share": 1.0, "lexicon_size": 400}
    OmegaConf.save({"data": old}, tmp_path / "config_resolved.yaml")
    data, origin = run_data_config(tmp_path / "checkpoints" / "best.ckpt")
    source = build_from_file(data, "data", str(origin), tuple(KNOWN_SOURCES))
    assert source.config.prior.labels == "generating" and source.config.ambiguous.typed_share == 1.0
