"""The summary of a multirun as data: one row per job from its `report.json`, the jobs that train the
same network as an earlier job, and the text of `summary.md` and `summary.csv`. It draws and prints
nothing: `pictures.plot_summary` draws `summary.png` from these rows, `console.print_sweep_summary`
prints them, and `multirun` writes all three at the end of a multirun (or for
`python -m layoutnet.summarize <sweep dir>`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from layoutnet.reporting.runreport import REPORT_FILE, read_report

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
    "compression",
    "duplicate_of",
    "wall_seconds",
    "run_dir",
    "error",
)
# The accuracy tolerance of "the smallest artifact within tolerance of the best" (summary.md / .png).
ACCURACY_TOLERANCE = 0.005


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
    compression: str | None = None
    wall_seconds: float | None = None
    error: str | None = None
    # Identity of the trained network (see `function_key`); None when the job's config is unreadable.
    function_key: str | None = None
    duplicate_of: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """Overrides as key -> value (`+`, `++` and `~` prefixes dropped); a dict value
        (`model.net={kernel_size:2,padding:crop}`) is spread into its keys (`model.net.kernel_size=2`)."""
        values: dict[str, str] = {}
        for override in self.overrides:
            key, sep, value = override.partition("=")
            if sep:
                values.update(_spread(key.lstrip("+~"), value))
        return values

    def csv_row(self, varied: Sequence[str]) -> dict[str, object]:
        row: dict[str, object] = {name: getattr(self, name) for name in CSV_COLUMNS}
        row["overrides"] = " ".join(self.overrides)
        row["run_dir"] = str(self.run_dir)
        params = self.params
        for key in varied:
            row[key] = params.get(key, "")
        return {k: "" if v is None else v for k, v in row.items()}


def _hydra_value(value: str) -> Any:
    """A Hydra override value parsed as data (dicts, lists, numbers); the text itself when it is not one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"k={value}").value()
    except Exception:
        return value


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_as_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_as_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _leaves(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {key: _as_text(value)}
    return {
        leaf: text for name, item in value.items() for leaf, text in _leaves(f"{key}.{name}", item).items()
    }


def _spread(key: str, value: str) -> dict[str, str]:
    if not value.startswith("{"):
        return {key: value}
    parsed = _hydra_value(value)
    return _leaves(key, parsed) if isinstance(parsed, dict) else {key: value}


# Function identity ----------------------------------------------------------------------------------------

JOB_DIR_MARK = "<job>"


def _kernels(node: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    for key, value in node.items():
        if "kernel" in str(key):
            found += list(value) if isinstance(value, list | tuple) else [value]
    return found


def canonical_config(config: Any, job_dir: str | None = None) -> Any:
    """The effective config of a job reduced to what decides the trained network and its artifact.

    Two rules: the job's own directory (checkpoint dirs, logger dirs) is replaced by a mark; and in any
    network config whose kernels (`kernel_size`, `branch_kernels`, `mix_kernels`, `deep_kernel`) are all
    odd, `padding` is dropped: for an odd kernel `same` and `crop` pad (k-1)/2 on both sides, the same
    convolution with the same weights."""
    if isinstance(config, Mapping):
        node = {str(k): canonical_config(v, job_dir) for k, v in config.items()}
        if "padding" in node:
            kernels = _kernels(node)
            if kernels and all(isinstance(k, int) and not isinstance(k, bool) and k % 2 for k in kernels):
                node["padding"] = "any (odd kernels)"
        return node
    if isinstance(config, list | tuple):
        return [canonical_config(v, job_dir) for v in config]
    if isinstance(config, str) and job_dir and job_dir in config:
        return config.replace(job_dir, JOB_DIR_MARK)
    return config


def function_key(config: Mapping[str, Any]) -> str:
    """A string equal for two effective configs exactly when they train the same network (see
    `canonical_config`); the job directory is read from `paths.output_dir`."""
    job_dir = (config.get("paths") or {}).get("output_dir") if isinstance(config, Mapping) else None
    return json.dumps(canonical_config(config, str(job_dir) if job_dir else None), sort_keys=True)


def _job_function_key(job_dir: Path) -> str | None:
    path = job_dir / "config_resolved.yaml"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return function_key(loaded) if isinstance(loaded, Mapping) else None


def mark_duplicates(rows: Sequence[JobRow]) -> None:
    """Set `duplicate_of` on every job that trains the same network as an earlier job."""
    first: dict[str, str] = {}
    for row in rows:
        if row.function_key is None:
            continue
        if row.function_key in first:
            row.duplicate_of = first[row.function_key]
        else:
            first[row.function_key] = row.job


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
    if not isinstance(parity, Mapping):
        parity = {}
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
        artifact_accuracy=_artifact_accuracy(export, parity),
        artifact_size_bytes=_first(_int(export.get("artifact_size_bytes")), _int(export.get("size_bytes"))),
        compression=_compression(export),
        wall_seconds=(report.get("timings") or {}).get("total_seconds"),
        error=None if error is None else str(error),
        function_key=_job_function_key(job_dir),
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _artifact_accuracy(export: Mapping[str, Any], parity: Mapping[str, Any]) -> float | None:
    """The saved artifact's accuracy: `export.artifact_accuracy`, `export.accuracy` (a number, or a mapping
    with `artifact`), else the parity check's `artifact_accuracy`. Older reports have only the last."""
    accuracy = export.get("accuracy")
    if isinstance(accuracy, Mapping):
        accuracy = accuracy.get("artifact")
    return _first(
        _float(export.get("artifact_accuracy")), _float(accuracy), _float(parity.get("artifact_accuracy"))
    )


def _compression(export: Mapping[str, Any]) -> str | None:
    value = export.get("compression")
    if value is None:
        settings = export.get("settings")
        value = settings.get("compression") if isinstance(settings, Mapping) else None
    if isinstance(value, Mapping):  # {"mode": "int8", ...}
        value = value.get("mode") or value.get("name")
    return None if value is None else str(value)


def collect(sweep_dir: Path) -> list[JobRow]:
    rows = [read_job(d) for d in job_dirs(Path(sweep_dir))]
    mark_duplicates(rows)
    return rows


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


def format_cell(value: object, kind: str = "") -> str:
    """One cell of the summary tables (markdown and terminal); `—` for a missing value."""
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


def render_markdown(sweep_dir: Path, rows: Sequence[JobRow], tolerance: float = ACCURACY_TOLERANCE) -> str:
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
    smallest = smallest_within_tolerance(rows, tolerance)
    if smallest is not None:
        lines.append(
            f"Smallest artifact within {tolerance:g} of the most accurate one: job {smallest.job}, "
            f"{format_cell(smallest.artifact_size_bytes, 'size')}, accuracy {row_accuracy(smallest):.4f}"
            + (f", compression `{smallest.compression}`" if smallest.compression else "")
        )
        lines.append("")
    duplicates = [row for row in rows if row.duplicate_of is not None]
    if duplicates:
        lines.append(
            f"{len(duplicates)} job(s) train the same network as an earlier job (equal effective config; "
            "`padding` does not count where every kernel is odd, as `same` and `crop` are then the same "
            "convolution): " + ", ".join(f"job {row.job} = job {row.duplicate_of}" for row in duplicates)
        )
        lines.append("")
    compressed = any(row.compression for row in rows)
    header = [
        "job",
        "status",
        *varied,
        "parameters",
        "val acc",
        "export",
        "parity max Δp",
        "artifact",
        "artifact acc",
        *(["compression"] if compressed else []),
        "wall s",
        *(["duplicate of"] if duplicates else []),
        "error",
    ]
    lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        params = row.params
        acc = format_cell(row.val_accuracy, "acc")
        if best is not None and row is best:
            acc = f"**{acc}**"
        cells = [
            row.job,
            row.status,
            *(f"`{short_value(params[k])}`" if k in params else "—" for k in varied),
            format_cell(row.parameters, "int"),
            acc,
            format_cell(row.export_status),
            format_cell(row.parity_max_prob_diff, "diff"),
            format_cell(row.artifact_size_bytes, "size"),
            format_cell(row.artifact_accuracy, "acc"),
            *([format_cell(row.compression)] if compressed else []),
            format_cell(row.wall_seconds, "seconds"),
            *([f"job {row.duplicate_of}" if row.duplicate_of else ""] if duplicates else []),
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


def as_number(value: str) -> float | None:
    """A swept value as a finite number, or None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def short_value(value: str) -> str:
    """A swept value for the table: long floats (Optuna's) cut to 4 significant digits."""
    number = as_number(value)
    if number is None or "." not in value or len(value) <= 8:
        return value
    return f"{number:.4g}"


def _sweep_overrides(hydra_file: Path) -> list[str]:
    """The sweeper's params and the task overrides recorded in a Hydra config file, as override texts."""
    try:
        loaded = yaml.safe_load(hydra_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    hydra_cfg = loaded.get("hydra") if isinstance(loaded, Mapping) else None
    if not isinstance(hydra_cfg, Mapping):
        return []
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items()] if isinstance(params, Mapping) else []
    return overrides + [str(o) for o in ((hydra_cfg.get("overrides") or {}).get("task") or [])]


def log_swept_keys(sweep_dir: Path) -> set[str]:
    """Keys the sweep samples on a log scale (Optuna's `tag(log, interval(...))`): from the sweep's
    `multirun.yaml` (the basic sweeper writes it) and the first job's `.hydra/hydra.yaml` (Optuna writes
    only that), their sweeper params and command-line sweep overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweep_dir = Path(sweep_dir)
    overrides = _sweep_overrides(sweep_dir / "multirun.yaml")
    jobs = job_dirs(sweep_dir)
    if jobs:
        overrides += _sweep_overrides(jobs[0] / ".hydra" / "hydra.yaml")
    parser = OverridesParser.create()
    found = set()
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except Exception:
            continue
        if "log" in (getattr(override.value(), "tags", None) or ()):
            found.add(override.key_or_group.lstrip("+~"))
    return found


def smallest_within_tolerance(rows: Sequence[JobRow], tolerance: float = ACCURACY_TOLERANCE) -> JobRow | None:
    """The finished job with the smallest artifact whose accuracy (the artifact's own, else the best
    validation accuracy) is within `tolerance` of the most accurate artifact."""
    sized = [r for r in rows if r.status == "ok" and r.artifact_size_bytes and row_accuracy(r) is not None]
    if not sized:
        return None
    top = max(row_accuracy(r) for r in sized)
    within = [r for r in sized if row_accuracy(r) >= top - tolerance - 1e-12]
    return min(within, key=lambda r: (r.artifact_size_bytes, -row_accuracy(r)))


def row_accuracy(row: JobRow) -> float | None:
    """The artifact's own accuracy, else the best validation accuracy."""
    return _first(row.artifact_accuracy, row.val_accuracy)
