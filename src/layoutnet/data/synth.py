"""Vectorised synthesis of labelled samples: words typed in the right or the wrong keyboard layout.

Per sample: the meant language, whether its layout was the active one, the active language when it was
not, the layout variant of each side, 1..max words joined by spaces (cut to SEQ_LEN), augmentations in
the meant layout (case, typos, punctuation), then the id-level conversion meant variant -> active
variant. Every step is a tensor operation over a chunk of samples; no Python runs per sample.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from layoutnet.contract import CLASS_TO_ID, CLASSES, LANGUAGES, NUM_CLASSES, PAD_ID, SEQ_LEN, class_name
from layoutnet.data import tablecache
from layoutnet.data.readings import (
    Language,
    PosteriorLabeller,
    class_prior,
    joint_prior,
    prior_spec,
    ratio_tables,
    row_hashes,
)
from layoutnet.data.settings import (
    AmbiguousSettings,
    AugmentSettings,
    LanguageSettings,
    PriorSettings,
    SyntheticSettings,
    TechnicalSettings,
    section,
)
from layoutnet.data.technical import technical_tokens
from layoutnet.data.words import WordList, extra_chars, letter_set, load_words, wordfreq_version
from layoutnet.errors import ConfigError
from layoutnet.layouts import KEYS, Charset, LayoutSet, neighbour_keys

_WORD_TABLES = (
    "width",
    "words",
    "word_len",
    "word_prob",
    "word_alias",
    "vocab_sizes",
    "vocab_offsets",
    "ambiguous",
)
"""Arrays of a synthesizer's word-derived tables (one cache entry)."""

CHUNK_SIZE = 16384
"""Samples generated per step; chunk i of seed s always uses the same random stream."""


@dataclass(frozen=True)
class LanguageSpec:
    """One language of the synthetic data, checked: its code and its `LanguageSettings`."""

    code: str
    weight: float
    vocab_size: int
    layouts: Mapping[str, float]
    label_as: str | None
    extra_letters: str

    @property
    def label_language(self) -> str:
        return self.label_as or self.code


@dataclass(frozen=True)
class SynthConfig:
    """The synthesizer's checked settings. Built by `from_options` from plain values over the defaults of
    `SyntheticSettings` (`layoutnet.data.settings`), their one home."""

    languages: tuple[LanguageSpec, ...]
    flattening: float
    correct_layout_share: float
    word_count_weights: tuple[float, ...]
    length_balance: bool
    """Reweigh each language's words so that every language has the same distribution of word lengths
    (the mean of their own): a text's length then says nothing about its meant language."""
    augment: AugmentSettings
    ambiguous: AmbiguousSettings
    prior: PriorSettings
    technical: TechnicalSettings

    @property
    def max_words(self) -> int:
        return len(self.word_count_weights)

    @classmethod
    def from_options(cls, **options: Any) -> SynthConfig:
        """Checked config from plain values (the keys of `SyntheticSettings` that shape samples; a key left
        out takes its default there); every problem raises a ConfigError naming its key."""
        unknown = sorted(set(options) - set(SYNTH_KEYS))
        if unknown:
            raise ConfigError(
                unknown[0], options[unknown[0]], "is not a setting of the synthesizer", SYNTH_KEYS
            )
        defaults = SyntheticSettings()
        given = {
            key: getattr(defaults, key) if options.get(key) is None else options[key] for key in SYNTH_KEYS
        }
        languages = given["languages"]
        if not isinstance(languages, Mapping) or not languages:
            raise ConfigError("languages", languages, "must map language codes to their settings")
        specs = []
        for code, settings in languages.items():
            merged = section(settings, LanguageSettings, f"languages.{code}")
            spec = LanguageSpec(code=str(code), **asdict(merged))
            _check_language(spec)
            specs.append(spec)
        if sum(spec.weight for spec in specs) <= 0:
            raise ConfigError("languages", [spec.code for spec in specs], "needs a language with weight > 0")
        _check_probability("flattening", given["flattening"], upper=None)
        _check_probability("correct_layout_share", given["correct_layout_share"])
        word_count_weights = given["word_count_weights"]
        weights = tuple(float(w) for w in word_count_weights)
        if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(
                "word_count_weights",
                list(word_count_weights),
                "needs non-negative shares of 1, 2, ... words, sum > 0",
            )
        if weights[-1] == 0:
            weights = tuple(weights[: max(i for i, w in enumerate(weights) if w > 0) + 1])
        augment = section(given["augment"], AugmentSettings, "augment")
        for key, value in asdict(augment).items():
            _check_probability(f"augment.{key}", value)
        if not isinstance(given["length_balance"], bool):
            raise ConfigError("length_balance", given["length_balance"], "must be true or false")
        codes = [spec.code for spec in specs]
        prior = prior_spec(given["prior"], codes)
        ambiguous = _ambiguous_spec(section(given["ambiguous"], AmbiguousSettings, "ambiguous"))
        if ambiguous.typed_share > 0 and prior.labels != "generating":
            raise ConfigError(
                "ambiguous.typed_share",
                ambiguous.typed_share,
                f"relabels texts that prior.labels={prior.labels} already labels by their readings; "
                "set ambiguous.typed_share=0, or prior.labels=generating to use the old rule",
            )
        joint_prior(prior, codes, [s.label_language for s in specs], [s.weight for s in specs])  # checks sums
        return cls(
            languages=tuple(specs),
            flattening=float(given["flattening"]),
            correct_layout_share=float(given["correct_layout_share"]),
            word_count_weights=weights,
            length_balance=given["length_balance"],
            augment=augment,
            ambiguous=ambiguous,
            prior=prior,
            technical=_technical_spec(section(given["technical"], TechnicalSettings, "technical"), codes),
        )


SYNTH_KEYS: tuple[str, ...] = (
    "languages",
    "flattening",
    "correct_layout_share",
    "word_count_weights",
    "length_balance",
    "augment",
    "ambiguous",
    "prior",
    "technical",
)
"""The keys of `SyntheticSettings` that shape the samples (the rest size and seed the splits)."""


def _technical_spec(spec: TechnicalSettings, codes: Sequence[str]) -> TechnicalSettings:
    _check_probability("technical.share", spec.share)
    if spec.share > 0 and spec.label_as not in codes:
        raise ConfigError("technical.label_as", spec.label_as, "must be a language of the data", list(codes))
    if isinstance(spec.pool_size, bool) or not isinstance(spec.pool_size, int) or spec.pool_size < 1:
        raise ConfigError("technical.pool_size", spec.pool_size, "must be a positive whole number")
    return TechnicalSettings(share=float(spec.share), label_as=str(spec.label_as), pool_size=spec.pool_size)


def _ambiguous_spec(spec: AmbiguousSettings) -> AmbiguousSettings:
    _check_probability("ambiguous.typed_share", spec.typed_share)
    size = spec.lexicon_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError("ambiguous.lexicon_size", size, "must be a positive integer")
    return AmbiguousSettings(typed_share=float(spec.typed_share), lexicon_size=size)


def _check_probability(key: str, value: object, upper: float | None = 1.0) -> None:
    if not isinstance(value, int | float) or value < 0 or (upper is not None and value > upper):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise ConfigError(key, value, f"must be a number {bound}")


def _check_language(spec: LanguageSpec) -> None:
    key = f"languages.{spec.code}"
    _check_probability(f"{key}.weight", spec.weight, upper=None)
    if not isinstance(spec.vocab_size, int) or spec.vocab_size < 1:
        raise ConfigError(f"{key}.vocab_size", spec.vocab_size, "must be a positive integer")
    if not isinstance(spec.layouts, Mapping) or not spec.layouts:
        raise ConfigError(f"{key}.layouts", spec.layouts, "must map layout ids to weights, e.g. {us: 1.0}")
    for layout_id, weight in spec.layouts.items():
        _check_probability(f"{key}.layouts.{layout_id}", weight, upper=None)
    if sum(spec.layouts.values()) <= 0:
        raise ConfigError(f"{key}.layouts", dict(spec.layouts), "needs at least one layout with weight > 0")
    if spec.label_language not in LANGUAGES:
        raise ConfigError(
            f"{key}.label_as",
            spec.label_as,
            f"the contract has classes only for {', '.join(LANGUAGES)}; "
            f"say which one {spec.code!r} samples count as",
            LANGUAGES,
        )


def _cdf_rows(rows: Sequence[Sequence[float]]) -> torch.Tensor:
    """float32 [rows, m]: the cumulative distribution of each row (last column exactly 1)."""
    table = torch.tensor([list(row) for row in rows], dtype=torch.float64)
    table = torch.cumsum(table / table.sum(1, keepdim=True), 1)
    table[:, -1] = 1.0
    return table.to(torch.float32)


def _draw(cdf: torch.Tensor, u: torch.Tensor, row: torch.Tensor | None = None) -> torch.Tensor:
    """Category drawn with uniform `u` from row `row` (per sample; row 0 when None) of `cdf`."""
    picked = torch.zeros(u.shape[0], dtype=torch.long)
    for c in range(cdf.shape[1] - 1):
        bound = cdf[0, c] if row is None else cdf[:, c].index_select(0, row)
        picked += u >= bound
    return picked


def _chunk_seed(seed: int, index: int) -> int:
    """A 63-bit torch seed for chunk `index` of stream `seed` (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class Synthesizer:
    """Generates `(ids int64 [N, SEQ_LEN], labels int64 [N])`, deterministic for a seed."""

    def __init__(
        self,
        config: SynthConfig | None = None,
        layouts: LayoutSet | None = None,
        wordlists: Mapping[str, WordList] | None = None,
    ):
        self.config = config or SynthConfig.from_options()
        self.layouts = layouts or LayoutSet.builtin()
        cfg = self.config
        self.language_codes = tuple(spec.code for spec in cfg.languages)
        self._check_layouts()
        if wordlists is None:
            wordlists = {
                spec.code: load_words(
                    spec.code, spec.vocab_size, cfg.flattening, self.layouts, spec.extra_letters
                )
                for spec in cfg.languages
            }
        self.wordlists = {code: wordlists[code] for code in self.language_codes}
        variant_ids = list(dict.fromkeys(lid for spec in cfg.languages for lid in spec.layouts))
        self.layout_ids = tuple(variant_ids)
        used_layouts = [self.layouts[lid] for lid in variant_ids]
        self.charset = Charset(extra_chars(self.wordlists.values(), used_layouts))
        self._build_tables(used_layouts)

    # Setup ------------------------------------------------------------------------------------------
    def _check_layouts(self) -> None:
        for spec in self.config.languages:
            for layout_id in spec.layouts:
                layout = self.layouts[layout_id]  # DataError naming the known ones
                if layout.language != spec.code:
                    raise ConfigError(
                        f"languages.{spec.code}.layouts.{layout_id}",
                        spec.layouts[layout_id],
                        f"layout {layout_id!r} is a {layout.language or 'language-less'} layout, "
                        f"not {spec.code}; list it under its own language",
                    )

    def _build_tables(self, used_layouts: list) -> None:
        """Every lookup table `_synthesize` indexes, built once per synthesizer, step by step."""
        self._build_draw_tables()
        self._build_label_table()
        self._build_conversion_tables()
        self._build_case_tables()
        self._build_typo_tables(used_layouts)
        self._build_punctuation_tables(used_layouts)
        self._build_word_tables()

    def _build_draw_tables(self) -> None:
        """Meant language, wrong-layout partner language, layout variant: cumulative tables to draw from."""
        cfg = self.config
        specs = cfg.languages
        n_lang = len(specs)
        self._lang_cdf = _cdf_rows([[spec.weight for spec in specs]])
        partner_rows, self._wrong_share = [], []
        for spec in specs:
            row = [other.weight if other.label_language != spec.label_language else 0.0 for other in specs]
            has_partner = sum(row) > 0
            partner_rows.append(row if has_partner else [1.0] * n_lang)
            self._wrong_share.append(1.0 - cfg.correct_layout_share if has_partner else 0.0)
        self._partner_cdf = _cdf_rows(partner_rows)
        self._wrong_prob = torch.tensor(self._wrong_share, dtype=torch.float32)
        self._partner_probs = [
            [p / sum(row) if spec_wrong > 0 else 0.0 for p in row]
            for row, spec_wrong in zip(partner_rows, self._wrong_share, strict=True)
        ]
        max_variants = max(len(spec.layouts) for spec in specs)
        self._variant_cdf = _cdf_rows(
            [list(spec.layouts.values()) + [0.0] * (max_variants - len(spec.layouts)) for spec in specs]
        )
        self._max_variants = max_variants
        layout_index = {lid: i for i, lid in enumerate(self.layout_ids)}
        variant_global = torch.zeros(n_lang * max_variants, dtype=torch.long)
        for li, spec in enumerate(specs):
            for vi, lid in enumerate(spec.layouts):
                variant_global[li * max_variants + vi] = layout_index[lid]
        self._variant_global = variant_global

    def _build_label_table(self) -> None:
        """Class id of each (meant language, active language) pair."""
        specs = self.config.languages
        n_lang = len(specs)
        labels = torch.zeros(n_lang * n_lang, dtype=torch.long)
        for mi, meant in enumerate(specs):
            for ai, active in enumerate(specs):
                if meant.label_language == active.label_language and mi != ai:
                    continue  # never drawn
                labels[mi * n_lang + ai] = CLASS_TO_ID[
                    class_name(meant.label_language, active.label_language)
                ]
        self._label_table = labels

    def _build_conversion_tables(self) -> None:
        """Charset id -> contract id of the same key, per (meant layout, active layout)."""
        n_layouts, size = len(self.layout_ids), len(self.charset)
        conv = torch.zeros((n_layouts, n_layouts, size), dtype=torch.long)
        for mi, meant_id in enumerate(self.layout_ids):
            for ai, active_id in enumerate(self.layout_ids):
                conv[mi, ai] = self.layouts.id_table(meant_id, active_id, self.charset)
        self._conv = conv.reshape(-1).to(torch.int32)
        self._charset_size = size

    def _build_case_tables(self) -> None:
        """Upper case and swapped case of each charset id (itself when outside the charset)."""
        size = len(self.charset)
        upper = torch.arange(size)
        swap = torch.arange(size)
        for i, ch in enumerate(self.charset.chars):
            if i == PAD_ID:
                continue
            up, sw = ch.upper(), ch.swapcase()
            if len(up) == 1 and up in self.charset:
                upper[i] = self.charset.id(up)
            if len(sw) == 1 and sw in self.charset:
                swap[i] = self.charset.id(sw)
        self._upper, self._swapcase = upper.to(torch.int32), swap.to(torch.int32)

    def _neighbours(self, layout) -> list[list[int]]:
        """Per charset id: the ids on the physically neighbouring keys of `layout` (same shift level)."""
        per_char: list[list[int]] = [[] for _ in range(len(self.charset))]
        for key in KEYS:
            for shifted, level in ((False, layout.normal), (True, layout.shift)):
                out = level.get(key)
                if (
                    not out
                    or len(out) != 1
                    or out not in self.charset
                    or layout.locate(out) != (key, shifted)
                ):
                    continue
                for other in neighbour_keys(key):
                    near = level.get(other)
                    if near and len(near) == 1 and near in self.charset:
                        per_char[self.charset.id(out)].append(self.charset.id(near))
        return per_char

    def _build_typo_tables(self, used_layouts: list) -> None:
        """Neighbouring-key typos: a padded [layout, char, neighbour] table and the count of each cell."""
        nb_lists = [self._neighbours(layout) for layout in used_layouts]
        n_layouts, size = len(used_layouts), len(self.charset)
        width = max(1, max(len(c) for per_char in nb_lists for c in per_char))
        nb = torch.zeros((n_layouts, size, width), dtype=torch.long)
        nb_count = torch.zeros((n_layouts, size), dtype=torch.long)
        for li, per_char in enumerate(nb_lists):
            for ci, near in enumerate(per_char):
                if near:
                    nb[li, ci, : len(near)] = torch.tensor(near)
                    nb_count[li, ci] = len(near)
        self._nb = nb.reshape(-1).to(torch.int32)
        self._nb_width = width
        self._nb_count = nb_count.reshape(-1)

    def _build_punctuation_tables(self, used_layouts: list) -> None:
        """Digits, punctuation and symbols each layout types: a padded [layout, k] table and counts."""
        punct_lists = []
        for layout in used_layouts:
            punct = sorted(
                self.charset.id(ch)
                for ch in layout.chars()
                if ch in self.charset and unicodedata.category(ch)[0] in "NPS"
            )
            punct_lists.append(punct or [self.charset.id(".")])
        pwidth = max(len(p) for p in punct_lists)
        punct = torch.zeros((len(used_layouts), pwidth), dtype=torch.long)
        for li, p in enumerate(punct_lists):
            punct[li, : len(p)] = torch.tensor(p)
        self._punct = punct.reshape(-1).to(torch.int32)
        self._punct_width = pwidth
        self._punct_count = torch.tensor([len(p) for p in punct_lists], dtype=torch.long)

    def _build_word_tables(self) -> None:
        """Words: one table [V_total, W + 1] with a space after each word (then a zero block), per-language
        alias tables for drawing words by weight, the word-count distribution, and the ambiguity table.

        The word-derived tables are read from the on-disk cache (`tablecache`) when an entry for the
        same words, weights, charset, conversions and settings exists; otherwise built by
        `_fresh_word_tables` and stored. Both ways the attributes are set from the same arrays."""
        arrays = tablecache.cached(
            "synth", self._word_tables_key(), _WORD_TABLES, self._fresh_word_tables, self._consistent_tables
        )
        width = int(arrays["width"])
        self._word_width = width
        self._words = torch.from_numpy(arrays["words"].astype(np.int32))
        self._zero_block = self._words.numel() - -(-SEQ_LEN // width) * width
        """Start of the zero block after the words: positions past a sample's end read it."""
        self._word_len = torch.from_numpy(arrays["word_len"].astype(np.int32))
        self._word_prob = torch.from_numpy(arrays["word_prob"].astype(np.float64))
        self._word_alias = torch.from_numpy(arrays["word_alias"].astype(np.int64))
        self._vocab_sizes = torch.from_numpy(arrays["vocab_sizes"].astype(np.float64))
        self._vocab_offsets = torch.from_numpy(arrays["vocab_offsets"].astype(np.int64))
        self._count_cdf = _cdf_rows([self.config.word_count_weights])
        self._ambiguous: torch.Tensor | None = None
        if self.config.ambiguous.typed_share > 0:
            count = len(self.layout_ids) ** 2 * self._word_len.numel()
            flags = np.unpackbits(arrays["ambiguous"], count=count).astype(np.bool_)
            self._ambiguous = torch.from_numpy(flags)
        self._labeller: PosteriorLabeller | None = None
        if self.config.prior.labels != "generating":
            self._labeller = self._build_labeller()
        self._technical: torch.Tensor | None = None
        if self.config.technical.share > 0:
            self._build_technical_table()

    def _build_technical_table(self) -> None:
        """The technical tokens as charset ids [pool, SEQ_LEN] (cut to SEQ_LEN), the language index and
        layout variant they are typed on, and their class."""
        spec = self.config.technical
        code = spec.label_as
        tokens = technical_tokens(spec.pool_size, 0, self.wordlists[code].words)
        table = torch.zeros((len(tokens), SEQ_LEN), dtype=torch.int32)
        for row, token in enumerate(tokens):
            ids = self.charset.encode(token[:SEQ_LEN])
            table[row, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
        self._technical = table
        language = self.language_codes.index(code)
        self._technical_language = language
        self._technical_variant = self.layout_ids.index(next(iter(self.config.languages[language].layouts)))
        label = self.config.languages[language].label_language
        self._technical_class = CLASS_TO_ID[class_name(label, label)]

    # Labels under the typing prior ---------------------------------------------------------------------
    def _prior_joint(self) -> np.ndarray:
        specs = self.config.languages
        return joint_prior(
            self.config.prior,
            [s.code for s in specs],
            [s.label_language for s in specs],
            [s.weight for s in specs],
        )

    def _build_labeller(self) -> PosteriorLabeller:
        """The reading tables of `layoutnet.data.readings` (cached on disk) with the prior's joint."""
        arrays = tablecache.cached(
            "readings",
            self._readings_key(),
            ("keys", "ratios"),
            self._fresh_readings,
            self._consistent_readings,
        )
        specs = self.config.languages
        return PosteriorLabeller(
            arrays["keys"],
            arrays["ratios"],
            self._prior_joint(),
            [s.label_language for s in specs],
            self._word_len.numel(),
        )

    def _lexicon(self, spec: LanguageSpec) -> WordList:
        """The words whose frequencies count as readings of `spec`'s language: its `prior.lexicon_size` most
        frequent clean words (every word when null), never fewer than the vocabulary, unflattened."""
        size = self.config.prior.lexicon_size or 1 << 40
        return load_words(spec.code, max(size, spec.vocab_size), 1.0, self.layouts, spec.extra_letters)

    def _readings_key(self) -> dict[str, object]:
        cfg = self.config
        return {
            "format": 1,
            "wordfreq": wordfreq_version(),
            "words": [[code, self.wordlists[code].digest] for code in self.language_codes],
            "lexicons": [[s.code, self._lexicon(s).digest] for s in cfg.languages],
            "languages": [[s.code, s.label_language, dict(s.layouts)] for s in cfg.languages],
            "charset": "".join(self.charset.chars),
            "layout_ids": list(self.layout_ids),
            "conversions": tablecache.digest(self._conv.numpy()),
        }

    def _consistent_readings(self, arrays: dict[str, np.ndarray]) -> bool:
        keys, ratios = arrays["keys"], arrays["ratios"]
        limit = len(self.layout_ids) ** 2 * self._word_len.numel()
        return (
            keys.dtype == np.int64
            and ratios.dtype == np.float32
            and keys.ndim == 1
            and ratios.shape == (keys.size, len(self.config.languages))
            and (keys.size == 0 or (int(keys[0]) >= 0 and int(keys[-1]) < limit))
            and bool((np.diff(keys) > 0).all())
            and bool(np.isfinite(ratios).all())
        )

    def _fresh_readings(self) -> dict[str, np.ndarray]:
        layout_index = {lid: i for i, lid in enumerate(self.layout_ids)}
        languages = []
        offset = 0
        for spec in self.config.languages:
            vocab_ids, vocab_lengths = self.wordlists[spec.code].encode(self.charset)
            lexicon = self._lexicon(spec)
            lexicon_ids, lexicon_lengths = lexicon.encode(self.charset)
            weights = np.array(list(spec.layouts.values()), dtype=np.float64)
            languages.append(
                Language(
                    code=spec.code,
                    label=spec.label_language,
                    variants=tuple(layout_index[lid] for lid in spec.layouts),
                    weights=tuple((weights / weights.sum()).tolist()),
                    vocab_ids=vocab_ids,
                    vocab_lengths=vocab_lengths,
                    offset=offset,
                    lexicon_ids=lexicon_ids,
                    lexicon_lengths=lexicon_lengths,
                    lexicon_freqs=lexicon.weights.numpy(),
                )
            )
            offset += vocab_ids.shape[0]
        n_layouts = len(self.layout_ids)
        conv = self._conv.view(n_layouts, n_layouts, self._charset_size).long()
        keys, ratios = ratio_tables(languages, conv, offset)
        return {"keys": keys, "ratios": ratios}

    def _consistent_tables(self, arrays: dict[str, np.ndarray]) -> bool:
        """Whether cached word tables fit this synthesizer (sizes, dtypes, every index in range)."""
        sizes = [len(self.wordlists[code]) for code in self.language_codes]
        total, width = sum(sizes), int(arrays["width"])
        words, alias = arrays["words"], arrays["word_alias"]
        ambiguous = arrays["ambiguous"]
        pairs = len(self.layout_ids) ** 2 if self.config.ambiguous.typed_share > 0 else 0
        return (
            arrays["width"].shape == ()
            and 1 < width <= SEQ_LEN + 1
            and words.dtype.kind == "u"
            and words.shape == ((total + -(-SEQ_LEN // width)) * width,)
            and int(words.max()) < len(self.charset)
            and arrays["word_len"].dtype == np.int32
            and arrays["word_prob"].dtype == np.float64
            and alias.dtype == np.int64
            and arrays["word_len"].shape == arrays["word_prob"].shape == alias.shape == (total,)
            and int(alias.min()) >= 0
            and int(alias.max()) < total
            and arrays["vocab_sizes"].tolist() == sizes
            and arrays["vocab_offsets"].tolist() == np.cumsum([0, *sizes[:-1]]).tolist()
            and ambiguous.dtype == np.uint8
            and ambiguous.shape == (-(-pairs * total // 8),)
        )

    def _word_tables_key(self) -> dict[str, object]:
        """Everything the word-derived tables depend on (the cache key): the word lists' contents, the
        charset, the conversion tables, the lexicon settings and wordfreq's version (lexicons larger
        than a vocabulary are read from it)."""
        cfg = self.config
        return {
            "format": 1,
            "wordfreq": wordfreq_version(),
            "words": [[code, self.wordlists[code].digest] for code in self.language_codes],
            "languages": [
                [spec.code, spec.label_language, list(spec.layouts), spec.extra_letters]
                for spec in cfg.languages
            ],
            "letters": ["".join(sorted(self._letters(spec))) for spec in cfg.languages],
            "flattening": cfg.flattening,
            "charset": "".join(self.charset.chars),
            "layout_ids": list(self.layout_ids),
            "conversions": tablecache.digest(self._conv.numpy()),
            "length_balance": cfg.length_balance,
            "ambiguous": cfg.ambiguous.typed_share > 0,
            "lexicon_size": cfg.ambiguous.lexicon_size,
        }

    def _letters(self, spec: LanguageSpec) -> frozenset[str]:
        return letter_set(spec.code, self.layouts, spec.extra_letters)

    def _fresh_word_tables(self) -> dict[str, np.ndarray]:
        """The word-derived tables built from the word lists (what the cache holds)."""
        encoded = [self.wordlists[code].encode(self.charset) for code in self.language_codes]
        width = max(ids.shape[1] for ids, _ in encoded)
        space = self.charset.id(" ")
        rows = []
        for ids, lengths in encoded:
            padded = torch.zeros((ids.shape[0], width + 1), dtype=torch.long)
            padded[:, : ids.shape[1]] = ids
            padded[torch.arange(ids.shape[0]), lengths] = space
            rows.append(padded)
        zero_rows = -(-SEQ_LEN // (width + 1))
        rows.append(torch.zeros((zero_rows, width + 1), dtype=torch.long))
        words = torch.cat(rows).reshape(-1)
        word_len = torch.cat([lengths for _, lengths in encoded]).to(torch.int32)
        weights = [
            self.wordlists[code].weights[: ids.shape[0]]
            for code, (ids, _) in zip(self.language_codes, encoded, strict=True)
        ]
        if self.config.length_balance:
            weights = _length_balanced(weights, [lengths for _, lengths in encoded])
        sizes, offsets, probs, aliases = [], [], [], []
        offset = 0
        for (ids, _), weight in zip(encoded, weights, strict=True):
            prob, alias = _alias_table(weight)
            probs.append(prob)
            aliases.append(alias + offset)
            sizes.append(ids.shape[0])
            offsets.append(offset)
            offset += ids.shape[0]
        arrays = {
            "width": np.array(width + 1, dtype=np.int64),
            "words": words.numpy().astype(np.min_scalar_type(len(self.charset) - 1)),
            "word_len": word_len.numpy(),
            "word_prob": torch.cat(probs).numpy(),
            "word_alias": torch.cat(aliases).numpy(),
            "vocab_sizes": np.array(sizes, dtype=np.float64),
            "vocab_offsets": np.array(offsets, dtype=np.int64),
            "ambiguous": np.zeros(0, dtype=np.uint8),
        }
        if self.config.ambiguous.typed_share > 0:
            table = self._ambiguity_table(dict(zip(self.language_codes, encoded, strict=True)), offsets)
            arrays["ambiguous"] = np.packbits(table.numpy())
        return arrays

    def _ambiguity_table(
        self, encoded: dict[str, tuple[torch.Tensor, torch.Tensor]], offsets: list[int]
    ) -> torch.Tensor:
        """Per (meant variant, active variant) pair and vocabulary word: whether the word typed on the
        active variant spells a real word of the active language (`data.ambiguous`). Words are compared
        by a 64-bit polynomial hash of their ids (padding adds nothing, so widths need not match)."""
        spec = self.config.ambiguous
        specs = self.config.languages
        n_layouts, size = len(self.layout_ids), self._charset_size
        total = sum(int(ids.shape[0]) for ids, _ in encoded.values())
        table = torch.zeros((n_layouts * n_layouts, total), dtype=torch.bool)
        lexicons = {
            s.code: set(row_hashes(self._lexicon_ids(s, spec.lexicon_size, encoded)).tolist()) for s in specs
        }
        layout_index = {lid: i for i, lid in enumerate(self.layout_ids)}
        conv = self._conv.view(n_layouts, n_layouts, size).long()
        for code, offset in zip(self.language_codes, offsets, strict=True):
            meant = specs[self.language_codes.index(code)]
            ids, lengths = encoded[code]
            for active in specs:
                if active.label_language == meant.label_language:
                    continue
                lexicon = np.fromiter(lexicons[active.code], dtype=np.uint64)
                for mv in meant.layouts:
                    for av in active.layouts:
                        typed = conv[layout_index[mv], layout_index[av]][ids]
                        whole = (typed != PAD_ID).sum(1) == lengths  # every character typable
                        real = torch.from_numpy(np.isin(row_hashes(typed), lexicon))
                        row = layout_index[mv] * n_layouts + layout_index[av]
                        table[row, offset : offset + ids.shape[0]] = whole & real
        return table.reshape(-1)

    def _lexicon_ids(
        self, spec: LanguageSpec, size: int, encoded: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Encoded ids of the `size` most frequent clean words of a language: the first rows of its
        encoded vocabulary when that is as large (words are sorted by frequency), else loaded."""
        ids, _ = encoded[spec.code]
        if ids.shape[0] >= size:
            return ids[:size]
        words = load_words(spec.code, size, self.config.flattening, self.layouts, spec.extra_letters)
        return words.encode(self.charset)[0]

    # Facts ------------------------------------------------------------------------------------------
    def expected_class_shares(self) -> dict[str, float]:
        """Share of each class in generated data (in expectation)."""
        specs = self.config.languages
        lang_p = torch.tensor([s.weight for s in specs], dtype=torch.float64)
        lang_p = lang_p / lang_p.sum()
        shares = dict.fromkeys(CLASSES, 0.0)
        for mi, meant in enumerate(specs):
            p_meant = float(lang_p[mi])
            wrong = self._wrong_share[mi]
            shares[class_name(meant.label_language, meant.label_language)] += p_meant * (1 - wrong)
            probs = self._partner_probs[mi]
            for ai, active in enumerate(specs):
                if probs[ai] > 0 and wrong > 0:
                    name = class_name(meant.label_language, active.label_language)
                    shares[name] += p_meant * wrong * float(probs[ai])
        return shares

    def describe(self) -> dict[str, object]:
        cfg = self.config
        return {
            "languages": {
                spec.code: {
                    "weight": spec.weight,
                    "vocab_size": len(self.wordlists[spec.code]),
                    "layouts": dict(spec.layouts),
                    **({"label_as": spec.label_as} if spec.label_as else {}),
                }
                for spec in cfg.languages
            },
            "flattening": cfg.flattening,
            "correct_layout_share": cfg.correct_layout_share,
            "word_count_weights": list(cfg.word_count_weights),
            "length_balance": cfg.length_balance,
            "augment": {f.name: getattr(cfg.augment, f.name) for f in fields(AugmentSettings)},
            "ambiguous": {f.name: getattr(cfg.ambiguous, f.name) for f in fields(AmbiguousSettings)},
            "expected_class_shares": {k: round(v, 6) for k, v in self.expected_class_shares().items()},
            "prior": self.prior_description(),
            "technical": {f.name: getattr(cfg.technical, f.name) for f in fields(TechnicalSettings)},
        }

    def prior_description(self) -> dict[str, object]:
        """What the labels mean (report.json, checkpoints, the artifact's metadata): the label mode and the
        typing prior as class probabilities."""
        prior = self.config.prior
        specs = self.config.languages
        return {
            "labels": prior.labels,
            "class_prior": {
                k: round(v, 6)
                for k, v in class_prior(self._prior_joint(), [s.label_language for s in specs]).items()
            },
            "lexicon_size": prior.lexicon_size,
        }

    # Generation -------------------------------------------------------------------------------------
    def generate(
        self, n: int, seed: int, dtype: torch.dtype = torch.long
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` samples of stream `seed`: (ids [n, SEQ_LEN], labels [n]) of `dtype` (uint8 fits every id)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        ids = torch.empty((n, SEQ_LEN), dtype=dtype)
        labels = torch.empty(n, dtype=dtype)
        for start, chunk_ids, chunk_labels in self.iter_chunks(n, seed):
            ids[start : start + chunk_ids.shape[0]] = chunk_ids
            labels[start : start + chunk_labels.shape[0]] = chunk_labels
        return ids, labels

    def iter_chunks(self, n: int, seed: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(start row, ids int64, labels int64) chunk by chunk; chunk i depends only on (seed, i). The labels
        are hard: the top class of soft targets."""
        for index, start in enumerate(range(0, n, CHUNK_SIZE)):
            ids, targets = self.generate_chunk(seed, index, min(CHUNK_SIZE, n - start))
            yield start, ids, hard_labels(targets)

    def generate_chunk(self, seed: int, index: int, n: int = CHUNK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk `index` of stream `seed` (its first `n` rows when n < CHUNK_SIZE): ids int64 [n, SEQ_LEN]
        and the training targets, int64 class ids [n] or, with `prior.labels=posterior`, float32
        probabilities [n, NUM_CLASSES]."""
        gen = torch.Generator().manual_seed(_chunk_seed(seed, index))
        rows = CHUNK_SIZE if n <= CHUNK_SIZE else n
        # One thread: these small, memory-bound ops gain little from more, and on a busy machine (the
        # trainer's threads, other processes) parallel regions can stall for whole scheduler slices.
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            ids, labels = self._synthesize(rows, gen)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        return ids[:n], labels[:n]

    def _synthesize(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        n_lang = len(cfg.languages)
        u = torch.rand((6, n), generator=gen)
        meant = _draw(self._lang_cdf, u[0])
        wrong = u[1] < self._wrong_prob.index_select(0, meant)
        active = torch.where(wrong, _draw(self._partner_cdf, u[2], meant), meant)
        mv = self._max_variants
        meant_variant = self._variant_global.index_select(
            0, meant * mv + _draw(self._variant_cdf, u[3], meant)
        )
        active_variant = self._variant_global.index_select(
            0, active * mv + _draw(self._variant_cdf, u[4], active)
        )
        active_variant = torch.where(wrong, active_variant, meant_variant)
        labels = self._label_table.index_select(0, meant * n_lang + active)
        n_words = _draw(self._count_cdf, u[5]) + 1  # [n] in 1..max_words

        ids, lengths, word = self._compose(n, meant, n_words, gen)
        ids, lengths = self._augment(ids, lengths, meant_variant, gen)
        technical = None
        if self._technical is not None:
            technical = torch.rand(n, generator=gen) < cfg.technical.share
            rows = torch.nonzero(technical).squeeze(1)
            pick = torch.randint(self._technical.shape[0], (rows.numel(),), generator=gen)
            ids.index_copy_(0, rows, self._technical.index_select(0, pick))
            meant = torch.where(technical, self._technical_language, meant)
            active = torch.where(technical, self._technical_language, active)
            wrong = wrong & ~technical
            meant_variant = torch.where(technical, self._technical_variant, meant_variant)
            active_variant = torch.where(technical, self._technical_variant, active_variant)
            labels = torch.where(technical, self._technical_class, labels)

        pair = meant_variant * len(self.layout_ids) + active_variant
        if self._ambiguous is not None:
            labels = self._label_ambiguous(labels, wrong, active, pair, word, n_words, gen)
        targets: torch.Tensor = labels
        if self._labeller is not None:
            targets = self._labeller.targets(meant, active, pair, word, n_words, NUM_CLASSES)
            if technical is not None:  # no words to read: as typed
                targets[technical] = 0.0
                targets[technical, self._technical_class] = 1.0
            if cfg.prior.labels == "argmax":
                targets = targets.argmax(1)
        ids.add_((pair * self._charset_size).to(torch.int32).unsqueeze(1))
        ids = self._conv.index_select(0, ids.view(-1)).view(n, SEQ_LEN)
        return _replace_empty(ids, targets)

    def _label_ambiguous(
        self,
        labels: torch.Tensor,
        wrong: torch.Tensor,
        active: torch.Tensor,
        pair: torch.Tensor,
        word: torch.Tensor,
        n_words: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """Wrong-layout samples whose every word spells a real word of the active language: a share
        `ambiguous.typed_share` of them labelled as typed in the active language."""
        assert self._ambiguous is not None
        total = self._word_len.numel()
        flags = self._ambiguous.index_select(0, (pair.unsqueeze(1) * total + word.long()).view(-1))
        flags = flags.view(word.shape) | (torch.arange(word.shape[1]) >= n_words.unsqueeze(1))
        picked = torch.rand(labels.shape[0], generator=gen) < self.config.ambiguous.typed_share
        relabel = wrong & flags.all(1) & picked
        typed = self._label_table.index_select(0, active * len(self.config.languages) + active)
        return torch.where(relabel, typed, labels)

    def _draw_words(self, meant: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
        """[n, k] global word indices drawn by weight from each sample's meant-language vocabulary."""
        x = torch.rand((meant.shape[0], k), generator=gen, dtype=torch.float64)
        x.mul_(self._vocab_sizes.index_select(0, meant).unsqueeze(1))
        slot = x.long()
        x -= slot  # the fraction decides between the slot and its alias
        slot += self._vocab_offsets.index_select(0, meant).unsqueeze(1)
        flat = slot.view(-1)
        keep = x.view(-1) < self._word_prob.index_select(0, flat)
        return torch.where(keep, flat, self._word_alias.index_select(0, flat)).view(slot.shape)

    def _compose(
        self, n: int, meant: torch.Tensor, n_words: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Words of the meant language joined by single spaces, cut to SEQ_LEN, right-padded with 0; with
        the lengths and the drawn word indices [n, max_words] (the first n_words of each row are used).

        Character p of word j (starting at s_j) lies at table index word_j * W + p - s_j = p + c_j. The
        index of every position is p + c_0 plus, from each word start (and from the end, where it jumps
        into the zero block after the table), the change of c: a scatter of those changes and a cumsum.
        """
        k = self.config.max_words
        word = self._draw_words(meant, k, gen).to(torch.int32)  # [n, k]
        word_len = self._word_len.index_select(0, word.view(-1)).view(n, k)
        ends = torch.cumsum(word_len + 1, 1, dtype=torch.int32)
        starts = ends - word_len - 1
        corner = word * self._word_width - starts  # c_j
        last = (n_words - 1).unsqueeze(1)
        total = torch.gather(ends, 1, last) - 1  # [n, 1]
        steps = torch.empty((n, k), dtype=torch.int32)
        steps[:, : k - 1] = corner[:, 1:] - corner[:, :-1]
        steps[:, : k - 1].masked_fill_(torch.arange(1, k) >= n_words.unsqueeze(1), 0)
        steps[:, k - 1 :] = self._zero_block - torch.gather(corner, 1, last) - total
        at = torch.cat([starts[:, 1:], total], 1).clamp_(max=SEQ_LEN).long()
        change = torch.zeros((n, SEQ_LEN + 1), dtype=torch.int32)
        change.scatter_add_(1, at, steps)
        flat = torch.cumsum(change[:, :SEQ_LEN], 1, dtype=torch.int32)
        flat += torch.arange(SEQ_LEN, dtype=torch.int32) + corner[:, :1]
        ids = self._words.index_select(0, flat.view(-1)).view(n, SEQ_LEN)
        return ids, total.squeeze(1).clamp_(max=SEQ_LEN), word

    def _augment(
        self, ids: torch.Tensor, lengths: torch.Tensor, layout: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Case changes, typos and punctuation on the rows each probability picks, in the meant layout."""
        aug = self.config.augment
        n = ids.shape[0]
        names = (
            "capitalize",
            "all_caps",
            "case_flip",
            "punctuation",
            "duplicate",
            "delete",
            "swap",
            "neighbour_typo",
        )
        u = torch.rand((len(names), n), generator=gen, dtype=torch.float32)
        positions = torch.arange(SEQ_LEN)
        for col, name in enumerate(names):
            p = getattr(aug, name)
            if p <= 0:
                continue
            rows = torch.nonzero(u[col] < p).squeeze(1)
            if name in ("delete", "swap"):
                rows = rows[lengths.index_select(0, rows) >= 2]
            m = rows.numel()
            if m == 0:
                continue
            sub = ids.index_select(0, rows)
            sub_len = lengths.index_select(0, rows).long()
            if name == "capitalize":
                sub[:, 0] = self._upper.index_select(0, sub[:, 0])
            elif name == "all_caps":
                sub = self._upper.index_select(0, sub.view(-1)).view(m, SEQ_LEN)
            elif name == "case_flip":
                flip = torch.rand(sub.shape, generator=gen) < aug.case_flip_rate
                sub = torch.where(flip, self._swapcase.index_select(0, sub.view(-1)).view(m, SEQ_LEN), sub)
            else:
                r = torch.rand((m, 3), generator=gen)
                if name == "punctuation":
                    at_end = r[:, 0] < 0.5
                    pos = torch.where(at_end, sub_len, (r[:, 1] * (sub_len + 1)).long()).unsqueeze(1)
                    lay = layout.index_select(0, rows)
                    pick = (r[:, 2] * self._punct_count[lay]).long()
                    value = self._punct[lay * self._punct_width + pick].unsqueeze(1)
                    shifted = torch.gather(sub, 1, positions - (positions > pos).long())
                    sub = torch.where(positions == pos, value, shifted)
                    sub_len = (sub_len + 1).clamp(max=SEQ_LEN)
                elif name == "duplicate":
                    pos = (r[:, 0] * sub_len).long().unsqueeze(1)
                    sub = torch.gather(sub, 1, positions - (positions > pos).long())
                    sub_len = (sub_len + 1).clamp(max=SEQ_LEN)
                elif name == "delete":
                    pos = (r[:, 0] * sub_len).long().unsqueeze(1)
                    padded = torch.cat([sub, sub.new_zeros((m, 1))], 1)
                    sub = torch.gather(padded, 1, positions + (positions >= pos).long())
                    sub_len = sub_len - 1
                elif name == "swap":
                    pos = (r[:, 0] * (sub_len - 1)).long().unsqueeze(1)
                    src = positions + (positions == pos).long() - (positions == pos + 1).long()
                    sub = torch.gather(sub, 1, src)
                else:  # neighbour_typo
                    pos = (r[:, 0] * sub_len).long().unsqueeze(1)
                    char = torch.gather(sub, 1, pos).squeeze(1).long()
                    cell = layout.index_select(0, rows) * self._charset_size + char
                    count = self._nb_count[cell]
                    near = self._nb[cell * self._nb_width + (r[:, 1] * count).long()]
                    sub = sub.scatter(1, pos, torch.where(count > 0, near, char.to(sub.dtype)).unsqueeze(1))
            ids.index_copy_(0, rows, sub)
            lengths.index_copy_(0, rows, sub_len.to(lengths.dtype))
        return ids, lengths


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class ids of training targets: themselves when hard, the top class of soft [n, classes] ones."""
    return targets if targets.ndim == 1 else targets.argmax(1)


def _replace_empty(ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose every id is 0 (an English `w` typed on Apple Hebrew is a geresh, outside the alphabet)
    take the next non-empty row of the chunk: the app never classifies an empty text."""
    empty = ~ids.any(1)
    if not bool(empty.any()):
        return ids, labels
    filled = (~empty).nonzero().squeeze(1)
    if filled.numel() == 0:
        return ids, labels
    rows = empty.nonzero().squeeze(1)
    source = filled[torch.searchsorted(filled, rows) % filled.numel()]
    ids[rows] = ids[source]
    labels[rows] = labels[source]
    return ids, labels


def _length_balanced(weights: list[torch.Tensor], lengths: list[torch.Tensor]) -> list[torch.Tensor]:
    """Word weights rescaled per language so that each language's share of words of every length is the
    mean of the languages' own shares (a length a language lacks stays absent from it)."""
    size = SEQ_LEN + 1
    shares = []
    for weight, length in zip(weights, lengths, strict=True):
        mass = torch.zeros(size, dtype=torch.float64).index_add_(0, length.clamp(max=SEQ_LEN), weight)
        shares.append(mass / mass.sum())
    target = torch.stack(shares).mean(0)
    out = []
    for weight, length, share in zip(weights, lengths, shares, strict=True):
        scale = torch.where(share > 0, target / share.clamp(min=1e-300), torch.zeros_like(share))
        out.append(weight * scale.index_select(0, length.clamp(max=SEQ_LEN)))
    return out


def _alias_table(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker/Vose alias table of a discrete distribution: draw slot i uniformly and keep it with
    probability prob[i], else take alias[i]."""
    size = weights.numel()
    scaled = (weights / weights.sum() * size).tolist()
    prob = [1.0] * size
    alias = list(range(size))
    small = [i for i, w in enumerate(scaled) if w < 1.0]
    large = [i for i, w in enumerate(scaled) if w >= 1.0]
    while small and large:
        lo, hi = small.pop(), large.pop()
        prob[lo] = scaled[lo]
        alias[lo] = hi
        scaled[hi] -= 1.0 - scaled[lo]
        (small if scaled[hi] < 1.0 else large).append(hi)
    return torch.tensor(prob, dtype=torch.float64), torch.tensor(alias, dtype=torch.long)
