"""Typed text scored as the app applies the model: each whitespace token classified alone, corrected at the
correction threshold with the same re-typing `predict` uses, and compared with the token the user meant."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layoutnet.contract import CLASS_TO_ID, NUM_CLASSES, decode
from layoutnet.correction import DEFAULT_LAYOUTS, Corrector
from layoutnet.data import csvfile
from layoutnet.errors import ConfigError, DataError
from layoutnet.evaluation import score_pairs
from layoutnet.layouts import LayoutSet


class ByText:
    """A scorer that answers a fixed (class, probability) per token text; `en` 0.9 for anything else."""

    source = "by-text.ckpt"

    def __init__(self, answers: dict[str, tuple[str, float]]):
        self.answers = answers

    def logits(self, ids):
        out = np.zeros((len(ids), NUM_CLASSES), dtype=np.float32)
        for i, row in enumerate(ids):
            name, p = self.answers.get(decode(row), ("en", 0.9))
            probs = np.full(NUM_CLASSES, (1 - p) / (NUM_CLASSES - 1))
            probs[CLASS_TO_ID[name]] = p
            out[i] = np.log(probs)
        return out


def write_pairs(path, rows, header=True):
    lines = (["typed,expected"] if header else []) + [f"{typed},{expected}" for typed, expected in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tokens_are_fixed_missed_kept_and_harmed_at_the_threshold(tmp_path):
    pairs = csvfile.read_pairs(
        write_pairs(
            tmp_path / "pairs.csv",
            [("ghbdtn vbh hello", "привет мир hello"), ("world again", "world again")],
        )
    )
    scorer = ByText(
        {
            "ghbdtn": ("ru_from_en", 0.95),  # fixed: re-typed into привет
            "vbh": ("ru_from_en", 0.6),  # missed: below the threshold
            "hello": ("ru_from_en", 0.99),  # harmed: correct text rewritten
            "again": ("ru_from_en", 0.5),  # kept: below the threshold
        }
    )
    corrector = Corrector(LayoutSet.builtin(), DEFAULT_LAYOUTS)
    result = score_pairs(scorer, corrector, pairs, threshold=0.9, worst=10)
    assert result["counts"] == {"fixed": 1, "missed": 1, "miscorrected": 0, "kept": 2, "harmed": 1}
    assert result["tokens"] == 5 and result["wrong_layout_tokens"] == 2 and result["correct_tokens"] == 3
    assert result["fixed"] == 0.5 and result["kept"] == pytest.approx(2 / 3)
    assert result["lines"] == 2 and result["lines_right"] == 1
    # The worst: the most confident wrong token first.
    assert [(w["typed"], w["outcome"], w["output"]) for w in result["worst"]] == [
        ("hello", "harmed", "руддщ"),
        ("vbh", "missed", "vbh"),
    ]
    assert result["worst"][0]["line"] == 2 and result["worst"][0]["class"] == "ru_from_en"
    # Without a threshold every wrong-layout prediction is applied: vbh is fixed too.
    assert score_pairs(scorer, corrector, pairs, threshold=None, worst=10)["counts"]["fixed"] == 2


def test_a_line_whose_token_counts_differ_is_refused_with_its_line(tmp_path):
    path = write_pairs(tmp_path / "pairs.csv", [("ghbdtn vbh", "привет мир"), ("ghbdtnvbh", "привет мир")])
    with pytest.raises(DataError, match=r"pairs\.csv, line 3: 1 token\(s\) typed but 2 expected"):
        csvfile.read_pairs(path)
    no_header = csvfile.read_pairs(write_pairs(tmp_path / "plain.csv", [("a b", "c d")], header=False))
    assert no_header.typed == ["a b"] and no_header.lines == [1]
    (tmp_path / "half.csv").write_text("typed,meant\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="has no column 'expected'"):
        csvfile.read_pairs(tmp_path / "half.csv")


def test_evaluate_scores_a_users_pairs_file(tmp_path, capsys):
    from layoutnet import evaluate as ev

    from .test_evaluate import compose_eval, save_checkpoint, write_csv

    ckpt, _ = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "mine.csv")
    pairs = write_pairs(tmp_path / "typed.csv", [("ghbdtn vbh", "привет мир"), ("hello", "hello")])
    report = ev.run_evaluate(compose_eval([f"model_path={ckpt}", f"data_path={data}", f"pairs_path={pairs}"]))
    out = capsys.readouterr().out
    assert report["pairs"]["path"] == str(pairs) and report["pairs"]["tokens"] == 3
    assert report["pairs"]["wrong_layout_tokens"] == 2 and report["pairs"]["correct_tokens"] == 1
    assert "typed text token by token at t=" in out and "typed.csv, 2 lines, 3 tokens" in out
    assert "lines all right" in out
    saved = json.loads((tmp_path / "best.eval.json").read_text(encoding="utf-8"))
    assert saved["pairs"]["counts"] == report["pairs"]["counts"]


def test_pairs_without_a_threshold_are_refused(tmp_path):
    from layoutnet import evaluate as ev

    from .test_evaluate import compose_eval, save_checkpoint, write_csv

    ckpt, _ = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "mine.csv")
    pairs = write_pairs(tmp_path / "typed.csv", [("ghbdtn", "привет")])
    cfg = compose_eval([f"model_path={ckpt}", f"data_path={data}", f"pairs_path={pairs}", "realtext=false"])
    with pytest.raises(ConfigError, match=r"pairs_path.*correction threshold"):
        ev.run_evaluate(cfg)
