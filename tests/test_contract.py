import torch

from layoutnet import contract
from layoutnet.contract import ALPHABET, CLASSES, SEQ_LEN, decode, encode, encode_batch


def test_alphabet_is_pinned_byte_for_byte():
    ascii_part = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890 -=[]\\;',./`!@#$%^&*()_+{}|:\"<>?~"
    )
    russian = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    hebrew = "אבגדהוזחטיכלמנסעפצקרשתךםןףץ"
    assert ascii_part + russian + hebrew == ALPHABET
    assert len(ALPHABET) == 188 and contract.VOCAB_SIZE == 189
    assert encode("a")[0] == 1 and encode("~")[0] == 95 and encode("а")[0] == 96 and encode("ץ")[0] == 188


def test_class_order_is_pinned():
    assert CLASSES == (
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
    assert contract.INPUT_NAME == "input_ids" and contract.OUTPUT_NAME == "classLogits"


def test_encode_pads_right_and_truncates_to_first_20():
    assert encode("ghbdtn")[:7] == [7, 8, 2, 4, 20, 14, 0]
    assert encode("") == [0] * SEQ_LEN
    long = "abcdefghijklmnopqrstuvwxyz"
    assert decode(encode(long)) == long[:SEQ_LEN]


def test_encode_never_raises_on_odd_strings():
    odd = [
        "😀" * 50,
        "e\u0301\u0302",
        "\u200fשלום\u200e",
        "\ud800\udfff\ud83d",
        "x" * 10_000,
        "\x00\n\t",
        "Ǆ",
    ]
    for text in odd:
        ids = encode(text)
        assert len(ids) == SEQ_LEN and all(0 <= i <= 188 for i in ids)
    assert encode("😀a")[:2] == [0, 1]


def test_no_normalisation_case_is_kept():
    assert encode("Привет") != encode("привет")


def test_encode_batch_shape_and_dtype():
    batch = encode_batch(["a", "привет", ""])
    assert batch.shape == (3, SEQ_LEN) and batch.dtype == torch.long
    assert encode_batch([]).shape == (0, SEQ_LEN)


def test_class_name_round_trip():
    assert contract.class_name("ru", "en") == "ru_from_en"
    assert contract.class_name("he", "he") == "he"
    assert contract.split_class("en_from_he") == ("en", "he")
    assert contract.split_class("ru") == ("ru", "ru")
