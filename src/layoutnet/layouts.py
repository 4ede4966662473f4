"""Keyboard layouts and the conversion of text typed while the wrong layout was active.

A layout maps each of the 47 character keys of a Mac keyboard to the character it types at the normal
level and with Shift. Text meant in layout A's language but typed while layout B was active is what B
types at the keys (and levels) that would have typed the text on A: `привет` meant on Russian – PC with
U.S. active shows as `ghbdtn`.

Six layouts are built in (facts from macOS): `us` (en), `russianwin` and `russian` (ru), `hebrew`,
`hebrew_pc` and `hebrew_qwerty` (he). More come from a dump in the app's `layouts.json` schema with
`LayoutSet.from_dump`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from layoutnet.contract import ALPHABET, CHAR_TO_ID, PAD_ID, VOCAB_SIZE
from layoutnet.errors import DataError

KEY_ROWS: tuple[tuple[str, ...], ...] = (
    ("Backquote", *(f"Digit{d}" for d in "1234567890"), "Minus", "Equal"),
    (*(f"Key{c}" for c in "QWERTYUIOP"), "BracketLeft", "BracketRight", "Backslash"),
    (*(f"Key{c}" for c in "ASDFGHJKL"), "Semicolon", "Quote"),
    (*(f"Key{c}" for c in "ZXCVBNM"), "Comma", "Period", "Slash"),
)
"""The 47 character keys, row by row from the top, left to right (ANSI Mac keyboard)."""

KEYS: tuple[str, ...] = tuple(key for row in KEY_ROWS for key in row)

_ROW_OFFSETS = (0.0, 1.5, 1.75, 2.25)
"""Left edge of each row's first key, in key widths (Tab, Caps Lock and Shift are wider)."""

LEVELS = ("n", "s")
"""Levels kept from a dump: `n` normal, `s` with Shift (the option levels are not used)."""

NO_CHAR = "∅"
"""Marks a key+level that types nothing in the built-in tables below."""


def _key_centres() -> dict[str, tuple[int, float]]:
    return {
        key: (row, _ROW_OFFSETS[row] + col + 0.5)
        for row, keys in enumerate(KEY_ROWS)
        for col, key in enumerate(keys)
    }


_CENTRES = _key_centres()


def neighbour_keys(key: str) -> tuple[str, ...]:
    """Keys physically next to `key`: left and right in its row, and the touching keys above and below."""
    row, x = _CENTRES[key]
    found = []
    for other, (other_row, other_x) in _CENTRES.items():
        if other == key:
            continue
        if (other_row == row and abs(other_x - x) == 1.0) or (
            abs(other_row - row) == 1 and abs(other_x - x) < 1.0
        ):
            found.append(other)
    return tuple(found)


# Built-in tables: per layout and level, one string per keyboard row (KEY_ROWS order), one token per key
# separated by single spaces; NO_CHAR where the key types nothing at that level. Combining marks and
# typographic punctuation are written as escapes. Facts taken from macOS's own layouts.
_BUILTIN: dict[str, dict[str, object]] = {
    "us": {
        "name": "U.S.",
        "language": "en",
        "n": (
            "` 1 2 3 4 5 6 7 8 9 0 - =",
            "q w e r t y u i o p [ ] \\",
            "a s d f g h j k l ; '",
            "z x c v b n m , . /",
        ),
        "s": (
            "~ ! @ # $ % ^ & * ( ) _ +",
            "Q W E R T Y U I O P { } |",
            'A S D F G H J K L : "',
            "Z X C V B N M < > ?",
        ),
    },
    "russianwin": {
        "name": "Russian – PC",
        "language": "ru",
        "n": (
            "ё 1 2 3 4 5 6 7 8 9 0 - =",
            "й ц у к е н г ш щ з х ъ \\",
            "ф ы в а п р о л д ж э",
            "я ч с м и т ь б ю .",
        ),
        "s": (
            # macOS reports Latin Ë (U+00CB) for Shift+` here, not Cyrillic Ё.
            'Ë ! " № ; % : ? * ( ) _ +',
            "Й Ц У К Е Н Г Ш Щ З Х Ъ /",
            "Ф Ы В А П Р О Л Д Ж Э",
            "Я Ч С М И Т Ь Б Ю ,",
        ),
    },
    "russian": {
        "name": "Russian",
        "language": "ru",
        "n": (
            "] 1 2 3 4 5 6 7 8 9 0 - =",
            "й ц у к е н г ш щ з х ъ ё",
            "ф ы в а п р о л д ж э",
            "я ч с м и т ь б ю /",
        ),
        "s": (
            '[ ! " № % : , . ; ( ) _ +',
            "Й Ц У К Е Н Г Ш Щ З Х Ъ Ё",
            "Ф Ы В А П Р О Л Д Ж Э",
            "Я Ч С М И Т Ь Б Ю ?",
        ),
    },
    "hebrew": {
        "name": "Hebrew",
        "language": "he",
        "n": (
            "; 1 2 3 4 5 6 7 8 9 0 - =",
            "/ ׳ ק ר א ט ו ן ם פ ] [ \u05bf",
            "ש ד ג כ ע י ח ל ך ף ,",
            "ז ס ב ה נ מ צ ת ץ .",
        ),
        "s": (
            "~ ! @ # $ % ^ ₪ * ) ( _ +",
            "∅ ∅ ∅ ∅ ∅ ∅ ו\u05b9 ∅ ∅ ∅ } { |",
            "ש\u05c1 ∅ \u201e ∅ ∅ ∅ ∅ ל\u05b9 ∅ : ״",
            "∅ ∅ ל\u05b9 ∅ ∅ ∅ ∅ > < ?",
        ),
    },
    "hebrew_pc": {
        "name": "Hebrew – PC",
        "language": "he",
        "n": (
            "\\ 1 2 3 4 5 6 7 8 9 0 - =",
            "/ ' ק ר א ט ו ן ם פ ] [ \\",
            "ש ד ג כ ע י ח ל ך ף ,",
            "ז ס ב ה נ מ צ ת ץ .",
        ),
        "s": (
            "| ! @ # $ % ^ & * ) ( _ +",
            "Q W E R T Y U I O P } { |",
            'A S D F G H J K L : "',
            "Z X C V B N M > < ?",
        ),
    },
    "hebrew_qwerty": {
        "name": "Hebrew – QWERTY",
        "language": "he",
        "n": (
            "\u05bc 1 2 3 4 5 6 7 8 9 0 \u2013 =",
            "ק ש ע ר ת ט ו י ו פ \u2019 ײ\u05b7 \u05bf",
            "א ס ד פ ג ה ח כ ל ; ׳",
            "ז כ צ ו ב נ מ , . /",
        ),
        "s": (
            "\u05bc ! \u201c # $ % \u201d ₪ * ) ( \u2014 +",
            "∅ ש\u05c1 \u05b5 ∅ ט ת ו\u05bc ײ\u05b7 ו\u05b9 ף } { -",
            "\u05b8 ש \u201e ף ∅ ח ∅ ך ל\u05b9 : \u2019",
            "∅ ך ץ ב \u05bc ן ם > < ?",
        ),
    },
}

BUILTIN_LAYOUT_IDS: tuple[str, ...] = tuple(_BUILTIN)


def _parse_rows(layout_id: str, level: str, rows: Sequence[str]) -> dict[str, str]:
    if len(rows) != len(KEY_ROWS):
        raise ValueError(
            f"built-in layout {layout_id} level {level}: {len(rows)} rows, expected {len(KEY_ROWS)}"
        )
    chars: dict[str, str] = {}
    for keys, row in zip(KEY_ROWS, rows, strict=True):
        tokens = row.split(" ")
        if len(tokens) != len(keys):
            raise ValueError(f"built-in layout {layout_id} level {level}: row {row!r} has {len(tokens)} keys")
        for key, token in zip(keys, tokens, strict=True):
            if token != NO_CHAR:
                chars[key] = token
    return chars


@dataclass(frozen=True)
class Layout:
    """One keyboard layout: what each physical key types at the normal and the Shift level.

    A level's output may be several code points (a Hebrew letter with a point) or absent.
    """

    id: str
    language: str
    normal: Mapping[str, str]
    shift: Mapping[str, str]
    name: str = ""
    _where: dict[str, tuple[str, bool]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Where each single character is typed: the normal level wins over Shift, then the first key in
        # KEY_ROWS order (a character on two keys, like ו on Hebrew – QWERTY, is typed on the first).
        for shifted, level in ((False, self.normal), (True, self.shift)):
            for key in KEYS:
                out = level.get(key)
                if out and len(out) == 1 and out not in self._where:
                    self._where[out] = (key, shifted)

    def locate(self, char: str) -> tuple[str, bool] | None:
        """(key, shifted) that types `char` on this layout, or None when no key+level types it alone."""
        return self._where.get(char)

    def typed(self, key: str, shifted: bool) -> str | None:
        """What the key types. A Shift level that types nothing falls back to the normal level."""
        if shifted:
            out = self.shift.get(key)
            if out:
                return out
        return self.normal.get(key) or None

    def chars(self) -> frozenset[str]:
        """Every single character some key+level of this layout types."""
        return frozenset(self._where)


class LayoutSet(Mapping[str, Layout]):
    """Layouts by id, and the conversions between them."""

    def __init__(self, layouts: Iterable[Layout]):
        self._layouts: dict[str, Layout] = {}
        for layout in layouts:
            self._layouts[layout.id] = layout

    # Mapping protocol -------------------------------------------------------------------------------
    def __getitem__(self, layout_id: str) -> Layout:
        try:
            return self._layouts[layout_id]
        except KeyError:
            raise DataError(
                f"unknown keyboard layout {layout_id!r}; known layouts: {', '.join(sorted(self._layouts))}. "
                "Use one of those, or load it from a layout dump (data.layouts_dump)"
            ) from None

    def __contains__(self, layout_id: object) -> bool:
        return layout_id in self._layouts

    def get(self, layout_id: str, default: Layout | None = None) -> Layout | None:  # type: ignore[override]
        return self._layouts.get(layout_id, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layouts)

    def __len__(self) -> int:
        return len(self._layouts)

    def __repr__(self) -> str:
        return f"LayoutSet({', '.join(self._layouts)})"

    # Construction -----------------------------------------------------------------------------------
    @classmethod
    def builtin(cls) -> LayoutSet:
        """The six built-in layouts."""
        layouts = []
        for layout_id, spec in _BUILTIN.items():
            layouts.append(
                Layout(
                    id=layout_id,
                    language=str(spec["language"]),
                    normal=_parse_rows(layout_id, "n", spec["n"]),  # type: ignore[arg-type]
                    shift=_parse_rows(layout_id, "s", spec["s"]),  # type: ignore[arg-type]
                    name=str(spec["name"]),
                )
            )
        return cls(layouts)

    @classmethod
    def from_dump(
        cls,
        path: str | Path,
        layout_ids: Iterable[str] | None = None,
        languages: Iterable[str] | None = None,
        base: LayoutSet | None = None,
    ) -> LayoutSet:
        """Layouts read from a JSON dump in the app's `layouts.json` schema, added to `base`.

        `layout_ids` None loads every layout of the dump; otherwise each id must be in the dump. Each of
        `languages` must have at least one layout in the dump. `base` defaults to the built-in layouts;
        a dump layout replaces a base layout with the same id.
        """
        path = Path(path)
        dump = _read_dump(path)
        described = {entry["id"]: entry for entry in dump["layouts"]}
        keymap: Mapping[str, Mapping[str, Mapping[str, str]]] = dump["map"]
        wanted = list(described) if layout_ids is None else list(dict.fromkeys(layout_ids))
        missing = [layout_id for layout_id in wanted if layout_id not in described]
        if missing:
            raise DataError(
                f"layout dump {path} has no layout {', '.join(map(repr, missing))}; it has: "
                f"{', '.join(sorted(described))}. Fix the layout ids in the config or dump those layouts"
            )
        if languages is not None:
            have = sorted({str(entry.get("language", "")) for entry in dump["layouts"]} - {""})
            lacking = [lang for lang in dict.fromkeys(languages) if lang not in have]
            if lacking:
                raise DataError(
                    f"layout dump {path} has no layout for language {', '.join(map(repr, lacking))}; its "
                    f"languages are: {', '.join(have)}. Dump a layout of that language or drop the language"
                )
        loaded = []
        for layout_id in wanted:
            entry = described[layout_id]
            levels: dict[str, dict[str, str]] = {"n": {}, "s": {}}
            for key in KEYS:
                outputs = keymap.get(key, {}).get(layout_id) or {}
                for level in LEVELS:
                    out = outputs.get(level)
                    if isinstance(out, str) and out:
                        levels[level][key] = out
            loaded.append(
                Layout(
                    id=layout_id,
                    language=str(entry.get("language", "")),
                    normal=levels["n"],
                    shift=levels["s"],
                    name=str(entry.get("name", "")),
                )
            )
        start = base if base is not None else cls.builtin()
        return cls([*start.values(), *loaded])

    # Queries ----------------------------------------------------------------------------------------
    def languages(self) -> tuple[str, ...]:
        """Languages that have at least one layout, in first-seen order."""
        return tuple(dict.fromkeys(layout.language for layout in self._layouts.values() if layout.language))

    def for_language(self, language: str) -> tuple[Layout, ...]:
        return tuple(layout for layout in self._layouts.values() if layout.language == language)

    def resolve(self, name: str) -> Layout:
        """A layout by id, or the first layout of a language (`en`, `ru`, `he`)."""
        if name in self._layouts:
            return self._layouts[name]
        of_language = self.for_language(name)
        if of_language:
            return of_language[0]
        return self[name]  # raises the DataError listing the known layouts

    def convert(self, text: str, meant_layout: str, active_layout: str) -> str:
        """What shows when `text`, meant on `meant_layout`, is typed while `active_layout` is active.

        Each character is looked up on the meant layout (key and Shift level) and replaced by what the
        active layout types at that key and level; characters no key of the meant layout types (space,
        characters of other scripts) stay as they are. Layouts are given by id or by language.
        """
        meant = self.resolve(meant_layout)
        active = self.resolve(active_layout)
        if meant.id == active.id:
            return text
        return "".join(_convert_char(ch, meant, active) for ch in text)

    def id_table(self, meant_layout: str, active_layout: str, charset: Charset | None = None) -> torch.Tensor:
        """int64 [len(charset)]: contract id of what shows for each character id of `charset`.

        The id-level form of `convert`. Padding maps to padding, characters the meant layout does not
        type map to themselves, a result outside the contract alphabet maps to 0, and a result of several
        code points (a Hebrew letter with a point) maps to the id of its first one.
        """
        charset = charset or Charset()
        meant = self.resolve(meant_layout)
        active = self.resolve(active_layout)
        table = torch.zeros(len(charset), dtype=torch.long)
        for index, ch in enumerate(charset.chars):
            if index == PAD_ID:
                continue
            out = ch if meant.id == active.id else _convert_char(ch, meant, active)
            table[index] = CHAR_TO_ID.get(out[:1], PAD_ID)
        return table

    def id_tables(self, layout_ids: Iterable[str] | None = None) -> dict[tuple[str, str], torch.Tensor]:
        """`id_table` of every (meant, active) pair of `layout_ids` (default: all layouts)."""
        ids = list(self._layouts if layout_ids is None else layout_ids)
        return {(meant, active): self.id_table(meant, active) for meant in ids for active in ids}


def _convert_char(ch: str, meant: Layout, active: Layout) -> str:
    where = meant.locate(ch)
    if where is None:
        return ch
    out = active.typed(*where)
    return ch if out is None else out


class Charset:
    """Character ids used while synthesising: the contract alphabet (ids 0..188) followed by `extra`
    characters (ids 189..) of languages outside the contract, which map to 0 once converted."""

    def __init__(self, extra: Iterable[str] = ()):
        extras = [ch for ch in dict.fromkeys(extra) if ch not in CHAR_TO_ID and len(ch) == 1]
        self.chars: tuple[str, ...] = ("", *ALPHABET, *extras)
        self._ids = {ch: i for i, ch in enumerate(self.chars) if i != PAD_ID}

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def extra(self) -> tuple[str, ...]:
        return self.chars[VOCAB_SIZE:]

    def id(self, ch: str) -> int:
        return self._ids.get(ch, PAD_ID)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(ch, PAD_ID) for ch in text]

    def __contains__(self, ch: object) -> bool:
        return ch in self._ids


def _read_dump(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            f"layout dump {path} not found; give the path of a JSON layout dump (data.layouts_dump)"
        )
    try:
        dump = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(
            f"layout dump {path} is not readable JSON ({err}); export it again from the app"
        ) from err
    problem = None
    if (
        not isinstance(dump, dict)
        or not isinstance(dump.get("layouts"), list)
        or not isinstance(dump.get("map"), dict)
    ):
        problem = "expected an object with a `layouts` list and a `map` object"
    elif not all(isinstance(entry, dict) and isinstance(entry.get("id"), str) for entry in dump["layouts"]):
        problem = "every entry of `layouts` needs a string `id`"
    elif not all(
        isinstance(per_layout, dict) and all(isinstance(levels, dict) for levels in per_layout.values())
        for per_layout in dump["map"].values()
    ):
        problem = "`map` must be {physical key: {layout id: {n, s, a, sa}}}"
    if problem:
        raise DataError(f"layout dump {path} does not follow the layouts.json schema: {problem}")
    return dump
