"""Per-run pictures: which curves training_curves.png draws, and on which scale."""

from __future__ import annotations

import csv
from pathlib import Path

from layoutnet.reporting import pictures


def _metrics_csv(run_dir: Path, rows: list[dict]) -> None:
    path = run_dir / "csv" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    columns = sorted({key for row in rows for key in row})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _training_rows(second_group_lr: float | None) -> list[dict]:
    rows = []
    for step in range(0, 200, 5):
        lr = 3e-3 * min(1.0, (step + 1) / 50)
        rows.append({"step": step, "lr-AdamW/pg1": lr, "lr-AdamW/pg2": lr * (second_group_lr or 1.0)})
        rows.append({"step": step, "train/loss_step": 2.2 if step == 0 else 0.4 / (1 + step / 50)})
    for epoch, step in enumerate((99, 199)):
        rows.append(
            {"step": step, "epoch": epoch, "val/loss": 0.3 - 0.1 * epoch, "val/acc": 0.9 + 0.02 * epoch}
        )
        rows.append({"step": step, "epoch": epoch, "train/acc": 0.88 + 0.03 * epoch})
    return rows


def test_identical_learning_rates_are_one_line_and_loss_is_log(tmp_path):
    _metrics_csv(tmp_path, _training_rows(None))
    loss, accuracy, rate = pictures.curve_panels(pictures.read_metrics_csv(tmp_path))
    assert [label for label, _, _ in rate.lines] == ["AdamW, parameter groups 1 and 2"]
    # the first step's loss (2.2, over five times the rest) does not flatten the curve: log axis
    assert loss.scale == "log" and {label for label, _, _ in loss.lines} == {"train/loss_step", "val/loss"}
    assert accuracy.scale == "linear" and {label for label, _, _ in accuracy.lines} == {
        "train/acc",
        "val/acc",
    }
    path = pictures.save_training_curves(tmp_path, tmp_path / "plots" / "training_curves.png")
    assert path.stat().st_size > 5000


def test_distinct_schedules_keep_their_own_lines(tmp_path):
    _metrics_csv(tmp_path, _training_rows(0.1))
    rate = pictures.curve_panels(pictures.read_metrics_csv(tmp_path))[2]
    assert [label for label, _, _ in rate.lines] == ["AdamW, parameter group 1", "AdamW, parameter group 2"]


def test_a_loss_that_is_not_positive_stays_on_a_linear_axis():
    series = {"train/loss_step": [(0.0, 1.0), (1.0, 0.0)], "val/loss": [(1.0, -0.5)]}
    assert pictures.curve_panels(series)[0].scale == "linear"
    assert pictures.save_training_curves(Path("/nonexistent-run"), Path("/nonexistent-run/x.png")) is None


def test_a_loss_within_one_decade_gets_several_plain_ticks():
    # a smoke run's loss falls from 2.7 to 1.1: ticks 1.2 … 2.5, not 1.5 / 2 / 2.5 alone
    ticks = pictures.log_ticks(1.1, 2.7)
    assert len(ticks) >= 5 and min(ticks) <= 1.2 and all(1.1 <= t <= 2.7 for t in ticks)
    assert pictures.log_ticks(3e-4, 1e-2, most=5) == [0.0005, 0.001, 0.002, 0.005, 0.01]


def test_training_and_validation_keep_one_colour_in_every_panel(tmp_path):
    _metrics_csv(tmp_path, _training_rows(None))
    loss, accuracy, rate = pictures.curve_panels(pictures.read_metrics_csv(tmp_path))
    colors = {
        label: style["color"]
        for panel in (loss, accuracy)
        for (label, _, _), style in zip(panel.lines, panel.styles, strict=True)
    }
    assert colors["train/loss_step"] == colors["train/acc"] == pictures.TRAIN_COLOR
    assert colors["val/loss"] == colors["val/acc"] == pictures.VAL_COLOR
    assert {style["color"] for style in rate.styles}.isdisjoint({pictures.TRAIN_COLOR, pictures.VAL_COLOR})


def test_corrections_picture_names_thresholds_as_the_app_applies_them():
    assert pictures.threshold_label(0.0) == "any confidence"  # not "t=0.000"
    assert pictures.threshold_label(0.85114) == "p ≥ 0.85"
