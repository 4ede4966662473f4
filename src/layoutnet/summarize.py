"""The summary of a multirun: one row per job from its `report.json`, written into the sweep directory
as `summary.md`, `summary.csv` and `summary.png` (validation accuracy against each swept parameter, and
artifact size against accuracy). Jobs that train the same network as an earlier job are flagged.

Written by the Hydra callback at the end of every multirun; `python -m layoutnet.summarize <sweep dir>`
rebuilds it (for example after a SLURM sweep was cut short).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            f"{_fmt(smallest.artifact_size_bytes, 'size')}, accuracy {_row_accuracy(smallest):.4f}"
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
            _fmt(row.artifact_accuracy, "acc"),
            *([_fmt(row.compression)] if compressed else []),
            _fmt(row.wall_seconds, "seconds"),
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


# Pictures --------------------------------------------------------------------------------------------------

# At most this many category labels under one panel; beyond it every n-th label is shown.
MAX_TICK_LABELS = 10
# Job numbers are written beside the points up to this many jobs in a panel.
MAX_POINT_LABELS = 12
NOT_OK_MARKERS = {"failed": "x", "missing": "s", "incomplete": "v", "unreadable": "D"}


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


@dataclass
class Panel:
    """What one panel of summary.png shows, decided before anything is drawn."""

    key: str
    xlabel: str
    ylabel: str
    kind: str  # numeric | categorical
    scale: str  # linear | log
    ok: list[tuple[float, float, str]]  # (x, accuracy, job) of finished jobs
    not_ok: list[
        tuple[float, str, str]
    ]  # (x, status, job): drawn in a strip below, never on the accuracy axis
    best: tuple[float, float] | None = None
    chosen: tuple[float, float] | None = None  # size panel: the smallest artifact within tolerance
    ticks: list[tuple[float, str]] = field(default_factory=list)  # categorical: the labelled positions
    span: tuple[float, float] | None = None  # categorical: the x range holding every category
    groups: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)  # size panel: compression


def _category_ticks(categories: list[str]) -> list[tuple[float, str]]:
    step = max(1, math.ceil(len(categories) / MAX_TICK_LABELS))
    shown = []
    for i, value in enumerate(categories):
        if i % step == 0:
            label = short_value(value)
            shown.append((float(i), label if len(label) <= 18 else label[:17] + "…"))
    return shown


def _spread_in_category(jobs: list[tuple[str, float | None]]) -> dict[str, float | None]:
    """x of each job; jobs sharing a category are spread evenly over ±0.3 around it, so 60 jobs over
    four categories stay countable instead of stacking on one line."""
    members: dict[float, list[str]] = {}
    for job, x in jobs:
        if x is not None:
            members.setdefault(x, []).append(job)
    placed: dict[str, float | None] = {job: None for job, _ in jobs}
    for x, names in members.items():
        for i, job in enumerate(names):
            placed[job] = x + ((i / (len(names) - 1) - 0.5) * 0.6 if len(names) > 1 else 0.0)
    return placed


def _param_panel(
    key: str, rows: Sequence[JobRow], ok: list[JobRow], best: JobRow | None, log_keys: set[str]
) -> Panel:
    values = {row.job: row.params.get(key) for row in rows}
    present = [v for v in values.values() if v is not None]
    numeric = bool(present) and all(_as_number(v) is not None for v in present)
    finished = {row.job for row in ok}
    if numeric:
        scale = "log" if key in log_keys and all(_as_number(v) > 0 for v in present) else "linear"
        x_of = {job: None if value is None else _as_number(value) for job, value in values.items()}
        ticks: list[tuple[float, str]] = []
        span = None
    else:
        scale = "linear"
        categories = _ordered_values([v if v is not None else "—" for v in values.values()])
        index = {value: float(i) for i, value in enumerate(categories)}
        slot = {job: index[value if value is not None else "—"] for job, value in values.items()}
        x_of = _spread_in_category([(r.job, slot[r.job]) for r in rows if r.job in finished])
        x_of |= _spread_in_category([(r.job, slot[r.job]) for r in rows if r.job not in finished])
        ticks = _category_ticks(categories)
        span = (-0.5, len(categories) - 0.5)
    return Panel(
        key=key,
        xlabel=key + (" (log)" if scale == "log" else ""),
        ylabel="best validation accuracy",
        kind="numeric" if numeric else "categorical",
        scale=scale,
        ok=[(x_of[r.job], r.val_accuracy, r.job) for r in ok if x_of[r.job] is not None],
        not_ok=[
            (x_of[r.job], r.status, r.job) for r in rows if r.job not in finished and x_of[r.job] is not None
        ],
        best=None if best is None or x_of[best.job] is None else (x_of[best.job], best.val_accuracy),
        ticks=ticks,
        span=span,
    )


def smallest_within_tolerance(rows: Sequence[JobRow], tolerance: float = ACCURACY_TOLERANCE) -> JobRow | None:
    """The finished job with the smallest artifact whose accuracy (the artifact's own, else the best
    validation accuracy) is within `tolerance` of the most accurate artifact."""
    sized = [r for r in rows if r.status == "ok" and r.artifact_size_bytes and _row_accuracy(r) is not None]
    if not sized:
        return None
    top = max(_row_accuracy(r) for r in sized)
    within = [r for r in sized if _row_accuracy(r) >= top - tolerance - 1e-12]
    return min(within, key=lambda r: (r.artifact_size_bytes, -_row_accuracy(r)))


def _row_accuracy(row: JobRow) -> float | None:
    return _first(row.artifact_accuracy, row.val_accuracy)


def summary_panels(
    rows: Sequence[JobRow], log_keys: set[str] = frozenset(), tolerance: float = ACCURACY_TOLERANCE
) -> list[Panel]:
    """The panels of summary.png: accuracy against each swept parameter (numeric axes for numbers, log
    where the sweep samples log, categories otherwise), against the parameter count, and accuracy against
    artifact size when jobs exported. Jobs that did not finish go to a strip under the accuracy axis."""
    varied, _ = varied_keys(rows)
    ok = [r for r in rows if r.status == "ok" and r.val_accuracy is not None]
    best = best_row(rows)
    panels = [_param_panel(key, rows, ok, best, log_keys) for key in varied]
    counted = [r for r in ok if r.parameters]
    if counted:
        sizes = [r.parameters for r in counted]
        panels.append(
            Panel(
                key="parameters",
                xlabel="model parameters",
                ylabel="best validation accuracy",
                kind="numeric",
                scale="log" if max(sizes) / min(sizes) > 20 else "linear",
                ok=[(float(r.parameters), r.val_accuracy, r.job) for r in counted],
                not_ok=[],
                best=(float(best.parameters), best.val_accuracy)
                if best is not None and best.parameters
                else None,
            )
        )
    sized = [r for r in ok if r.artifact_size_bytes and _row_accuracy(r) is not None]
    if sized:
        kib = [r.artifact_size_bytes / 1024 for r in sized]
        groups: dict[str, list[tuple[float, float, str]]] = {}
        for row in sized:
            groups.setdefault(row.compression or "—", []).append(
                (row.artifact_size_bytes / 1024, _row_accuracy(row), row.job)
            )
        chosen = smallest_within_tolerance(rows, tolerance)
        top = max(sized, key=_row_accuracy)
        panels.append(
            Panel(
                key="artifact_size",
                xlabel="artifact size (KiB" + (", log)" if max(kib) / min(kib) > 20 else ")"),
                ylabel="artifact accuracy"
                if any(r.artifact_accuracy is not None for r in sized)
                else "best validation accuracy",
                kind="numeric",
                scale="log" if max(kib) / min(kib) > 20 else "linear",
                ok=[(r.artifact_size_bytes / 1024, _row_accuracy(r), r.job) for r in sized],
                not_ok=[],
                best=(top.artifact_size_bytes / 1024, _row_accuracy(top)),
                chosen=None if chosen is None else (chosen.artifact_size_bytes / 1024, _row_accuracy(chosen)),
                groups=groups,
            )
        )
    return panels


def plot_summary(
    path: Path,
    rows: Sequence[JobRow],
    title: str,
    log_keys: set[str] = frozenset(),
    tolerance: float = ACCURACY_TOLERANCE,
) -> Path:
    """Render `summary_panels` into one PNG: up to three panels a row; under each parameter panel a strip
    with one line per status of the jobs that did not finish; the best job circled in red, the smallest
    artifact within tolerance in green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from layoutnet.plots import log_axis

    panels = summary_panels(rows, log_keys, tolerance)
    statuses = [s for s in NOT_OK_MARKERS if any(s == st for p in panels for _, st, _ in p.not_ok)]
    statuses += sorted({st for p in panels for _, st, _ in p.not_ok} - set(statuses))
    ncols = max(1, min(3, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = plt.figure(figsize=(5.2 * ncols, 4.9 * nrows + 0.5))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.3, top=1 - 0.5 / (4.9 * nrows + 0.5))
    if not panels:
        fig.text(0.5, 0.5, "no job finished", ha="center", va="center")
    annotate = len(rows) <= MAX_POINT_LABELS
    for i, panel in enumerate(panels):
        cell = outer[divmod(i, ncols)]
        has_strip = bool(statuses) and panel.key not in ("parameters", "artifact_size")
        if has_strip:
            inner = cell.subgridspec(2, 1, height_ratios=[6, 0.5 + 0.35 * len(statuses)], hspace=0.08)
            ax = fig.add_subplot(inner[0])
            below = fig.add_subplot(inner[1], sharex=ax)
        else:
            ax, below = fig.add_subplot(cell), None
        named_groups = [name for name in panel.groups if name != "—"]
        if named_groups:
            for (name, points), color in zip(panel.groups.items(), plt.cm.tab10.colors, strict=False):
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.scatter(xs, ys, color=color, label=f"compression {name}", zorder=3)
        else:
            ax.scatter([p[0] for p in panel.ok], [p[1] for p in panel.ok], color="tab:blue", zorder=3)
        if annotate:
            for x, y, job in panel.ok:
                ax.annotate(job, (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7, alpha=0.8)
        if panel.best is not None:
            ax.scatter(
                *panel.best,
                s=200,
                facecolors="none",
                edgecolors="red",
                linewidths=1.5,
                zorder=4,
                label="best",
            )
        if panel.chosen is not None:
            ax.scatter(
                *panel.chosen,
                s=360,
                facecolors="none",
                edgecolors="green",
                linewidths=1.5,
                zorder=4,
                label=f"smallest within {tolerance:g}",
            )
        if panel.scale == "log":
            log_axis(ax, [p[0] for p in panel.ok] + [p[0] for p in panel.not_ok], which="x")
        elif panel.kind == "numeric":  # at most 6 labels, thousands separated: legible at any width
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            if panel.key in ("parameters", "artifact_size"):
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if panel.key == "artifact_size" or (i == 0 and panel.best is not None):
            ax.legend(fontsize=7, loc="best")
        target = ax
        if below is not None:
            target = below
            ax.tick_params(labelbottom=False)
            for x, status, _ in panel.not_ok:
                below.scatter(
                    [x], [statuses.index(status)], marker=NOT_OK_MARKERS.get(status, "o"), color="tab:red"
                )
            below.set_yticks(range(len(statuses)), statuses, fontsize=7)
            below.set_ylim(-0.6, len(statuses) - 0.4)
            below.invert_yaxis()
            below.grid(alpha=0.3, axis="x")
            below.tick_params(labelsize=8)
        if panel.kind == "categorical":
            target.set_xticks([p for p, _ in panel.ticks], [label for _, label in panel.ticks])
            target.tick_params(axis="x", labelrotation=30)
            for label in target.get_xticklabels():
                label.set_horizontalalignment("right")
            if panel.span is not None:
                ax.set_xlim(*panel.span)
        target.set_xlabel(panel.xlabel, fontsize=8)
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_summary(sweep_dir: str | Path, tolerance: float = ACCURACY_TOLERANCE) -> dict[str, Path]:
    """Write summary.md, summary.csv and summary.png into `sweep_dir`; returns their paths. `tolerance`:
    how much accuracy below the best artifact still counts when picking the smallest artifact."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    paths = {"md": sweep_dir / SUMMARY_MD, "csv": sweep_dir / SUMMARY_CSV, "png": sweep_dir / SUMMARY_PNG}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    paths["md"].write_text(render_markdown(sweep_dir, rows, tolerance), encoding="utf-8")
    write_csv(paths["csv"], rows)
    plot_summary(paths["png"], rows, f"{sweep_dir}: {len(rows)} jobs", log_swept_keys(sweep_dir), tolerance)
    return paths


def short_keys(keys: Sequence[str]) -> list[str]:
    """Each key's last component (`model.net.padding` -> `padding`) where that stays unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)]


def _terminal_value(value: str) -> str:
    """A swept value in the terminal table: numbers to 3 significant digits (`0.00112`)."""
    number = _as_number(value)
    return value if number is None or len(value) <= 6 else f"{number:.3g}"


def print_summary(rows: Sequence[JobRow], console: Console | None = None) -> None:
    """A compact table for the terminal (columns that hold nothing, or the same export status for every
    job, are left out so it reads at 80 columns); duplicates and errors are listed under it."""
    console = console or Console()
    varied, _ = varied_keys(rows)
    best = best_row(rows)
    columns: list[tuple[str, list[str]]] = [
        ("job", [row.job for row in rows]),
        ("status", [row.status if row.status == "ok" else f"[red]{escape(row.status)}[/]" for row in rows]),
    ]
    for key, name in zip(varied, short_keys(varied), strict=True):
        columns.append((name, [escape(_terminal_value(row.params.get(key, "—"))) for row in rows]))
    accuracies = [_fmt(row.val_accuracy, "acc") for row in rows]
    columns.append(
        (
            "val acc",
            [f"[bold green]{a}[/]" if row is best else a for row, a in zip(rows, accuracies, strict=True)],
        )
    )
    exports = [_fmt(row.export_status) for row in rows]
    if len(set(exports)) > 1 or exports[:1] not in (["disabled"], ["—"]):
        columns.append(("export", [escape(e) for e in exports]))
    columns.append(("Δp", [_fmt(row.parity_max_prob_diff, "diff") for row in rows]))
    columns.append(
        (
            "KiB",
            ["—" if r.artifact_size_bytes is None else f"{r.artifact_size_bytes / 1024:,.0f}" for r in rows],
        )
    )
    columns.append(("wall s", [_fmt(row.wall_seconds, "seconds") for row in rows]))
    columns = [(name, cells) for name, cells in columns if any(cell != "—" for cell in cells)]
    table = Table(title="sweep summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in columns:
        table.add_column(escape(name), no_wrap=True, min_width=min(len(name), 8))
    for i in range(len(rows)):
        table.add_row(*(cells[i] for _, cells in columns))
    console.print(table)
    if exports and len(set(exports)) == 1 and exports[0] in ("disabled", "—"):
        console.print(f"export: {escape(exports[0])} for every job")
    for row in rows:
        if row.duplicate_of is not None:
            console.print(
                f"[yellow]job {escape(row.job)}[/] trains the same network as job {escape(row.duplicate_of)}"
            )
    for row in rows:
        if row.error:
            console.print(f"[red]job {escape(row.job)}:[/] {escape(short_error(row.error, 300))}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m layoutnet.summarize",
        description="Rebuild summary.md, summary.csv and summary.png of a multirun directory.",
    )
    parser.add_argument("sweep_dir", help="the multirun directory (outputs/<task>/multiruns/<time>)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=ACCURACY_TOLERANCE,
        help="accuracy below the most accurate artifact that still counts when summary.md names the "
        f"smallest artifact (default {ACCURACY_TOLERANCE})",
    )
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
    paths = write_summary(sweep_dir, args.tolerance)
    print_summary(rows, Console())
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
