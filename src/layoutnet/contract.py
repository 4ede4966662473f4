"""The input/output contract shared with the OMFK macOS app.

Training, export metadata, evaluation and the app all read this module. The app depends on
every value here byte for byte: changing one breaks every shipped model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890 -=[]\\;',./`!@#$%^&*()_+{}|:\"<>?~"
_RUSSIAN = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
_HEBREW = "אבגדהוזחטיכלמנסעפצקרשתךםןףץ"

ALPHABET: str = _ASCII + _RUSSIAN + _HEBREW
"""188 characters; a character's id is its position + 1."""

PAD_ID = 0
"""Id of padding and of every character outside ALPHABET."""

VOCAB_SIZE = len(ALPHABET) + 1
SEQ_LEN = 20

CLASSES: tuple[str, ...] = (
    "ru",
    "en",
    "he",
    "ru_from_en",
    "he_from_en",
    "en_from_ru",
    "en_from_he",
    "he_from_ru",
    "ru_from_he",
)
"""Output order of `classLogits`. `X_from_Y`: the user meant language X while layout Y was active."""

NUM_CLASSES = len(CLASSES)
LANGUAGES: tuple[str, ...] = ("ru", "en", "he")

INPUT_NAME = "input_ids"
OUTPUT_NAME = "classLogits"

CHAR_TO_ID: dict[str, int] = {ch: i + 1 for i, ch in enumerate(ALPHABET)}
CLASS_TO_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

assert len(ALPHABET) == 188 and len(set(ALPHABET)) == 188


def class_name(meant: str, active: str) -> str:
    """Label of text meant in language `meant` typed while a layout of `active` was on."""
    name = meant if meant == active else f"{meant}_from_{active}"
    if name not in CLASS_TO_ID:
        raise ValueError(f"no class for meant={meant!r}, active={active!r}; classes are {CLASSES}")
    return name


def split_class(name: str) -> tuple[str, str]:
    """(meant language, active layout language) of a class name."""
    if name not in CLASS_TO_ID:
        raise ValueError(f"unknown class {name!r}; classes are {', '.join(CLASSES)}")
    meant, _, active = name.partition("_from_")
    return meant, active or meant


def encode(text: str) -> list[int]:
    """Ids of the first SEQ_LEN characters of `text`, unknown -> 0, right-padded with 0.

    Accepts any Python string (emoji, combining marks, lone surrogates, any length).
    """
    ids = [CHAR_TO_ID.get(ch, PAD_ID) for ch in text[:SEQ_LEN]]
    return ids + [PAD_ID] * (SEQ_LEN - len(ids))


def encode_batch(texts: Iterable[str]) -> torch.Tensor:
    """int64 tensor [N, SEQ_LEN] of encoded texts."""
    rows = [encode(t) for t in texts]
    if not rows:
        return torch.zeros((0, SEQ_LEN), dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)


def decode(ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
    """Text of a row of ids; padding and unknown characters (id 0) are dropped."""
    values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return "".join(ALPHABET[i - 1] for i in values if 0 < i <= len(ALPHABET))


def contract_metadata() -> dict[str, str]:
    """The contract as string metadata, for exported models and reports."""
    return {
        "classes": ",".join(CLASSES),
        "alphabet": ALPHABET,
        "input_length": str(SEQ_LEN),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "padding_id": str(PAD_ID),
    }
