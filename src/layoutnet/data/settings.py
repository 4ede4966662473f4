"""The synthetic data's settings: one structured config (`data/synthetic_schema`), every default once.

`conf/data/synthetic.yaml` starts from `SyntheticSettings` (`defaults: [synthetic_schema, ...]`), so the
command line and the Python API (`SyntheticSource()`, `SynthConfig.from_options()`) build the same data
from the same defaults, and Hydra refuses a misspelt key or a value of the wrong type when the config
is composed. The checks that need more than a type run in `SynthConfig.from_options`.
Plain dataclasses: no torch, no Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

SCHEMA_NAME = "synthetic_schema"


@dataclass
class LanguageSettings:
    """One language of the synthetic data (`data.languages.<code>`)."""

    # Relative share of samples meant in this language, and of wrong-layout samples typed on its layouts.
    weight: float = 1.0
    # The most frequent clean words of wordfreq's list that samples are drawn from.
    vocab_size: int = 200_000
    # Layout id -> relative weight of that variant (as the meant and as the active layout).
    layouts: dict[str, float] = field(default_factory=dict)
    # Contract language whose classes this language's samples get (needed outside en/ru/he).
    label_as: str | None = None
    # Characters besides letters a word may contain (English: the apostrophe of don't).
    extra_letters: str = ""


def default_languages() -> dict[str, LanguageSettings]:
    return {
        "en": LanguageSettings(layouts={"us": 1.0}, extra_letters="'"),
        "ru": LanguageSettings(layouts={"russianwin": 0.7, "russian": 0.3}),
        "he": LanguageSettings(layouts={"hebrew": 0.6, "hebrew_pc": 0.25, "hebrew_qwerty": 0.15}),
    }


@dataclass
class AugmentSettings:
    """Per-sample probability of each augmentation, applied in the meant layout before conversion."""

    capitalize: float = 0.25  # first letter upper case (sentence starts, names)
    all_caps: float = 0.03
    case_flip: float = 0.03  # flips case_flip_rate of the characters
    case_flip_rate: float = 0.25
    swap: float = 0.03  # two adjacent characters swapped
    delete: float = 0.03  # one character dropped
    duplicate: float = 0.03  # one character typed twice
    neighbour_typo: float = 0.04  # a character replaced by a physically neighbouring key's
    punctuation: float = 0.20  # one digit or punctuation character of the layout (half at the end)


@dataclass
class AmbiguousSettings:
    """The rule the typing prior replaced (`prior.labels=generating` only): a share `typed_share` of the
    wrong-layout samples whose typed text is among the active language's `lexicon_size` most frequent
    words is labelled as typed. 0: off."""

    typed_share: float = 0.0
    lexicon_size: int = 30_000


@dataclass
class PriorSettings:
    """The typing prior the labels follow (`layoutnet.data.readings`; presets in conf/data/prior/)."""

    # posterior (soft labels) | argmax (their top class) | generating (the class a sample was made as)
    labels: str = "posterior"
    # Relative share of text meant in each language (a language left out: its `weight`).
    typed: dict[str, float] = field(default_factory=dict)
    # P(another language's layout is on | text meant in a language) for a pair not in wrong_layout
    # (0 for a language nobody types): 0.05 per pair, one word in ten typed on a wrong layout.
    default_wrong_layout: float = 0.05
    # Meant language -> active language -> P(that layout is on), e.g. {ru: {en: 0.08, he: 0.01}}.
    wrong_layout: dict[str, dict[str, float]] = field(default_factory=dict)
    # Words per language whose frequencies count as readings (most frequent first); null: all of wordfreq's.
    lexicon_size: int | None = None


@dataclass
class TechnicalSettings:
    """Technical tokens mixed into the samples (`layoutnet.data.technical`): hashes, versions, pins, URLs,
    e-mail addresses, paths, identifiers, numbers with units, dates, times; text that must stay as typed."""

    share: float = 0.0
    # The language whose layout types them: their class is this language as typed.
    label_as: str = "en"
    # Distinct tokens made once per synthesizer and drawn from.
    pool_size: int = 65536


@dataclass
class SyntheticSettings:
    """`data=synthetic`: words from wordfreq typed in the right or the wrong keyboard layout."""

    _target_: str = "layoutnet.data.synthetic.SyntheticSource"
    languages: dict[str, LanguageSettings] = field(default_factory=default_languages)
    # Word weight = frequency ** flattening (1 = true frequencies, 0 = uniform).
    flattening: float = 0.7
    # Share of samples typed in the meant layout (classes ru, en, he).
    correct_layout_share: float = 0.5
    # Share of samples with 1, 2, 3, 4 words (joined by spaces, cut to 20 characters). Single words
    # dominate: the app classifies each word as it is typed.
    word_count_weights: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.1, 0.05])
    # Same distribution of word lengths in every language (the mean of theirs): Hebrew has twice Russian's
    # share of 2-4-letter words, which taught models that short text is Hebrew.
    length_balance: bool = True
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    ambiguous: AmbiguousSettings = field(default_factory=AmbiguousSettings)
    prior: PriorSettings = field(default_factory=PriorSettings)
    technical: TechnicalSettings = field(default_factory=TechnicalSettings)
    # A layouts.json dump (the app's schema) for layouts beyond the built-in ones.
    layouts_dump: str | None = None
    batch_size: int = 512
    eval_batch_size: int = 2048
    # Fresh samples per epoch (stream seed + epoch); the validation and test sets are made once.
    train_size: int = 250_000
    val_size: int = 20_000
    test_size: int = 20_000
    seed: int = 0


def section(value: object, cls: type, key: str) -> Any:
    """A settings dataclass from plain values (or one already), every field left out at its default; a
    value that is no mapping or an unknown key is refused with a ConfigError naming the key."""
    from layoutnet.errors import ConfigError

    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    known = [f.name for f in fields(cls)]
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "must map setting names to values", known)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", value[unknown[0]], "unknown setting", known)
    return cls(**dict(value))


def register() -> None:
    """Make `synthetic_schema` available to the `data` group's files (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="data", name=SCHEMA_NAME, node=SyntheticSettings)
