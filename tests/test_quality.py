"""Quality metrics on hand-made probability arrays, with exact expected numbers: accuracy by length bucket,
harmful-correction and fix shares at a threshold, the threshold for a harmful budget, the curve picture,
and the app threshold of a network on the real-text set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layoutnet import quality
from layoutnet.contract import CLASS_TO_ID, NUM_CLASSES
from layoutnet.reporting import pictures

RU, EN, HE = CLASS_TO_ID["ru"], CLASS_TO_ID["en"], CLASS_TO_ID["he"]
RU_EN, EN_RU, HE_EN = CLASS_TO_ID["ru_from_en"], CLASS_TO_ID["en_from_ru"], CLASS_TO_ID["he_from_en"]


def probs_of(rows: list[tuple[int, float]]) -> np.ndarray:
    """One probability row per (top class, top probability); the rest spread evenly."""
    out = np.zeros((len(rows), NUM_CLASSES))
    for i, (top, p) in enumerate(rows):
        out[i, :] = (1 - p) / (NUM_CLASSES - 1)
        out[i, top] = p
    return out


# 10 rows: 4 correctly typed (labels ru, en, he, en), 6 wrong-layout.
LABELS = np.array([RU, EN, HE, EN, RU_EN, RU_EN, EN_RU, EN_RU, HE_EN, HE_EN])
PROBS = probs_of(
    [
        (RU, 0.9),  # correct, kept
        (EN_RU, 0.8),  # correct text rewritten with p 0.8 (harmful)
        (HE, 0.7),  # correct, kept
        (RU_EN, 0.5),  # correct text rewritten with p 0.5 (harmful)
        (RU_EN, 0.95),  # fixed
        (RU_EN, 0.6),  # fixed
        (EN_RU, 0.85),  # fixed
        (EN, 0.99),  # left alone (predicted correct text)
        (RU_EN, 0.9),  # rewritten into the wrong class
        (HE_EN, 0.4),  # fixed
    ]
)


def test_harmful_fixed_and_miscorrected_shares_at_thresholds():
    decisions = quality.Decisions.of(PROBS, LABELS)
    assert decisions.harmful(0.0) == 2 / 4
    assert decisions.harmful(0.5) == 2 / 4  # p >= t counts
    assert decisions.harmful(0.6) == 1 / 4
    assert decisions.harmful(0.81) == 0.0
    assert decisions.fixed(0.0) == 4 / 6
    assert decisions.fixed(0.6) == 3 / 6
    assert decisions.fixed(0.9) == 1 / 6
    assert decisions.miscorrected(0.0) == 1 / 6
    assert decisions.miscorrected(0.91) == 0.0


def test_threshold_for_a_budget_is_the_lowest_that_keeps_harm_within_it():
    # No harm allowed: both harmful rewrites (0.8, 0.5) must fall below; the smallest top probability above
    # 0.8 is 0.85, where 2 of 6 wrong rows are fixed (0.95, 0.85).
    found = quality.threshold_for(PROBS, LABELS, 0.0)
    assert found == {"threshold": 0.85, "harmful": 0.0, "fixed": 2 / 6, "miscorrected": 1 / 6}
    # 25% allowed (1 of 4): only the 0.5 rewrite must go; the next top probability above 0.5 is 0.6.
    found = quality.threshold_for(PROBS, LABELS, 0.25)
    assert found == {"threshold": 0.6, "harmful": 0.25, "fixed": 3 / 6, "miscorrected": 1 / 6}
    # 50% allowed: no threshold needed.
    assert quality.threshold_for(PROBS, LABELS, 0.5)["threshold"] == 0.0


def test_threshold_above_every_row_fixes_nothing():
    labels = np.array([EN, RU_EN])
    probs = probs_of([(RU_EN, 0.9), (RU_EN, 0.7)])  # the harmful rewrite is the most confident row
    found = quality.threshold_for(probs, labels, 0.0)
    assert found["threshold"] > 0.9 and found["harmful"] == 0.0 and found["fixed"] == 0.0


def test_no_correct_rows_means_no_threshold():
    assert quality.threshold_for(probs_of([(RU_EN, 0.9)]), np.array([RU_EN]), 0.001) is None
    assert quality.Decisions.of(probs_of([(RU_EN, 0.9)]), np.array([RU_EN])).harmful(0.5) is None


def test_length_buckets_count_characters():
    texts = ["a", "ab", "abc", "abcd", "abcde", "abcdefgh", "abcdefghi", "a b c d e f g h i j"]
    labels = np.zeros(len(texts), dtype=np.int64)
    predictions = np.array([0, 1, 0, 0, 1, 1, 0, 1])
    buckets = quality.length_bucket_accuracy(texts, predictions, labels)
    assert buckets == {
        "1-2": {"rows": 2, "accuracy": 0.5},
        "3-4": {"rows": 2, "accuracy": 1.0},
        "5-8": {"rows": 2, "accuracy": 0.0},
        "9+": {"rows": 2, "accuracy": 0.5},
    }
    assert quality.length_bucket_accuracy(["abc"], np.array([0]), np.array([0]))["9+"] == {
        "rows": 0,
        "accuracy": None,
    }


def test_summary_and_curve():
    texts = ["x"] * 4 + ["xxxxx"] * 6
    summary = quality.quality_summary(texts, PROBS, LABELS)
    assert summary["rows"] == 10 and summary["accuracy"] == 6 / 10
    assert summary["correct_rows"] == 4 and summary["wrong_layout_rows"] == 6
    assert summary["harmful"] == 0.5 and summary["fixed"] == 4 / 6
    assert summary["length_buckets"]["1-2"] == {"rows": 4, "accuracy": 0.5}
    assert summary["thresholds"]["0.1%"]["threshold"] == 0.85
    assert summary["thresholds"]["1%"]["threshold"] == 0.85
    curve = summary["curve"]
    assert len(curve["threshold"]) == 101 and curve["threshold"][50] == 0.5
    assert curve["harmful"][50] == 0.5 and curve["harmful"][60] == 0.25 and curve["harmful"][81] == 0.0
    assert curve["fixed"][0] == 4 / 6 and curve["fixed"][100] == 0.0


def test_expected_calibration_error_of_a_hand_computed_case():
    # Top probabilities 0.95 (right), 0.95 (wrong), 0.5 (right), 0.52 (right); 15 bins of width 1/15.
    # 0.95 lies in bin 14 (14/15, 1]: accuracy 1/2, mean 0.95, gap 0.45 on 2 of 4 rows.
    # 0.5 and 0.52 lie in bin 7 (7/15, 8/15]: accuracy 1, mean 0.51, gap 0.49 on 2 of 4 rows.
    labels = np.array([RU, EN, HE, RU])
    probs = probs_of([(RU, 0.95), (RU, 0.95), (HE, 0.5), (RU, 0.52)])
    assert quality.expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.49)
    table = quality.reliability(probs, labels)
    assert table["bins"] == 15 and sum(table["rows"]) == 4
    assert table["rows"][14] == 2 and table["rows"][7] == 2
    assert table["accuracy"][14] == 0.5 and table["confidence"][7] == pytest.approx(0.51)
    assert table["accuracy"][0] is None  # an empty bin
    # Two bins: all four rows in (0.5, 1] but 0.5 itself, which is in [0, 0.5].
    assert quality.expected_calibration_error(probs, labels, bins=2) == pytest.approx(
        0.25 * abs(1 - 0.5) + 0.75 * abs(2 / 3 - (0.95 + 0.95 + 0.52) / 3)
    )
    assert quality.expected_calibration_error(np.zeros((0, 9)), np.zeros(0)) is None


def test_a_calibrated_model_has_a_small_error_and_an_overconfident_one_a_large_one():
    rng = np.random.default_rng(0)
    n = 20000
    p = rng.uniform(0.2, 1.0, n)
    right = rng.uniform(size=n) < p  # right with exactly the stated probability
    labels = np.where(right, RU, EN)
    probs = probs_of([(RU, float(x)) for x in p])
    assert quality.expected_calibration_error(probs, labels) < 0.02
    sure = probs_of([(RU, 0.999)] * n)
    assert quality.expected_calibration_error(sure, labels) == pytest.approx(0.999 - right.mean(), abs=1e-9)


def test_figures_at_a_threshold_overall_and_by_group():
    found = quality.at_threshold(PROBS, LABELS, 0.6, groups=["a"] * 4 + ["b"] * 6)
    assert found["threshold"] == 0.6
    assert found["fixed"] == 3 / 6 and found["rewritten"] == 1 / 4 and found["kept"] == 3 / 4
    assert found["miscorrected"] == 1 / 6
    assert found["groups"]["a"]["correct_rows"] == 4 and found["groups"]["a"]["fixed"] is None
    assert found["groups"]["b"]["kept"] is None and found["groups"]["b"]["fixed"] == 3 / 6
    # A row whose group is unknown is reported as `other`.
    assert list(quality.at_threshold(PROBS, LABELS, 0.6, groups=[None] * 10)["groups"]) == ["other"]


@pytest.mark.parametrize(
    ("token", "category"),
    [
        ("https://docs.djangoproject.com/en/5.2/", "url"),
        ("wk@gnupg.org", "email"),
        ("tqdm==4.70.1", "pin"),
        ("asgiref>=3.8.1", "pin"),
        ("2022-10-10", "date"),
        ("10:02:05", "time"),
        ("v2.5.1", "version"),
        ("5.2.9", "version"),
        ("1:7.5.0-1", "version"),
        ("0c38b5d15c9d", "hex"),
        ("#417690", "hex"),
        ("10px", "unit"),
        ("5MB", "unit"),
        ("100ms", "unit"),
        ("/usr/share/hunspell/en_US.aff", "path"),
        ("django/contrib/admin/options.py", "path"),
        ("who/which/that", None),
        ("self.lock", "identifier"),
        ("setup.py", "path"),
        ("get_user_model", "identifier"),
        ("getElementById", "identifier"),
        ("django.db.models", "identifier"),
        ("deadbeef", None),  # a word made of hex letters
        ("1234567", None),  # a number
        ("and/or", None),
        ("e.g", None),
        ("hello", None),
        ("ghbdtn", None),
        ("v1" + "ab1" * 40 + "/", None),  # would take 2^40 steps with a pattern that backtracks
    ],
)
def test_technical_tokens_fall_in_their_category(token, category):
    assert quality.technical_category(token) == category


def test_summary_reports_calibration_and_the_figures_at_a_threshold():
    texts = ["x"] * 4 + ["xxxxx"] * 6
    plain = quality.quality_summary(texts, PROBS, LABELS)
    assert "at_threshold" not in plain
    assert plain["calibration"]["ece"] == quality.expected_calibration_error(PROBS, LABELS)
    assert plain["calibration"]["bins"] == quality.CALIBRATION_BINS
    at = quality.quality_summary(texts, PROBS, LABELS, threshold=0.6, group_of=quality.letter_count)
    assert at["at_threshold"]["fixed"] == 3 / 6
    assert set(at["at_threshold"]["groups"]) == {"1", "5"}


def test_tradeoff_curve_png(tmp_path):
    summary = quality.quality_summary(["x"] * 10, PROBS, LABELS)
    path = pictures.save_tradeoff_curve({"words": summary, "short": summary}, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class Constant(torch.nn.Module):
    """A network that always answers the same logits."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.register_buffer("row", torch.tensor(logits))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.row.expand(ids.shape[0], -1)


def test_correction_threshold_of_a_network_on_the_real_text_set():
    # Always "en" with p ~ 0.9: never rewrites, so no threshold is needed.
    assert quality.correction_threshold(Constant([5.0 if i == EN else 3.0 for i in range(9)])) == 0.0
    # Always ru_from_en: every correct row is rewritten with the same p, so the threshold must exceed it.
    logits = [3.0 if i == RU_EN else 1.0 for i in range(9)]
    p = float(torch.softmax(torch.tensor(logits), 0)[RU_EN])
    assert quality.correction_threshold(Constant(logits)) > p


def test_evaluate_realtext_reports_every_split():
    report = quality.evaluate_realtext(Constant([5.0 if i == EN else 3.0 for i in range(9)]))
    assert list(report) == list(quality.ALL_SPLITS)
    words = report["words"]
    assert words["accuracy"] == pytest.approx(1 / 9)  # balanced: only the en rows are right
    assert words["harmful"] == 0.0 and words["fixed"] == 0.0
    # Never rewrites, so no threshold is needed: at t = 0 every correct row is kept, nothing is fixed.
    technical = report["technical"]["at_threshold"]
    assert technical["threshold"] == 0.0 and technical["rewritten"] == 0.0 and technical["fixed"] is None
    assert set(technical["groups"]) <= {name for name, _ in quality.TECHNICAL_CATEGORIES}
    assert set(report["frequent"]["at_threshold"]["groups"]) <= {"1", "2", "3"}
    # Always en with p ~ 0.48: every technical row (all en) is right, so the error is 1 - p.
    p = float(torch.softmax(torch.tensor([5.0 if i == EN else 3.0 for i in range(9)]), 0)[EN])
    assert report["technical"]["calibration"]["ece"] == pytest.approx(1 - p)


def test_figures_at_a_given_threshold():
    logits = [3.0 if i == RU_EN else 1.0 for i in range(9)]  # always ru_from_en with the same p
    p = float(torch.softmax(torch.tensor(logits), 0)[RU_EN])
    below = quality.evaluate_realtext(Constant(logits), ["technical"], threshold=p + 1e-6)
    assert below["technical"]["at_threshold"]["rewritten"] == 0.0
    at = quality.evaluate_realtext(Constant(logits), ["technical"], threshold=p - 1e-6)
    assert at["technical"]["at_threshold"]["rewritten"] == 1.0
    assert quality.evaluate_realtext(Constant(logits), ["technical"])["technical"].get("at_threshold") is None


# evaluate and predict end to end ----------------------------------------------------------------------


def test_evaluate_reports_the_real_text_set_by_default_in_80_columns(tmp_path, capsys):
    import json

    from layoutnet import evaluate as ev

    from .test_evaluate import compose_eval, save_checkpoint, write_csv

    ckpt, net = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "mine.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={ckpt}", f"data_path={data}"]))
    out = capsys.readouterr().out
    lines = out.splitlines()
    tables = [line for line in lines if str(tmp_path) not in line]  # paths are printed whole
    assert all(len(line) <= 80 for line in tables), max(tables, key=len)
    assert "ru_fro…" not in out and "he_fro…" not in out and "…" not in out
    assert "ru←en" in out and "accuracy by text length" in out and "t@0.1%" in out
    saved = json.loads((tmp_path / "best.eval.json").read_text(encoding="utf-8"))
    splits = saved["realtext"]["splits"]
    assert list(splits) == list(quality.ALL_SPLITS)
    assert set(splits["words"]["length_buckets"]) == {"1-2", "3-4", "5-8", "9+"}
    # Every set, the CSV's own included, at the threshold chosen on words, with its calibration error.
    applied = saved["realtext"]["applied_threshold"]
    assert applied == {"value": saved["correction_threshold"], "from": "chosen on words"}
    for summary in [saved["quality"], *splits.values()]:
        assert summary["at_threshold"]["threshold"] == saved["correction_threshold"]
        assert 0.0 <= summary["calibration"]["ece"] <= 1.0
    assert "at the correction threshold" in out and "ECE" in out
    assert "technical at t=" in out and "frequent at t=" in out
    assert (tmp_path / "best.eval_reliability.png").stat().st_size > 1000
    # The shipped typed,expected lines, token by token.
    pairs = saved["pairs"]
    assert pairs["path"].endswith("pairs.csv") and pairs["threshold"] == saved["correction_threshold"]
    assert pairs["tokens"] == pairs["wrong_layout_tokens"] + pairs["correct_tokens"]
    assert sum(pairs["counts"].values()) == pairs["tokens"]
    assert "typed text token by token" in out
    assert saved["correction_threshold"] == quality.correction_threshold(net)
    assert saved["realtext"]["correction_threshold"]["value"] == saved["correction_threshold"]
    assert set(saved["quality"]["thresholds"]) == {"0.1%", "1%"}  # the CSV's own figures
    assert report["paths"]["corrections"].endswith("best.eval_corrections.png")
    assert (tmp_path / "best.eval_corrections.png").stat().st_size > 1000
    # Lines that carry the figures name each real-text split.
    for split in quality.REALTEXT_SPLITS:
        assert any(line.strip().startswith(split) for line in lines)


def test_evaluate_without_the_real_text_set(tmp_path):
    from layoutnet import evaluate as ev

    from .test_evaluate import compose_eval, save_checkpoint, write_csv

    ckpt, _ = save_checkpoint(tmp_path / "best.ckpt")
    data = write_csv(tmp_path / "mine.csv")
    report = ev.run_evaluate(compose_eval([f"model_path={ckpt}", f"data_path={data}", "realtext=false"]))
    assert report["realtext"] is None and report["correction_threshold"] is None


class Fixed:
    """A scorer that answers ru_from_en with probability `p` for every text."""

    source = "fixed.ckpt"

    def __init__(self, p: float):
        row = np.full(NUM_CLASSES, (1 - p) / (NUM_CLASSES - 1))
        row[RU_EN] = p
        self.logits_row = np.log(row).astype(np.float32)

    def logits(self, ids):
        return np.tile(self.logits_row, (len(ids), 1))


def test_predict_prints_no_change_below_the_threshold():
    from layoutnet.correction import DEFAULT_LAYOUTS, Corrector
    from layoutnet.layouts import LayoutSet
    from layoutnet.predict import predict_texts

    corrector = Corrector(LayoutSet.builtin(), DEFAULT_LAYOUTS)
    below = predict_texts(Fixed(0.7), corrector, ["ghbdtn"], top_k=1, threshold=0.8)[0]
    assert below.line() == "ghbdtn -> no change (below threshold 0.800) | ru_from_en 0.700"
    assert '"corrected": "ghbdtn"' in below.as_json() and '"changed": false' in below.as_json()
    above = predict_texts(Fixed(0.9), corrector, ["ghbdtn"], top_k=1, threshold=0.8)[0]
    assert above.line() == "ghbdtn -> привет | ru_from_en 0.900"
    assert '"changed": true' in above.as_json()
    plain = predict_texts(Fixed(0.7), corrector, ["ghbdtn"], top_k=1)[0]
    assert plain.line() == "ghbdtn -> привет | ru_from_en 0.700" and "threshold" not in plain.as_json()


def test_predict_threshold_comes_from_the_command_line_metadata_or_the_eval_report(tmp_path):
    import json

    from omegaconf import OmegaConf

    from layoutnet.errors import ConfigError
    from layoutnet.predict import correction_threshold_for

    model = tmp_path / "best.ckpt"
    scorer = Fixed(0.5)
    scorer.source = str(model)
    cfg = OmegaConf.create({"threshold": None})
    assert correction_threshold_for(cfg, scorer) is None
    (tmp_path / "best.eval.json").write_text(json.dumps({"correction_threshold": 0.77}))
    assert correction_threshold_for(cfg, scorer) == 0.77
    scorer.metadata = {"correction_threshold": "0.91"}  # an artifact's own metadata wins
    assert correction_threshold_for(cfg, scorer) == 0.91
    assert correction_threshold_for(OmegaConf.create({"threshold": 0.5}), scorer) == 0.5
    assert correction_threshold_for(OmegaConf.create({"threshold": "none"}), scorer) is None
    with pytest.raises(ConfigError, match="threshold"):
        correction_threshold_for(OmegaConf.create({"threshold": 1.5}), scorer)
    scorer.metadata = {"correction_threshold": "high"}
    with pytest.raises(ConfigError, match="between 0 and 1"):
        correction_threshold_for(cfg, scorer)


def test_predict_command_uses_the_threshold(tmp_path):
    from .conftest import run_module
    from .test_evaluate import save_checkpoint

    ckpt, _ = save_checkpoint(tmp_path / "best.ckpt")
    done = run_module("layoutnet.predict", [f"model_path={ckpt}", "text=ghbdtn", "threshold=1.0", "top_k=1"])
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    # A random network: either it keeps the text (correct class) or the threshold 1.0 holds it back.
    assert line.startswith("ghbdtn -> ghbdtn |") or line.startswith(
        "ghbdtn -> no change (below threshold 1.000)"
    )
