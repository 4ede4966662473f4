"""The summary of a multirun: one row per job from its `report.json`, written into the sweep directory
as `summary.md`, `summary.csv` and `summary.png` (validation accuracy against each swept parameter).

Written by the Hydra callback at the end of every multirun; `python -m layoutnet.summarize <sweep dir>`
rebuilds it (for example after a SLURM sweep was cut short).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layoutnet.report import REPORT_FILE, read_report

SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
SUMMARY_PNG = "summary.png"

CSV_COLUMNS = (
    "job",
    "status",
    "overrides",
    "parameters",
    "val_accuracy",
    "epochs",
    "export_status",
    "parity_backend",
    "parity_max_prob_diff",
    "parity_max_logit_diff",
    "artifact_accuracy",
    "artifact_size_bytes",
    "wall_seconds",
    "run_dir",
    "error",
)


@dataclass
class JobRow:
    """One job of a sweep, as its report (or its absence) tells it."""

    job: str
    run_dir: Path
    status: str
    overrides: list[str] = field(default_factory=list)
    parameters: int | None = None
    val_accuracy: float | None = None
    epochs: int | None = None
    export_status: str | None = None
    parity_backend: str | None = None
    parity_max_prob_diff: float | None = None
    parity_max_logit_diff: float | None = None
    artifact_accuracy: float | None = None
    artifact_size_bytes: int | None = None
    wall_seconds: float | None = None
    error: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """Overrides as key -> value (`+`, `++` and `~` prefixes dropped)."""
        values = {}
        for override in self.overrides:
            key, sep, value = override.partition("=")
            if sep:
                values[key.lstrip("+~")] = value
        return values

    def csv_row(self, varied: Sequence[str]) -> dict[str, object]:
        row: dict[str, object] = {name: getattr(self, name) for name in CSV_COLUMNS}
        row["overrides"] = " ".join(self.overrides)
        row["run_dir"] = str(self.run_dir)
        params = self.params
        for key in varied:
            row[key] = params.get(key, "")
        return {k: "" if v is None else v for k, v in row.items()}


def _job_sort_key(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep: children holding a report.json or a Hydra `.hydra` folder."""
    if not sweep_dir.is_dir():
        return []
    found = [
        child
        for child in sweep_dir.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and ((child / REPORT_FILE).exists() or (child / ".hydra").is_dir())
    ]
    return sorted(found, key=_job_sort_key)


def _hydra_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    return [str(item) for item in loaded] if isinstance(loaded, list) else []


def _first(*values):
    return next((v for v in values if v is not None), None)


def read_job(job_dir: Path) -> JobRow:
    try:
        report = read_report(job_dir)
    except (OSError, ValueError) as exc:
        return JobRow(
            job_dir.name, job_dir, "unreadable", _hydra_overrides(job_dir), error=f"report.json: {exc}"
        )
    overrides = [str(o) for o in report.get("overrides") or []] or _hydra_overrides(job_dir)
    if not report:
        return JobRow(
            job_dir.name,
            job_dir,
            "missing",
            overrides,
            error="no report.json: the job did not start its run (see its log)",
        )
    training = report.get("training") or {}
    export = report.get("export") or {}
    parity = export.get("parity") or {}
    status = str(report.get("status") or "unknown")
    error = report.get("error")
    if export.get("status") == "failed" and export.get("error"):
        error = error or export["error"]
    if status == "running":
        status = "incomplete"
        error = error or "the report still says running: the job was killed or crashed before it finished"
    return JobRow(
        job=job_dir.name,
        run_dir=job_dir,
        status=status,
        overrides=overrides,
        parameters=training.get("parameters"),
        val_accuracy=_first(
            training.get("best_val_accuracy"), (report.get("validation") or {}).get("accuracy")
        ),
        epochs=training.get("epochs"),
        export_status=export.get("status"),
        parity_backend=parity.get("backend"),
        parity_max_prob_diff=parity.get("max_prob_diff"),
        parity_max_logit_diff=parity.get("max_logit_diff"),
        artifact_accuracy=parity.get("artifact_accuracy"),
        artifact_size_bytes=export.get("size_bytes"),
        wall_seconds=(report.get("timings") or {}).get("total_seconds"),
        error=None if error is None else str(error),
    )


def collect(sweep_dir: Path) -> list[JobRow]:
    return [read_job(d) for d in job_dirs(Path(sweep_dir))]


def varied_keys(rows: Sequence[JobRow]) -> tuple[list[str], dict[str, str]]:
    """(keys whose value differs between jobs, in first-seen order; overrides shared by every job).
    With a single job every override counts as varied."""
    order: list[str] = []
    for row in rows:
        order += [key for key in row.params if key not in order]
    varied: list[str] = []
    common: dict[str, str] = {}
    for key in order:
        values = {row.params.get(key) for row in rows}
        if len(values) > 1 or len(rows) == 1:
            varied.append(key)
        else:
            common[key] = str(next(iter(values)))
    return varied, common


def best_row(rows: Sequence[JobRow]) -> JobRow | None:
    scored = [r for r in rows if r.status == "ok" and r.val_accuracy is not None]
    return max(scored, key=lambda r: r.val_accuracy) if scored else None


# Formatting -----------------------------------------------------------------------------------------------


def _fmt(value: object, kind: str = "") -> str:
    if value is None or value == "":
        return "—"
    if kind == "acc":
        return f"{float(value):.4f}"
    if kind == "diff":
        return f"{float(value):.2g}"
    if kind == "size":
        return f"{int(value) / 1024:,.0f} KiB"
    if kind == "seconds":
        return f"{float(value):.1f}"
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


def short_error(error: str | None, limit: int = 160) -> str:
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(sweep_dir: Path, rows: Sequence[JobRow]) -> str:
    varied, common = varied_keys(rows)
    best = best_row(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines = [f"# Sweep summary: `{sweep_dir}`", ""]
    lines.append(
        f"{len(rows)} jobs: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if rows else "none")
    )
    lines.append("")
    if common:
        lines.append("Overrides shared by every job: " + " ".join(f"`{k}={v}`" for k, v in common.items()))
        lines.append("")
    if best is not None:
        shown = " ".join(f"`{k}={short_value(best.params.get(k, ''))}`" for k in varied)
        shown = shown or "(no swept overrides)"
        lines.append(f"Best: job {best.job}, val accuracy **{best.val_accuracy:.4f}**: {shown}")
        lines.append("")
    header = [
        "job",
        "status",
        *varied,
        "parameters",
        "val acc",
        "export",
        "parity max Δp",
        "artifact",
        "wall s",
        "error",
    ]
    lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        params = row.params
        acc = _fmt(row.val_accuracy, "acc")
        if best is not None and row is best:
            acc = f"**{acc}**"
        cells = [
            row.job,
            row.status,
            *(f"`{short_value(params[k])}`" if k in params else "—" for k in varied),
            _fmt(row.parameters, "int"),
            acc,
            _fmt(row.export_status),
            _fmt(row.parity_max_prob_diff, "diff"),
            _fmt(row.artifact_size_bytes, "size"),
            _fmt(row.wall_seconds, "seconds"),
            short_error(row.error),
        ]
        lines.append("| " + " | ".join(_md_cell(str(c)) for c in cells) + " |")
    failed = [row for row in rows if row.error]
    if failed:
        lines += ["", "## Errors", ""]
        for row in failed:
            lines.append(f"### job {row.job} ({row.status})")
            lines.append("")
            if row.overrides:
                lines.append("Overrides: " + " ".join(f"`{o}`" for o in row.overrides))
                lines.append("")
            lines += ["```", str(row.error).strip(), "```", ""]
    optuna = sweep_dir / "optimization_results.yaml"
    if optuna.exists():
        lines += ["", "## Optuna result", "", "```yaml", optuna.read_text(encoding="utf-8").strip(), "```"]
    return "\n".join(lines).rstrip() + "\n"


def write_csv(path: Path, rows: Sequence[JobRow]) -> None:
    varied, _ = varied_keys(rows)
    columns = list(CSV_COLUMNS[:3]) + [k for k in varied if k not in CSV_COLUMNS] + list(CSV_COLUMNS[3:])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row(varied))


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _ordered_values(values: list[str]) -> list[str]:
    """Distinct values: numerically sorted when all are numbers, else in first-seen (sweep) order."""
    distinct = list(dict.fromkeys(values))
    if all(_as_number(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: _as_number(v))
    return distinct


def short_value(value: str) -> str:
    """A swept value for the table: long floats (Optuna's) cut to 4 significant digits."""
    number = _as_number(value)
    if number is None or "." not in value or len(value) <= 8:
        return value
    return f"{number:.4g}"


def plot_summary(path: Path, rows: Sequence[JobRow], title: str) -> Path:
    """Validation accuracy against each swept parameter (and against the parameter count)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varied, _ = varied_keys(rows)
    panels: list[str] = [*varied, "parameters"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    ok = [r for r in rows if r.status == "ok" and r.val_accuracy is not None]
    failed = [r for r in rows if r not in ok]
    best = best_row(rows)
    floor = min((r.val_accuracy for r in ok), default=0.0)
    for ax, key in zip(axes[0], panels, strict=True):
        if key == "parameters":
            xs = [r.parameters for r in ok if r.parameters is not None]
            ys = [r.val_accuracy for r in ok if r.parameters is not None]
            ax.scatter(xs, ys, color="tab:blue")
            for row in ok:
                if row.parameters is not None:
                    ax.annotate(row.job, (row.parameters, row.val_accuracy), fontsize=7, alpha=0.7)
            if best is not None and best.parameters is not None:
                ax.scatter([best.parameters], [best.val_accuracy], s=120, facecolors="none", edgecolors="red")
            ax.set_xlabel("model parameters")
            if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
        else:
            categories = _ordered_values([r.params.get(key, "—") for r in rows])
            position = {value: i for i, value in enumerate(categories)}
            ax.scatter(
                [position[r.params.get(key, "—")] for r in ok],
                [r.val_accuracy for r in ok],
                color="tab:blue",
                label="ok",
            )
            if failed:
                ax.scatter(
                    [position[r.params.get(key, "—")] for r in failed],
                    [floor] * len(failed),
                    marker="x",
                    color="tab:red",
                    label="failed (plotted at the lowest accuracy)",
                )
            if best is not None:
                ax.scatter(
                    [position[best.params.get(key, "—")]],
                    [best.val_accuracy],
                    s=120,
                    facecolors="none",
                    edgecolors="red",
                )
            labels = [short_value(c) for c in categories]
            ax.set_xticks(range(len(categories)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_xlabel(key, fontsize=8)
            if failed and key == panels[0]:
                ax.legend(fontsize=7)
        ax.set_ylabel("best validation accuracy")
        ax.grid(alpha=0.3)
    if not ok:
        axes[0][0].text(0.5, 0.5, "no job finished", transform=axes[0][0].transAxes, ha="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_summary(sweep_dir: str | Path) -> dict[str, Path]:
    """Write summary.md, summary.csv and summary.png into `sweep_dir`; returns their paths."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    paths = {"md": sweep_dir / SUMMARY_MD, "csv": sweep_dir / SUMMARY_CSV, "png": sweep_dir / SUMMARY_PNG}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    paths["md"].write_text(render_markdown(sweep_dir, rows), encoding="utf-8")
    write_csv(paths["csv"], rows)
    plot_summary(paths["png"], rows, f"{sweep_dir}: {len(rows)} jobs")
    return paths


def short_keys(keys: Sequence[str]) -> list[str]:
    """Each key's last component (`model.net.padding` -> `padding`) where that stays unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def print_summary(rows: Sequence[JobRow], console: Console | None = None) -> None:
    """A compact table for the terminal; errors are listed under it, one line per failed job."""
    console = console or Console()
    varied, _ = varied_keys(rows)
    best = best_row(rows)
    table = Table(title="sweep summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("job", "status", *short_keys(varied), "val acc", "export", "Δp", "wall s"):
        table.add_column(escape(name), no_wrap=True, min_width=min(len(name), 12))
    for row in rows:
        params = row.params
        acc = _fmt(row.val_accuracy, "acc")
        table.add_row(
            row.job,
            row.status if row.status == "ok" else f"[red]{escape(row.status)}[/]",
            *(escape(short_value(params.get(k, "—"))) for k in varied),
            f"[bold green]{acc}[/]" if row is best else acc,
            escape(_fmt(row.export_status)),
            _fmt(row.parity_max_prob_diff, "diff"),
            _fmt(row.wall_seconds, "seconds"),
        )
    console.print(table)
    for row in rows:
        if row.error:
            console.print(f"[red]job {escape(row.job)}:[/] {escape(short_error(row.error, 300))}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m layoutnet.summarize",
        description="Rebuild summary.md, summary.csv and summary.png of a multirun directory.",
    )
    parser.add_argument("sweep_dir", help="the multirun directory (outputs/<task>/multiruns/<time>)")
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    console = Console(stderr=True)
    if not sweep_dir.is_dir():
        console.print(f"[bold red]error:[/] {escape(str(sweep_dir))} is not a directory")
        return 1
    rows = collect(sweep_dir)
    if not rows:
        console.print(
            f"[bold red]error:[/] {escape(str(sweep_dir))} has no job directories "
            "(numbered folders with report.json or .hydra); pass a multirun directory"
        )
        return 1
    paths = write_summary(sweep_dir)
    print_summary(rows, Console())
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
