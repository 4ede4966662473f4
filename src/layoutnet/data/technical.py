"""Technical tokens for training: text a user types that must never be rewritten.

Commit hashes, version strings and `name==version` pins, URLs, e-mail addresses, file paths, code
identifiers, numbers with units, dates and times look to a model that has only seen words like words typed
on the wrong layout (`0c38b5d1` is no English word; neither is `ghbdtn`). The synthesizer mixes a share of
these into its samples (`data.technical.share`), labelled as typed in the language whose layout types them
(`data.technical.label_as`, English). They are made here from templates filled with random characters,
numbers and words of the training vocabulary, deterministically for a seed, never from the real-text set.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence

_HEX = "0123456789abcdef"
_TLDS = ("com", "org", "net", "io", "dev", "ru", "co.il", "edu", "gov", "app", "ai", "de", "uk", "info")
_EXTENSIONS = (
    "py", "js", "ts", "md", "txt", "json", "yaml", "yml", "toml", "cfg", "ini", "sh", "c", "h", "cpp", "rs",
    "go", "java", "swift", "html", "css", "png", "jpg", "pdf", "csv", "log", "lock", "xml", "sql", "mlmodel",
)  # fmt: skip
_UNITS = (
    "px", "em", "rem", "pt", "ms", "s", "min", "h", "kb", "KB", "MB", "GB", "TB", "MiB", "GiB", "Hz", "kHz",
    "MHz", "GHz", "mm", "cm", "m", "km", "kg", "g", "mg", "ml", "l", "%", "x", "k", "M", "V", "W", "kW",
    "dpi",
)  # fmt: skip
_PIN_OPERATORS = ("==", ">=", "<=", "~=", "!=", ">", "<", "@", "^", "~")
_SCHEMES = ("https://", "http://", "ftp://", "ssh://", "git@", "")
_ROOTS = ("/usr/", "/etc/", "/var/", "/home/", "/opt/", "/tmp/", "~/", "./", "../", "C:\\", "src/", "")


def _word(rng: random.Random, words: Sequence[str]) -> str:
    return rng.choice(words).lower()


def _hex(rng: random.Random, words: Sequence[str]) -> str:
    length = rng.choice((7, 8, 10, 12, 16, 20, 32, 40))
    text = "".join(rng.choice(_HEX) for _ in range(length))
    return text.upper() if rng.random() < 0.1 else text


def _uuid(rng: random.Random, words: Sequence[str]) -> str:
    return "-".join("".join(rng.choice(_HEX) for _ in range(n)) for n in (8, 4, 4, 4, 12))


def _version(rng: random.Random, words: Sequence[str]) -> str:
    parts = [str(rng.choice((0, 1, 2, 3, 4, 5, 10, 12, 2024, 2025))) if i == 0 else str(rng.randint(0, 30))
             for i in range(rng.choice((2, 3, 3, 3, 4)))]  # fmt: skip
    text = ".".join(parts)
    if rng.random() < 0.25:
        text += rng.choice(
            ("-rc1", "-beta", "-alpha.2", "a1", "b2", "rc3", ".dev0", ".post1", "-SNAPSHOT", "+cpu")
        )
    return ("v" if rng.random() < 0.35 else "") + text


def _pin(rng: random.Random, words: Sequence[str]) -> str:
    name = _word(rng, words)
    if rng.random() < 0.4:
        name += rng.choice(("-", "_", "")) + _word(rng, words)
    return name + rng.choice(_PIN_OPERATORS) + _version(rng, words).lstrip("v")


def _url(rng: random.Random, words: Sequence[str]) -> str:
    scheme = rng.choice(_SCHEMES)
    host = ("www." if rng.random() < 0.3 else "") + _word(rng, words) + "." + rng.choice(_TLDS)
    if scheme == "git@":
        return f"git@{host}:{_word(rng, words)}/{_word(rng, words)}.git"
    path = "".join("/" + _word(rng, words) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.2:
        path += f"?{_word(rng, words)}={rng.randint(0, 999)}"
    port = f":{rng.choice((80, 443, 3000, 5000, 8000, 8080, 8888))}" if rng.random() < 0.15 else ""
    return scheme + host + port + path


def _email(rng: random.Random, words: Sequence[str]) -> str:
    local = (
        _word(rng, words) + rng.choice(("", ".", "_", "")) + (_word(rng, words) if rng.random() < 0.5 else "")
    )
    if rng.random() < 0.3:
        local += str(rng.randint(1, 99))
    return f"{local}@{_word(rng, words)}.{rng.choice(_TLDS)}"


def _path(rng: random.Random, words: Sequence[str]) -> str:
    root = rng.choice(_ROOTS)
    separator = "\\" if root == "C:\\" else "/"
    parts = [_word(rng, words) for _ in range(rng.randint(1, 3))]
    name = separator.join(parts)
    if rng.random() < 0.75:
        name += "." + rng.choice(_EXTENSIONS)
    return root + name


def _identifier(rng: random.Random, words: Sequence[str]) -> str:
    parts = [_word(rng, words) for _ in range(rng.randint(2, 4))]
    style = rng.random()
    if style < 0.35:
        text = "_".join(parts)
    elif style < 0.6:
        text = parts[0] + "".join(p.capitalize() for p in parts[1:])
    elif style < 0.72:
        text = "".join(p.capitalize() for p in parts)
    elif style < 0.82:
        text = "_".join(parts).upper()
    elif style < 0.92:
        text = ".".join(parts)
    else:
        text = "-".join(parts)
    if rng.random() < 0.15:
        text += str(rng.randint(0, 9))
    if rng.random() < 0.1:
        text += "()"
    return text


def _number(rng: random.Random, words: Sequence[str]) -> str:
    value = rng.choice((str(rng.randint(0, 4096)), f"{rng.uniform(0, 100):.{rng.randint(1, 2)}f}"))
    return value + rng.choice(_UNITS)


def _date(rng: random.Random, words: Sequence[str]) -> str:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice(
        (
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}.{m:02d}.{y}",
            f"{m}/{d}/{y % 100:02d}",
            f"{hh:02d}:{mm:02d}",
            f"{hh:02d}:{mm:02d}:{ss:02d}",
            f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}Z",
            f"{y}{m:02d}{d:02d}",
        )
    )


def _address(rng: random.Random, words: Sequence[str]) -> str:
    if rng.random() < 0.7:
        return ".".join(str(rng.randint(0, 255)) for _ in range(4)) + (
            f":{rng.randint(1, 65535)}" if rng.random() < 0.3 else ""
        )
    return ":".join("".join(rng.choice(_HEX) for _ in range(2)) for _ in range(6))


def _mixed(rng: random.Random, words: Sequence[str]) -> str:
    """Short mixes of letters and digits: ticket ids, model numbers, keys (`ABC-1234`, `x86_64`, `h264`)."""
    letters = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 4)))
    digits = str(rng.randint(0, 99999))
    return rng.choice(
        (f"{letters.upper()}-{digits}", f"{letters}{digits}", f"{letters}_{digits}", f"#{digits}")
    )


KINDS: dict[str, Callable[[random.Random, Sequence[str]], str]] = {
    "hash": _hex,
    "uuid": _uuid,
    "version": _version,
    "pin": _pin,
    "url": _url,
    "email": _email,
    "path": _path,
    "identifier": _identifier,
    "number": _number,
    "date": _date,
    "address": _address,
    "mixed": _mixed,
}
"""Kinds of technical token and their makers (each drawn equally often)."""


def technical_tokens(count: int, seed: int, words: Sequence[str]) -> list[str]:
    """`count` technical tokens, deterministic for (`seed`, `words`); `words` fills names and paths."""
    rng = random.Random(seed)
    makers = list(KINDS.values())
    return [rng.choice(makers)(rng, words) for _ in range(count)]
