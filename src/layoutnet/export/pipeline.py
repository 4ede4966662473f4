"""The whole export, one straight line: capture (strict trace or torch.export) -> Core ML conversion
(-> weight compression) -> stage the artifact -> interface check and parity of the saved file ->
parity vectors and manifest beside it -> publish the three together. Used by the training callback
and by `python -m layoutnet.export`."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import nn

import layoutnet
from layoutnet.contract import CLASSES, contract_metadata
from layoutnet.errors import ExportError
from layoutnet.export.artifact import read_interface
from layoutnet.export.compression import CostMeter, with_file_weights
from layoutnet.export.convert import compress, convert, coremltools_version, settings_metadata
from layoutnet.export.frontend import capture
from layoutnet.export.notices import NoticeCollector
from layoutnet.export.parity import ParitySamples, build_parity_samples, check_with_settings, torch_logits
from layoutnet.export.publish import (
    MANIFEST_FILE,
    PARITY_VECTORS_FILE,
    ExportFolder,
    artifact_size,
    checksums,
    sha256,
)
from layoutnet.export.result import ExportFailure, ExportResult
from layoutnet.export.settings import ExportSettings
from layoutnet.export.trace import trace_inputs
from layoutnet.metrics import softmax
from layoutnet.models import count_parameters, model_family
from layoutnet.reporting.record import record_export
from layoutnet.reporting.runreport import versions

MANIFEST_SCHEMA = 1


@dataclass
class ModelInfo:
    """Provenance and app settings written into the artifact's metadata, the parity vectors, the
    manifest and the report. `app_metadata` is for values the app reads from the model (for example
    `correction_threshold`); keys must not collide with the contract's or the provenance keys."""

    run_id: str = ""
    val_accuracy: float | None = None
    source: str = ""
    app_metadata: dict[str, str] = field(default_factory=dict)

    def metadata(self, model: nn.Module, app_metadata: dict[str, str] | None = None) -> dict[str, str]:
        """The artifact's user metadata besides the contract: provenance, then the app's values
        (`app_metadata`, default this object's own)."""
        provenance = {
            "model_family": model_family(model),
            "parameter_count": str(count_parameters(model)),
            "training_run_id": self.run_id,
            "validation_accuracy": "" if self.val_accuracy is None else f"{self.val_accuracy:.6f}",
            "source": self.source,
            "layoutnet_version": layoutnet.__version__,
            "torch_version": torch.__version__,
            "coremltools_version": coremltools_version(),
        }
        app = {
            str(k): str(v) for k, v in (self.app_metadata if app_metadata is None else app_metadata).items()
        }
        reserved = set(provenance) | set(contract_metadata()) | set(settings_metadata(ExportSettings()))
        clash = sorted(set(app) & reserved)
        if clash:
            raise ExportError(f"app_metadata key {clash[0]!r} would overwrite a contract or provenance key")
        return {**provenance, **app}


def export_and_record(
    run_dir: Path | None,
    model: nn.Module,
    settings: ExportSettings,
    default_dir: Path,
    info: ModelInfo,
    val_ids: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    *,
    top_level: bool = False,
    console: Console | None = None,
) -> ExportResult:
    """`export_model`, then its result (failed or not) written to `run_dir`'s report and summarised;
    an ExportFailure is raised again after it is recorded."""
    try:
        result = export_model(model, settings, default_dir, info, val_ids, val_labels, console)
    except ExportFailure as failure:
        record_export(run_dir, failure.result, top_level=top_level, console=console)
        raise
    record_export(run_dir, result, top_level=top_level, console=console)
    return result


def write_parity_vectors(
    path: Path, model: nn.Module, samples: ParitySamples, count: int, tolerance: float, app_metadata: dict
) -> None:
    """A few hundred inputs with PyTorch's probabilities, for the app's on-device tests."""
    picks = np.linspace(0, len(samples) - 1, num=min(count, len(samples))).astype(int)
    picks = np.unique(np.concatenate([picks, np.arange(max(0, len(samples) - 12), len(samples))]))
    ids = samples.ids[picks]
    logits = torch_logits(model, ids)
    probs = softmax(logits)
    payload = {
        "contract": contract_metadata(),
        "classes": list(CLASSES),
        "tolerance": tolerance,
        "app_metadata": app_metadata,
        "vectors": [
            {
                "text": samples.texts[i],
                "input_ids": ids[n].tolist(),
                "label": CLASSES[samples.labels[i]] if samples.labels[i] >= 0 else None,
                "logits": [round(float(v), 6) for v in logits[n]],
                "probabilities": [round(float(v), 6) for v in probs[n]],
            }
            for n, i in enumerate(picks)
        ],
    }
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def write_manifest(staging: Path, artifact: Path, result: ExportResult) -> None:
    """manifest.json: what the folder holds (sha256 of every artifact file and of the vectors), the
    contract, the interface, the parity figures, the settings, the versions and the app metadata."""
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifact": artifact.name,
        "format": result.format,
        "precision": result.precision,
        "frontend": result.frontend,
        "compression": result.compression,
        "artifact_size_bytes": result.artifact_size_bytes,
        "files": checksums(artifact, staging),
        "parity_vectors": {"file": PARITY_VECTORS_FILE, "sha256": sha256(staging / PARITY_VECTORS_FILE)},
        "contract": contract_metadata(),
        "interface": result.interface,
        "app_metadata": result.app_metadata,
        "parity": result.parity,
        "parity_by_precision": result.parity_by_precision,
        "range_guards": result.range_guards,
        "compression_cost": result.compression_cost,
        "compression_trials": result.compression_trials,
        "accuracy": result.accuracy,
        "weights": result.weights,
        "settings": result.settings,
        "versions": result.versions,
        "warnings": result.warnings,
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")


def read_manifest(export_dir: Path) -> dict | None:
    path = Path(export_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from exc


class _Steps:
    """Times each step and prints one line per step when it ends."""

    def __init__(self, timings: dict[str, float], console: Console | None):
        self.timings = timings
        self.console = console

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str = "") -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            if self.console is not None:
                self.console.print(
                    f"[dim]export:[/] {name}{detail} {self.timings[name]:.2f} s", highlight=False
                )


def _measured_app_metadata(model: nn.Module, given: dict[str, str]) -> dict[str, str]:
    """What the app reads from the artifact besides `given`: the correction threshold measured on the
    real-text set (harmful corrections <= 0.1%, `layoutnet.quality`), unless `given` holds one."""
    from layoutnet.quality import METADATA_KEY, app_metadata

    return {} if METADATA_KEY in given else app_metadata(model)


def export_model(
    model: nn.Module,
    settings: ExportSettings,
    default_dir: Path,
    info: ModelInfo,
    val_ids: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    console: Console | None = None,
) -> ExportResult:
    """Export `model` into the export folder (`settings.output_dir` or `default_dir`) and return the
    result. Raises ExportFailure (an ExportError carrying the result) on any failure; the folder's
    previous artifact, vectors and manifest are then untouched."""
    settings = ExportSettings.from_config(settings)
    folder = ExportFolder(settings.export_dir(default_dir))
    result = ExportResult(
        path=str(folder.directory / f"{settings.filename}{settings.extension}"),
        export_dir=str(folder.directory),
        format=settings.format,
        precision=settings.precision,
        frontend=settings.frontend,
        compression=settings.compression,
        app_precision=settings.app_precision,
        weights=info.source or None,
        app_metadata={str(k): str(v) for k, v in {**settings.app_metadata, **info.app_metadata}.items()},
        settings=settings.as_dict(),
    )
    started = time.perf_counter()
    failure: ExportError | None = None
    with NoticeCollector() as notices:
        result.versions = versions(lightning=False)
        try:
            _export(
                model.eval().cpu(),
                settings,
                folder,
                info,
                val_ids,
                val_labels,
                result,
                _Steps(result.timings, console),
            )
        except ExportError as exc:
            failure = exc
            result.error = str(exc)
    result.warnings = [n.report() for n in notices.items]
    result.timings["total"] = round(time.perf_counter() - started, 3)
    if failure is not None:
        raise ExportFailure(str(failure), result) from failure
    result.status = "ok"
    return result


def _export(model, settings, folder, info, val_ids, val_labels, result, step) -> None:
    folder.recover()
    folder.check_owned()
    samples = build_parity_samples(val_ids, val_labels, settings.parity_samples, settings.random_samples)
    with step("capture", f" ({settings.frontend})"):
        captured = capture(model, trace_inputs(torch.from_numpy(samples.ids[:3])), settings.frontend)
    result.capture = captured.report()
    measured = _measured_app_metadata(model, result.app_metadata)
    result.app_metadata = {**measured, **result.app_metadata}
    with step("convert", f" ({settings.format}, {settings.precision})"):
        mlmodel = convert(captured.graph, settings, info.metadata(model, result.app_metadata))
    staging = folder.stage()
    try:
        artifact = staging / Path(result.path).name
        reference = _publishable(
            mlmodel, model, settings, artifact, samples, val_ids, val_labels, result, step, bool(measured)
        )
        with step("hand-off"):
            write_parity_vectors(
                staging / PARITY_VECTORS_FILE,
                reference,
                samples,
                settings.parity_vectors,
                settings.tolerance,
                result.app_metadata,
            )
            write_manifest(staging, artifact, result)
            result.handoff = folder.publish(staging)
    except BaseException as exc:
        if not folder.published:  # after publishing, `staging` holds the replaced export, not ours
            result.failed_dir = str(folder.fail(staging, f"{type(exc).__name__}: {exc}"))
        raise
    result.parity_vectors = str(folder.directory / PARITY_VECTORS_FILE)
    result.manifest = str(folder.directory / MANIFEST_FILE)


def _publishable(
    mlmodel, model, settings, artifact, samples, val_ids, val_labels, result, step, own_threshold
) -> nn.Module:
    """Save the artifact at its compression level into `artifact` and check it: the compression's cost
    against `export.compression_budget`, then parity and the range guards at the app's bracket.
    `own_threshold`: the correction threshold was measured (not given), so a compressed artifact
    carries the one measured on its own weights.
    `export.compression=auto` tries `LEVELS_BY_SIZE` in turn and keeps the first that passes both
    (each try is listed in `result.compression_trials`). Returns the PyTorch model the artifact was
    checked against (for a compressed artifact: `model` with the file's weights); raises ExportError
    when nothing can be published."""
    meter = uncompressed_size = None
    if settings.compression != "none":
        with step("compression baseline"):
            _save(mlmodel, artifact)
            uncompressed_size = artifact_size(artifact)
            _discard(artifact)
            meter = CostMeter(model, val_ids, val_labels, _threshold(result.app_metadata))
    budget = settings.compression_budget
    tried: list[dict] = []
    uncompressed_metadata = dict(result.app_metadata)
    for level in settings.levels():
        result.compression, result.compression_cost = level, None
        result.app_metadata = dict(uncompressed_metadata)
        try:
            reference = model
            candidate = mlmodel
            if level != "none":
                with step("compress", f" ({level})"):
                    candidate = compress(mlmodel, settings.at_level(level))
            if level != settings.compression:  # auto: the file says which level it holds
                candidate.user_defined_metadata["compression"] = level
            with step("save"):
                _save(candidate, artifact)
            result.artifact_size_bytes = artifact_size(artifact)
            result.interface = read_interface(artifact).report()
            if level != "none":
                with step("compression cost", f" ({level})"):
                    reference, placed = with_file_weights(model, artifact)
                    if own_threshold:  # the threshold of the weights the file holds
                        result.app_metadata.update(_measured_app_metadata(reference, {}))
                        candidate.user_defined_metadata.update(result.app_metadata)
                        _discard(artifact)
                        _save(candidate, artifact)
                    cost = meter.cost(level, reference, _threshold(result.app_metadata))
                cost.size_bytes, cost.uncompressed_size_bytes = result.artifact_size_bytes, uncompressed_size
                cost.weights = placed
                result.compression_cost = cost.report(budget)
                over = cost.violations(budget)
                if over:
                    raise ExportError(
                        f"export.compression={level} costs more than export.compression_budget allows: "
                        f"{'; '.join(over)}. Use a larger level (int8 keeps the most), "
                        "export.compression=auto, or raise export.compression_budget."
                    )
            with step("parity", f" ({level})" if level != "none" else ""):
                check = check_with_settings(artifact, reference, samples, settings, settings.precision)
            result.take_parity(check)
            if not check.passed:
                raise ExportError(check.failure_message() + "\nThe artifact was not published.")
            tried.append(_trial(level, result, "published"))
            return reference
        except ExportError as exc:
            tried.append(_trial(level, result, str(exc).splitlines()[0]))
            if settings.compression != "auto":
                raise
            _discard(artifact)
        finally:
            if settings.compression == "auto":
                result.compression_trials = tried
    raise ExportError(
        "export.compression=auto published nothing: "
        + "; ".join(f"{t['level']}: {t['outcome']}" for t in tried)
    )


def _discard(artifact: Path) -> None:
    """Remove a staged artifact that will not be published (a package folder or a file)."""
    if artifact.is_dir():
        shutil.rmtree(artifact)
    else:
        artifact.unlink(missing_ok=True)


def _trial(level: str, result: ExportResult, outcome: str) -> dict:
    """One level `auto` tried: its size, its cost within budget or not, and what became of it."""
    cost = result.compression_cost or {}
    return {
        "level": level,
        "size_bytes": result.artifact_size_bytes,
        "size_ratio": cost.get("size_ratio"),
        "within_budget": cost.get("within_budget", True),
        "parity_passed": (result.parity or {}).get("passed") if outcome == "published" else None,
        "outcome": outcome,
    }


def _threshold(app_metadata: dict[str, str]) -> float:
    """The correction threshold the artifact carries (harmful rewrites are counted at it)."""
    from layoutnet.quality import METADATA_KEY, parse_threshold

    return parse_threshold(app_metadata[METADATA_KEY], f"export.app_metadata.{METADATA_KEY}")


def _save(mlmodel, path: Path) -> None:
    try:
        mlmodel.save(str(path))
    except Exception as exc:  # coremltools raises plain exceptions for I/O and spec problems
        raise ExportError(f"saving the artifact to {path} failed: {type(exc).__name__}: {exc}") from exc
