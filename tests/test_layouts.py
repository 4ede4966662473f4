"""Keyboard layouts: conversions, id tables, dumps, and the built-in tables against macOS's dump."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from layoutnet.contract import ALPHABET, CHAR_TO_ID, PAD_ID, VOCAB_SIZE
from layoutnet.errors import DataError
from layoutnet.layouts import BUILTIN_LAYOUT_IDS, KEYS, Charset, LayoutSet, neighbour_keys

SHARED = Path(__file__).resolve().parents[2] / "shared"
DUMP = SHARED / "reference" / "macos_keyboard_layouts.json"


@pytest.fixture(scope="module")
def layouts() -> LayoutSet:
    return LayoutSet.builtin()


@pytest.mark.parametrize(
    ("text", "meant", "active", "shown"),
    [
        ("привет", "russianwin", "us", "ghbdtn"),
        ("ghbdtn", "us", "russianwin", "привет"),
        ("Привет", "russianwin", "us", "Ghbdtn"),
        ("Ghbdtn", "us", "russianwin", "Привет"),
        ("hello", "us", "russianwin", "руддщ"),
        ("руддщ", "russianwin", "us", "hello"),
        ("привет", "russian", "us", "ghbdtn"),
        ("שלום", "hebrew", "us", "akuo"),
        ("akuo", "us", "hebrew", "שלום"),
        ("שלום", "hebrew_pc", "us", "akuo"),
        ("привет", "ru", "en", "ghbdtn"),  # languages stand for their first layout
        ("שלום", "hebrew", "russianwin", "флгщ"),
    ],
)
def test_convert_words(layouts: LayoutSet, text: str, meant: str, active: str, shown: str) -> None:
    assert layouts.convert(text, meant, active) == shown


@pytest.mark.parametrize(
    ("russian", "us"),
    [
        ("б", ","),
        ("ю", "."),
        ("ж", ";"),
        ("э", "'"),
        ("х", "["),
        ("ъ", "]"),
        ("ё", "`"),
        ("Б", "<"),
        ("Ю", ">"),
        ("Ж", ":"),
        ("Э", '"'),
        ("Х", "{"),
        ("Ъ", "}"),
    ],
)
def test_russian_letters_on_punctuation_keys(layouts: LayoutSet, russian: str, us: str) -> None:
    assert layouts.convert(russian, "russianwin", "us") == us
    assert layouts.convert(us, "us", "russianwin") == russian


def test_apple_russian_differs_from_pc_on_yo_and_punctuation(layouts: LayoutSet) -> None:
    assert layouts.convert("ё", "russian", "us") == "\\"
    assert layouts.convert("ё", "russianwin", "us") == "`"
    assert layouts.convert(".", "russianwin", "us") == "/"  # period is on the slash key of Russian – PC
    assert layouts.convert(",", "russian", "us") == "^"  # Shift+6 on Apple Russian
    assert layouts.convert("съешь", "russian", "us") == "c]tim"


@pytest.mark.parametrize(("hebrew", "us"), [("ך", "l"), ("ם", "o"), ("ן", "i"), ("ף", ";"), ("ץ", ".")])
@pytest.mark.parametrize("layout", ["hebrew", "hebrew_pc"])
def test_hebrew_final_letters(layouts: LayoutSet, layout: str, hebrew: str, us: str) -> None:
    assert layouts.convert(hebrew, layout, "us") == us
    assert layouts.convert(us, "us", layout) == hebrew


def test_hebrew_qwerty_final_letters_are_shifted(layouts: LayoutSet) -> None:
    assert layouts.convert("ךםןףץ", "hebrew_qwerty", "us") == "KMNPC"
    assert layouts.convert("שלום", "hebrew_qwerty", "us") == "wluM"


def test_characters_without_a_key_stay(layouts: LayoutSet) -> None:
    assert layouts.convert("שלום world 42", "hebrew", "us") == "akuo world 42"
    assert layouts.convert("hi 🙂", "us", "russianwin") == "рш 🙂"
    assert layouts.convert("same", "us", "us") == "same"


def test_shift_level_without_a_character_falls_back_to_normal(layouts: LayoutSet) -> None:
    # Apple Hebrew types nothing of its own with Shift on most letter keys.
    assert layouts.convert("И", "russianwin", "hebrew") == "נ"
    assert layouts.convert("Hello", "us", "hebrew") == "יקךךם"
    # Hebrew – PC types Latin capitals with Shift.
    assert layouts.convert("Hello", "us", "hebrew_pc") == "Hקךךם"


def test_multi_codepoint_output_is_kept_in_text_and_first_char_in_ids(layouts: LayoutSet) -> None:
    assert layouts.convert("Ф", "russianwin", "hebrew") == "ש\u05c1"
    table = layouts.id_table("russianwin", "hebrew")
    assert table[CHAR_TO_ID["Ф"]] == CHAR_TO_ID["ש"]


def test_unknown_layout_names_the_known_ones(layouts: LayoutSet) -> None:
    with pytest.raises(DataError, match=r"unknown keyboard layout 'dvorak'.*russianwin"):
        layouts.convert("x", "dvorak", "us")
    assert "us" in layouts and "dvorak" not in layouts and layouts.get("dvorak") is None


def test_neighbour_keys_follow_the_staggered_rows() -> None:
    assert set(neighbour_keys("KeyG")) == {"KeyT", "KeyY", "KeyF", "KeyH", "KeyV", "KeyB"}
    assert set(neighbour_keys("KeyA")) == {"KeyQ", "KeyW", "KeyS", "KeyZ"}
    assert len(KEYS) == 47 and len(set(KEYS)) == 47


# Id-level tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("meant", BUILTIN_LAYOUT_IDS)
@pytest.mark.parametrize("active", BUILTIN_LAYOUT_IDS)
def test_id_table_agrees_with_convert(layouts: LayoutSet, meant: str, active: str) -> None:
    table = layouts.id_table(meant, active)
    assert table.shape == (VOCAB_SIZE,) and table.dtype == torch.long
    assert table[PAD_ID] == PAD_ID
    assert int(table.min()) >= 0 and int(table.max()) < VOCAB_SIZE
    for index, ch in enumerate(ALPHABET, start=1):
        out = layouts.convert(ch, meant, active)
        assert table[index] == CHAR_TO_ID.get(out[:1], PAD_ID), (ch, out)
        if layouts[meant].locate(ch) is None:
            assert table[index] == index  # not typed by the meant layout: stays


@pytest.mark.parametrize(
    ("text", "meant", "active"),
    [
        ("привет мир", "russianwin", "us"),
        ("hello world", "us", "russianwin"),
        ("שלום עולם", "hebrew", "us"),
        ("Съешь же ещё", "russian", "us"),
        ("don't stop", "us", "hebrew_pc"),
        ("שלום", "hebrew", "russian"),
    ],
)
def test_id_table_on_strings(layouts: LayoutSet, text: str, meant: str, active: str) -> None:
    table = layouts.id_table(meant, active)
    ids = torch.tensor([CHAR_TO_ID[ch] for ch in text])
    expected = [CHAR_TO_ID.get(ch, PAD_ID) for ch in layouts.convert(text, meant, active)]
    assert table[ids].tolist() == expected


def test_id_tables_of_all_pairs(layouts: LayoutSet) -> None:
    tables = layouts.id_tables(["us", "russianwin"])
    assert set(tables) == {
        ("us", "us"),
        ("us", "russianwin"),
        ("russianwin", "us"),
        ("russianwin", "russianwin"),
    }
    assert tables["us", "us"].tolist() == list(range(VOCAB_SIZE))
    assert tables["russianwin", "us"][CHAR_TO_ID["п"]] == CHAR_TO_ID["g"]


def test_id_table_over_an_extended_charset() -> None:
    extra = "іїєґ"
    charset = Charset(extra)
    assert len(charset) == VOCAB_SIZE + len(extra)
    table = LayoutSet.builtin().id_table("us", "us", charset)
    assert table[:VOCAB_SIZE].tolist() == list(range(VOCAB_SIZE))
    assert table[VOCAB_SIZE:].tolist() == [PAD_ID] * len(extra)  # outside the contract: 0


# Dumps --------------------------------------------------------------------------------------------------


def _dump_of(layouts: LayoutSet, entries: dict[str, tuple[str, str]]) -> dict:
    """A dump in the app's schema: {new id: (source layout id, language)}, from built-in tables."""
    keymap: dict[str, dict[str, dict[str, str]]] = {key: {} for key in KEYS}
    for new_id, (source, _language) in entries.items():
        layout = layouts[source]
        for key in KEYS:
            levels = {"n": layout.normal.get(key), "s": layout.shift.get(key), "a": "ƒ"}
            keymap[key][new_id] = {level: out for level, out in levels.items() if out}
    return {
        "layouts": [
            {"id": i, "name": i.title(), "language": lang, "appleId": f"x.{i}"}
            for i, (_, lang) in entries.items()
        ],
        "map": keymap,
    }


def test_from_dump_adds_layouts(tmp_path: Path, layouts: LayoutSet) -> None:
    dump = _dump_of(layouts, {"ukr_test": ("russianwin", "uk"), "dvorakish": ("us", "en")})
    dump["map"]["KeyS"]["ukr_test"] = {"n": "і", "s": "І"}
    path = tmp_path / "layouts.json"
    path.write_text(json.dumps(dump, ensure_ascii=False), encoding="utf-8")

    loaded = LayoutSet.from_dump(path, layout_ids=["ukr_test"], languages=["uk"])
    assert set(BUILTIN_LAYOUT_IDS) | {"ukr_test"} == set(loaded)
    assert loaded["ukr_test"].language == "uk"
    assert loaded.convert("привіт", "ukr_test", "us") == "ghbdsn"
    assert loaded.convert("ghbdsn", "us", "ukr_test") == "привіт"
    assert "uk" in loaded.languages()

    everything = LayoutSet.from_dump(path)
    assert {"ukr_test", "dvorakish"} <= set(everything)


def test_from_dump_errors_name_the_problem(tmp_path: Path, layouts: LayoutSet) -> None:
    path = tmp_path / "layouts.json"
    path.write_text(json.dumps(_dump_of(layouts, {"ukr_test": ("russianwin", "uk")})), encoding="utf-8")
    with pytest.raises(DataError, match=r"no layout 'german'.*it has: ukr_test") as err:
        LayoutSet.from_dump(path, layout_ids=["german"])
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match=r"no layout for language 'de'.*languages are: uk") as err:
        LayoutSet.from_dump(path, languages=["de"])
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        LayoutSet.from_dump(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not readable JSON"):
        LayoutSet.from_dump(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"layouts": {}, "map": []}), encoding="utf-8")
    with pytest.raises(DataError, match="schema"):
        LayoutSet.from_dump(wrong)


def test_builtin_tables_match_the_macos_dump(layouts: LayoutSet) -> None:
    if not DUMP.is_file():
        pytest.skip(
            "../shared/reference/macos_keyboard_layouts.json not present: the built-in tables cannot be "
            "compared with macOS's dump"
        )
    dump = json.loads(DUMP.read_text(encoding="utf-8"))
    assert set(dump["map"]) == set(KEYS)
    for layout_id in BUILTIN_LAYOUT_IDS:
        layout = layouts[layout_id]
        entry = next(e for e in dump["layouts"] if e["id"] == layout_id)
        assert layout.language == entry["language"]
        for key in KEYS:
            levels = dump["map"][key].get(layout_id, {})
            assert layout.normal.get(key) == (levels.get("n") or None), (layout_id, key, "n")
            assert layout.shift.get(key) == (levels.get("s") or None), (layout_id, key, "s")


def test_builtin_layouts_load_from_the_macos_dump_identically(layouts: LayoutSet) -> None:
    if not DUMP.is_file():
        pytest.skip("../shared/reference/macos_keyboard_layouts.json not present: nothing to load")
    loaded = LayoutSet.from_dump(DUMP, layout_ids=BUILTIN_LAYOUT_IDS, base=LayoutSet([]))
    for layout_id in BUILTIN_LAYOUT_IDS:
        assert torch.equal(loaded.id_table(layout_id, "us"), layouts.id_table(layout_id, "us"))
        assert dict(loaded[layout_id].normal) == dict(layouts[layout_id].normal)
    with pytest.raises(DataError, match="no layout 'nope'"):
        LayoutSet.from_dump(DUMP, layout_ids=["nope"])
