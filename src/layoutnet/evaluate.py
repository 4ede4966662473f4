"""`python -m layoutnet.evaluate model_path=<.ckpt | .pth | .mlpackage | .mlmodel> [data_path=<csv>]
[pairs_path=<csv of typed,expected>]`: accuracy, per-class accuracy and confusion matrix of any model file a
user holds, its figures on the real-text set at its correction threshold, its calibration, and typed text
scored token by token as the app applies the model.

Without `data_path` the model is scored on the configured generated test set. Core ML artifacts are
scored from the file itself (Core ML on macOS, layoutnet's reference executor elsewhere). A JSON report
and pictures are written next to the model (or into `output_dir`); the last line printed is
`accuracy=<float>`. The scoring is `layoutnet.evaluation`.
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
from layoutnet.correction import build_corrector
from layoutnet.data import csvfile
from layoutnet.errors import ConfigError
from layoutnet.evaluation import (
    MISTAKES_KEPT,
    csv_data,
    default_outputs,
    evaluate,
    generated_test_data,
    metadata_threshold,
    realtext_section,
    score_pairs,
    shipped_pairs_path,
)
from layoutnet.modelfile import open_model
from layoutnet.quality import AMBIGUOUS, CALIBRATION_BINS, THRESHOLD_SPLIT, stored_threshold
from layoutnet.reporting.console import (
    display_path,
    format_share,
    print_evaluation,
    print_pairs,
    print_quality,
    print_threshold_figures,
    print_title,
)
from layoutnet.reporting.pictures import save_confusion_matrix, save_reliability_diagrams, save_tradeoff_curve
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
    pairs_path = cfg.get("pairs_path") or (shipped_pairs_path() if cfg.get("realtext", True) else None)
    pairs = csvfile.read_pairs(pairs_path) if pairs_path else None
    corrector = build_corrector(cfg) if pairs is not None else None
    print_title(console, f"evaluation of {display_path(scorer.source)}")
    console.print(
        f"model: {escape(scorer.source)} ({escape(scorer.kind)}, scored by {escape(scorer.backend)})",
        soft_wrap=True,
    )
    data_text = data.description.get("path") or data.description["source"]
    origin = f" ({data.description['config_from']})" if "config_from" in data.description else ""
    console.print(f"data: {escape(str(data_text) + origin)}, {len(data.labels):,} rows", soft_wrap=True)
    own = metadata_threshold(scorer)
    realtext = realtext_section(scorer, own) if cfg.get("realtext", True) else None
    if realtext is not None:
        threshold: float | None = realtext["applied_threshold"]["value"]
        threshold_from = realtext["applied_threshold"]["from"]
    else:
        stored = stored_threshold(model_path, getattr(scorer, "metadata", None))
        threshold, threshold_from = (None, None) if stored is None else stored
    if pairs is not None and threshold is None:
        raise ConfigError(
            "pairs_path",
            cfg.get("pairs_path"),
            "needs the model's correction threshold: keep realtext=true (it is chosen on the real-text "
            "words) or give a model whose metadata or <stem>.eval.json has one",
        )
    result = evaluate(scorer, data, int(cfg.get("mistakes", MISTAKES_KEPT)), threshold)
    print_evaluation(result, console)
    data_name = "synthetic" if data.texts is None else Path(str(data_text)).name
    if len(data_name) > 16:
        data_name = data_name[:15] + "…"
    sets = {data_name: result["quality"]}
    if realtext is not None:
        sets.update({name: summary for name, summary in realtext["splits"].items()})
    print_quality(sets, console)
    if realtext is not None:
        chosen = realtext["correction_threshold"]
        console.print(
            f"correction threshold {chosen['value']:.4f} (harm {format_share(chosen['harmful'])}, fixed "
            f"{format_share(chosen['fixed'])} on real-text {THRESHOLD_SPLIT})"
        )
    if threshold is not None:
        print_threshold_figures(sets, threshold, str(threshold_from), console)
    pairs_result = None
    if pairs is not None and corrector is not None:
        pairs_result = score_pairs(
            scorer, corrector, pairs, threshold, int(cfg.get("mistakes", MISTAKES_KEPT))
        )
        print_pairs(pairs_result, console)
    json_path, png_path = default_outputs(model_path, cfg.get("output_dir"))
    curve_path = json_path.with_name(json_path.name.replace(".eval.json", ".eval_corrections.png"))
    reliability_path = json_path.with_name(json_path.name.replace(".eval.json", ".eval_reliability.png"))
    save_confusion_matrix(
        result["confusion_matrix"],
        png_path,
        title=f"{model_path.name} on {Path(str(data_text)).name}: accuracy {result['accuracy']:.4f}",
    )
    save_tradeoff_curve(
        {name: summary for name, summary in sets.items() if name != AMBIGUOUS},
        curve_path,
        title=f"{model_path.name}: harmful corrections vs fixes by threshold",
    )
    save_reliability_diagrams(
        sets,
        reliability_path,
        title=f"{model_path.name}: top probability against accuracy ({CALIBRATION_BINS} equal-width bins)",
    )
    report = {
        "command": "evaluate",
        "model": scorer.describe(),
        "data": data.description,
        **result,
        "realtext": realtext,
        "correction_threshold": None if realtext is None else realtext["correction_threshold"]["value"],
        "pairs": pairs_result,
        "paths": {
            "report": str(json_path),
            "confusion_matrix": str(png_path),
            "corrections": str(curve_path),
            "reliability": str(reliability_path),
        },
        "timings": {"total_seconds": round(time.perf_counter() - started, 3)},
        "versions": versions(),
    }
    record(
        json_path,
        report,
        console=console,
        files={
            "report": json_path,
            "confusion matrix": png_path,
            "corrections curve": curve_path,
            "reliability diagrams": reliability_path,
        },
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
