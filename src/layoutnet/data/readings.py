"""Labels under a declared typing prior: what a typed text most likely meant, and how likely.

A typed text can be read several ways. `yt` is the English word "yt" typed as it is, or Russian `не`
typed while the US layout was on; the keys of `akuo` spell nothing in English but `שלום` on a Hebrew
layout. The script of a text says which language's layout was active (A); each language X then gives
one reading, class `X_from_A` (or `A` when X is A itself: typed as meant), with the likelihood

    L_X(s) = sum over layout variants vx of X, va of A:  w(vx) * w(va) * freq_X(word typed as s)

(for X = A simply freq_A(s)), where freq is the word's frequency in X (wordfreq's list, unflattened)
and w a variant's weight. Under the declared prior P(meant X, active A) (`data.prior`), the posterior
of the classes of A is proportional to P(X, A) * L_X(s); a text of several words multiplies the
likelihoods of its words (one keyboard for the whole text). That posterior is the training label
(`labels: posterior`, soft; `argmax` takes its top class), so a probability the model learns means
"how likely this text is a wrong-layout X" for a user who types as the prior says, and the frequency of
every reading counts: `не` (1.6e-2) typed on the US layout teaches `ru_from_en`, not `en` because `yt`
happens to be an English token of frequency 1.6e-6.

Most texts have one reading with a nonzero frequency. The tables built here store, for each
(meant variant, active variant, vocabulary word) whose typed text has another reading, the likelihood
ratios L_X / L_meant of every language X: a sorted key array and a ratio matrix, searched per sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from layoutnet.contract import CLASS_TO_ID, PAD_ID, class_name
from layoutnet.data.settings import PriorSettings, section
from layoutnet.errors import ConfigError

LABEL_MODES = ("posterior", "argmax", "generating")
"""posterior: soft labels, the posterior under the prior; argmax: its top class; generating: the class
the sample was generated with (meant language, active layout), whatever other readings the text has."""


def prior_spec(options: object, codes: Sequence[str]) -> PriorSettings:
    """Checked PriorSettings from plain values (`data.prior`); a problem raises a ConfigError naming it."""
    settings = section(options, PriorSettings, "prior")
    labels = settings.labels
    if labels not in LABEL_MODES:
        raise ConfigError("prior.labels", labels, "unknown label mode", LABEL_MODES)
    typed = dict(settings.typed or {})
    for code, share in typed.items():
        if code not in codes:
            raise ConfigError(f"prior.typed.{code}", share, "is not a language of the data", list(codes))
        _check_number(f"prior.typed.{code}", share, upper=None)
    default = settings.default_wrong_layout
    _check_number("prior.default_wrong_layout", default)
    wrong = {str(k): dict(v or {}) for k, v in dict(settings.wrong_layout or {}).items()}
    for meant, row in wrong.items():
        if meant not in codes:
            raise ConfigError(
                f"prior.wrong_layout.{meant}", row, "is not a language of the data", list(codes)
            )
        for active, p in row.items():
            key = f"prior.wrong_layout.{meant}.{active}"
            if active not in codes or active == meant:
                raise ConfigError(key, p, "must name another language of the data", list(codes))
            _check_number(key, p)
    size = settings.lexicon_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError("prior.lexicon_size", size, "must be a positive whole number or null (every word)")
    return PriorSettings(
        labels=str(labels),
        typed={str(k): float(v) for k, v in typed.items()},
        wrong_layout={m: {a: float(p) for a, p in row.items()} for m, row in wrong.items()},
        default_wrong_layout=float(default),
        lexicon_size=size,
    )


def _check_number(key: str, value: object, upper: float | None = 1.0) -> None:
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )
    if not ok or (upper is not None and value > upper):
        bound = f"between 0 and {upper}" if upper is not None else ">= 0"
        raise ConfigError(key, value, f"must be a number {bound}")


def joint_prior(
    prior: PriorSettings, codes: Sequence[str], labels: Sequence[str], weights: Sequence[float]
) -> np.ndarray:
    """float64 [n, n]: P(meant language i, active language j) of the data's languages under the prior
    (`weights`: the languages' weights in the data, the shares `prior.typed` leaves out).

    Pairs of two languages with the same contract label (a language `label_as` another) are never typed
    one on the other's layout: they get 0. Raises a ConfigError when a language's wrong-layout shares
    add up to more than 1."""
    n = len(codes)
    shares = np.array(
        [prior.typed.get(code, weight) for code, weight in zip(codes, weights, strict=True)], dtype=np.float64
    )
    if shares.sum() <= 0:
        raise ConfigError("prior.typed", dict(prior.typed), "needs a language with a share > 0")
    shares /= shares.sum()
    joint = np.zeros((n, n), dtype=np.float64)
    for i, meant in enumerate(codes):
        row = prior.wrong_layout.get(meant, {})
        for j, active in enumerate(codes):
            if j != i and labels[j] != labels[i]:
                joint[i, j] = row.get(active, prior.default_wrong_layout if shares[j] > 0 else 0.0)
        total = joint[i].sum()
        if total > 1.0 + 1e-9:
            raise ConfigError(
                f"prior.wrong_layout.{meant}",
                {codes[j]: joint[i, j] for j in range(n) if joint[i, j]},
                "the shares of text typed on other layouts add up to more than 1",
            )
        joint[i, i] = 1.0 - total
        joint[i] *= shares[i]
    return joint


def class_prior(joint: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """The prior of each contract class: the joint prior summed over the languages labelled alike."""
    out = dict.fromkeys(CLASS_TO_ID, 0.0)
    for i, meant in enumerate(labels):
        for j, active in enumerate(labels):
            if joint[i, j] > 0:
                out[class_name(meant, active)] += float(joint[i, j])
    return out


def row_hashes(ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint64 [N]: a polynomial hash of each row of ids (trailing padding, id 0, adds nothing)."""
    values = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    powers = np.cumprod(np.full(values.shape[1], 0x100000001B3, dtype=np.uint64), dtype=np.uint64)
    return (values.astype(np.uint64) * powers).sum(1, dtype=np.uint64)


@dataclass
class Likelihoods:
    """hash of a typed text -> summed likelihood, for one (reading language, active language)."""

    hashes: np.ndarray  # uint64 [K], sorted, unique
    values: np.ndarray  # float64 [K]

    @classmethod
    def of(cls, hashes: np.ndarray, values: np.ndarray) -> Likelihoods:
        keep = values > 0
        hashes, values = hashes[keep], values[keep]
        order = np.argsort(hashes, kind="stable")
        hashes, values = hashes[order], values[order]
        unique, start = np.unique(hashes, return_index=True)
        return cls(unique, np.add.reduceat(values, start) if len(values) else values)

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self.hashes):
            return np.zeros(len(hashes), dtype=np.float64)
        at = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
        return np.where(self.hashes[at] == hashes, self.values[at], 0.0)


@dataclass(frozen=True)
class Language:
    """What the tables need of one language of the data."""

    code: str
    label: str
    variants: tuple[int, ...]  # indices into the conversion table's layouts
    weights: tuple[float, ...]  # the variants' weights, normalised
    vocab_ids: torch.Tensor  # int64 [V, W] charset ids of the vocabulary (sampled words)
    vocab_lengths: torch.Tensor  # int64 [V]
    offset: int  # global index of the vocabulary's first word
    lexicon_ids: torch.Tensor  # int64 [L, W'] charset ids of the reading lexicon
    lexicon_lengths: torch.Tensor  # int64 [L]
    lexicon_freqs: np.ndarray  # float64 [L] unflattened frequencies


def _typed(conv: torch.Tensor, meant: int, active: int, ids: torch.Tensor, lengths: torch.Tensor):
    """(hashes, typable) of `ids` typed from layout `meant` on layout `active` (contract ids)."""
    typed = conv[meant, active][ids]
    typable = (typed != PAD_ID).sum(1) == lengths
    return row_hashes(typed), typable.numpy()


def reads_as(x: Language, a: Language) -> bool:
    """Whether a text typed on a layout of `a` has a reading in `x`: x is a itself (as typed) or a language
    of another contract label (x typed on a's layout)."""
    return x.code == a.code or x.label != a.label


def reading_likelihoods(
    languages: Sequence[Language], conv: torch.Tensor
) -> dict[tuple[int, int], Likelihoods]:
    """{(reading language index, active language index): Likelihoods} over every reading lexicon."""
    out = {}
    for xi, x in enumerate(languages):
        for ai, a in enumerate(languages):
            if not reads_as(x, a):
                continue
            hashes, values = [], []
            pairs = (
                [(x.variants[0], x.variants[0], 1.0)]
                if xi == ai
                else [
                    (vx, va, wx * wa)
                    for vx, wx in zip(x.variants, x.weights, strict=True)
                    for va, wa in zip(a.variants, a.weights, strict=True)
                ]
            )
            for vx, va, weight in pairs:
                h, typable = _typed(conv, vx, va, x.lexicon_ids, x.lexicon_lengths)
                hashes.append(h)
                values.append(np.where(typable, x.lexicon_freqs * weight, 0.0))
            out[xi, ai] = Likelihoods.of(np.concatenate(hashes), np.concatenate(values))
    return out


def ratio_tables(
    languages: Sequence[Language], conv: torch.Tensor, total_words: int
) -> tuple[np.ndarray, np.ndarray]:
    """(keys int64 [K] sorted, ratios float32 [K, n]) for every (meant variant, active variant, vocabulary
    word) whose typed text has a reading besides the meant one: key `pair * total_words + word` with
    `pair = meant_variant * n_layouts + active_variant`, ratios L_X / L_meant per language X (0 where X
    gives no reading of that active language)."""
    n_layouts = conv.shape[0]
    likelihoods = reading_likelihoods(languages, conv)
    keys, ratios = [], []
    for mi, m in enumerate(languages):
        words = np.arange(m.vocab_ids.shape[0], dtype=np.int64) + m.offset
        for vm in m.variants:
            for ai, a in enumerate(languages):
                if ai != mi and a.label == m.label:
                    continue  # never drawn
                for va in a.variants if ai != mi else (vm,):
                    h, _ = _typed(conv, vm, va, m.vocab_ids, m.vocab_lengths)
                    table = np.zeros((len(h), len(languages)), dtype=np.float64)
                    for xi, x in enumerate(languages):
                        if reads_as(x, a):
                            table[:, xi] = likelihoods[xi, ai].lookup(h)
                    meant = table[:, mi].copy()
                    others = np.delete(table, mi, axis=1)
                    keep = (meant > 0) & (others > 0).any(1)
                    if not keep.any():
                        continue
                    table = table[keep] / meant[keep, None]
                    keys.append((vm * n_layouts + va) * total_words + words[keep])
                    ratios.append(table.astype(np.float32))
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(languages)), dtype=np.float32)
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    return key[order], np.concatenate(ratios)[order]


class PosteriorLabeller:
    """Soft labels of generated samples from the ratio tables and the joint prior."""

    def __init__(
        self,
        keys: np.ndarray,
        ratios: np.ndarray,
        joint: np.ndarray,
        labels: Sequence[str],
        total_words: int,
    ):
        self.keys = torch.from_numpy(keys.astype(np.int64))
        self.ratios = torch.from_numpy(ratios.astype(np.float32))
        self.joint = torch.from_numpy(joint)
        self.total_words = total_words
        n = len(labels)
        # class id of reading x for active language a (-1: no such reading)
        classes = torch.full((n, n), -1, dtype=torch.long)
        for x, lx in enumerate(labels):
            for a, la in enumerate(labels):
                if x == a or lx != la:
                    classes[x, a] = CLASS_TO_ID[class_name(lx, la)]
        self.classes = classes

    def targets(
        self,
        meant: torch.Tensor,
        active: torch.Tensor,
        pair: torch.Tensor,
        word: torch.Tensor,
        n_words: torch.Tensor,
        num_classes: int,
    ) -> torch.Tensor:
        """float32 [n, num_classes]: the posterior of each sample's classes (meant [n], active [n] language
        indices; pair [n] layout pair; word [n, k] global word indices, the first n_words[i] used)."""
        n, k = word.shape
        n_lang = self.joint.shape[0]
        one_hot = torch.nn.functional.one_hot(meant, n_lang).to(torch.float64)  # [n, n_lang]
        score = torch.ones((n, n_lang), dtype=torch.float64)
        if self.keys.numel():
            keys = pair.unsqueeze(1).long() * self.total_words + word.long()  # [n, k]
            at = torch.searchsorted(self.keys, keys).clamp_(max=self.keys.numel() - 1)
            found = self.keys[at] == keys
            ratios = self.ratios[at].to(torch.float64)  # [n, k, n_lang]
            ratios = torch.where(found.unsqueeze(2), ratios, one_hot.unsqueeze(1))
        else:
            ratios = one_hot.unsqueeze(1).expand(n, k, n_lang)
        used = torch.arange(k) < n_words.unsqueeze(1)  # [n, k]
        ratios = torch.where(used.unsqueeze(2), ratios, torch.ones_like(ratios))
        score = ratios.prod(1)  # [n, n_lang]
        score = score * self.joint.index_select(1, active).T  # P(x, active) per sample
        classes = self.classes.index_select(1, active).T  # [n, n_lang]
        score = torch.where(classes >= 0, score, torch.zeros_like(score))
        total = score.sum(1, keepdim=True)
        # no reading left (cannot happen for the meant one, but a prior of 0 can remove it): generating label
        fallback = total.squeeze(1) <= 0
        score = torch.where(fallback.unsqueeze(1), one_hot, score / total.clamp(min=1e-300))
        out = torch.zeros((n, num_classes), dtype=torch.float64)
        out.scatter_add_(1, classes.clamp(min=0), torch.where(classes >= 0, score, torch.zeros_like(score)))
        return out.to(torch.float32)


PRIOR_METADATA_KEY = "typing_prior"
"""Key of what the probabilities mean in the artifact's metadata, parity_vectors.json and manifest.json."""


def prior_metadata(meta: Mapping[str, object] | None) -> dict[str, str]:
    """`{"typing_prior": <JSON>}` for an exported model, from a checkpoint's `labels` entry (what
    `Synthesizer.prior_description` gave): the label mode and the prior of every class, so the app's
    engineers know what a probability means. A file is data: only a known label mode and a finite
    number per contract class are taken; anything else gives {}."""
    import json

    labels = (meta or {}).get("labels")
    if not isinstance(labels, Mapping) or labels.get("labels") not in LABEL_MODES:
        return {}
    prior = labels.get("class_prior")
    if not isinstance(prior, Mapping) or set(prior) != set(CLASS_TO_ID):
        return {}
    values = {}
    for name in CLASS_TO_ID:
        value = prior[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return {}
        values[name] = float(value)
    text = json.dumps({"labels": labels["labels"], "class_prior": values}, separators=(",", ":"))
    return {PRIOR_METADATA_KEY: text}
