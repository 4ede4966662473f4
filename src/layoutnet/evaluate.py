"""`python -m layoutnet.evaluate model_path=<.ckpt | .pth | .mlpackage | .mlmodel> [data_path=<csv>]`:
accuracy, per-class accuracy and confusion matrix of any model file a user holds.

Without `data_path` the model is scored on the configured generated test set. Core ML artifacts are
scored from the file itself (Core ML on macOS, layoutnet's reference executor elsewhere). A JSON report
and a confusion-matrix picture are written next to the model (or into `output_dir`); the last line
printed is `accuracy=<float>`. The scoring is `layoutnet.evaluation`.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from layoutnet.commandline import run_command
from layoutnet.config import CONF_DIR, check_output_dir
from layoutnet.evaluation import (
    MISTAKES_KEPT,
    csv_data,
    default_outputs,
    evaluate,
    generated_test_data,
    realtext_section,
)
from layoutnet.modelfile import open_model
from layoutnet.quality import THRESHOLD_SPLIT
from layoutnet.reporting.console import (
    display_path,
    format_share,
    print_evaluation,
    print_quality,
    print_title,
)
from layoutnet.reporting.pictures import save_confusion_matrix, save_tradeoff_curve
from layoutnet.reporting.record import record
from layoutnet.reporting.runreport import EVALUATION_SECTIONS, versions


def run_evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    console = Console(highlight=False)
    scorer = open_model(cfg.get("model_path"), cfg.get("legacy"))
    if cfg.get("output_dir"):
        check_output_dir(cfg.output_dir)
    model_path = Path(scorer.source)
    data = csv_data(cfg.data_path) if cfg.get("data_path") else generated_test_data(cfg, model_path)
    print_title(console, f"evaluation of {display_path(scorer.source)}")
    console.print(
        f"model: {escape(scorer.source)} ({escape(scorer.kind)}, scored by {escape(scorer.backend)})",
        soft_wrap=True,
    )
    data_text = data.description.get("path") or data.description["source"]
    origin = f" ({data.description['config_from']})" if "config_from" in data.description else ""
    console.print(f"data: {escape(str(data_text) + origin)}, {len(data.labels):,} rows", soft_wrap=True)
    result = evaluate(scorer, data, int(cfg.get("mistakes", MISTAKES_KEPT)))
    print_evaluation(result, console)
    data_name = "synthetic" if data.texts is None else Path(str(data_text)).name
    if len(data_name) > 16:
        data_name = data_name[:15] + "…"
    sets = {data_name: result["quality"]}
    realtext = realtext_section(scorer) if cfg.get("realtext", True) else None
    if realtext is not None:
        sets.update({name: summary for name, summary in realtext["splits"].items()})
    print_quality(sets, console)
    if realtext is not None:
        chosen = realtext["correction_threshold"]
        console.print(
            f"correction threshold {chosen['value']:.4f} (harm {format_share(chosen['harmful'])}, fixed "
            f"{format_share(chosen['fixed'])} on real-text {THRESHOLD_SPLIT})"
        )
    json_path, png_path = default_outputs(model_path, cfg.get("output_dir"))
    curve_path = json_path.with_name(json_path.name.replace(".eval.json", ".eval_corrections.png"))
    save_confusion_matrix(
        result["confusion_matrix"],
        png_path,
        title=f"{model_path.name} on {Path(str(data_text)).name}: accuracy {result['accuracy']:.4f}",
    )
    save_tradeoff_curve(
        {name: summary for name, summary in sets.items() if name != "ambiguous"},
        curve_path,
        title=f"{model_path.name}: harmful corrections vs fixes by threshold",
    )
    report = {
        "command": "evaluate",
        "model": scorer.describe(),
        "data": data.description,
        **result,
        "realtext": realtext,
        "correction_threshold": None if realtext is None else realtext["correction_threshold"]["value"],
        "paths": {
            "report": str(json_path),
            "confusion_matrix": str(png_path),
            "corrections": str(curve_path),
        },
        "timings": {"total_seconds": round(time.perf_counter() - started, 3)},
        "versions": versions(),
    }
    record(
        json_path,
        report,
        console=console,
        files={"report": json_path, "confusion matrix": png_path, "corrections curve": curve_path},
        last_line=f"accuracy={result['accuracy']:.6f}",
        schema=EVALUATION_SECTIONS,
        replace=True,
    )
    return report


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_command(cfg, run_evaluate)


if __name__ == "__main__":
    main()
