"""The whole export: strict trace -> Core ML conversion -> save beside the target -> parity of
the saved file -> atomic publish -> parity vectors. Used by the training callback and by
`python -m layoutnet.export`."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import layoutnet
from layoutnet.contract import CLASSES, SEQ_LEN, contract_metadata
from layoutnet.errors import ExportError
from layoutnet.export.convert import convert, coremltools_version
from layoutnet.export.parity import ParitySamples, build_parity_samples, check_parity, torch_logits
from layoutnet.export.publish import artifact_size, publish_validated
from layoutnet.export.settings import ExportSettings
from layoutnet.export.trace import strict_trace, trace_inputs
from layoutnet.metrics import softmax
from layoutnet.models import count_parameters, model_family

log = logging.getLogger(__name__)

PARITY_VECTORS_FILE = "parity_vectors.json"


@dataclass
class ModelInfo:
    """Provenance written into the artifact's metadata and the report."""

    run_id: str = ""
    val_accuracy: float | None = None
    source: str = ""

    def metadata(self, model: nn.Module) -> dict[str, str]:
        return {
            "model_family": model_family(model),
            "parameter_count": str(count_parameters(model)),
            "training_run_id": self.run_id,
            "validation_accuracy": "" if self.val_accuracy is None else f"{self.val_accuracy:.6f}",
            "source": self.source,
            "layoutnet_version": layoutnet.__version__,
            "torch_version": torch.__version__,
            "coremltools_version": coremltools_version(),
        }


def write_parity_vectors(
    path: Path, model: nn.Module, samples: ParitySamples, count: int, tolerance: float
) -> None:
    """A few hundred inputs with PyTorch's probabilities, for the app's on-device tests."""
    picks = np.linspace(0, len(samples) - 1, num=min(count, len(samples))).astype(int)
    picks = np.unique(np.concatenate([picks, np.arange(len(samples) - 12, len(samples))]))
    ids = samples.ids[picks]
    logits = torch_logits(model, ids)
    probs = softmax(logits)
    payload = {
        "contract": contract_metadata(),
        "classes": list(CLASSES),
        "tolerance": tolerance,
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


def export_model(
    model: nn.Module,
    settings: ExportSettings,
    default_dir: Path,
    info: ModelInfo,
    val_ids: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    section: dict | None = None,
) -> dict:
    """Export `model` and return the report's `export` section (also filled into `section`,
    when given, on failure too). Raises ExportError on any failure; an artifact already
    published at the target is then untouched."""
    section = {} if section is None else section
    timings: dict[str, float] = {}
    started = time.perf_counter()
    target = settings.target_path(Path(default_dir))
    section.update(
        status="failed",
        path=str(target),
        format=settings.format,
        precision=settings.precision,
        settings=settings.as_dict(),
        timings=timings,
    )
    try:
        return _export(
            model.eval().cpu(), settings, target, info, val_ids, val_labels, section, timings, started
        )
    except ExportError as exc:
        section["error"] = str(exc)
        raise


def _export(model, settings, target, info, val_ids, val_labels, section, timings, started) -> dict:

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            timings[name] = round(time.perf_counter() - t0, 3)

    samples = build_parity_samples(val_ids, val_labels, settings.parity_samples, settings.random_samples)
    traced = timed("trace", strict_trace, model, trace_inputs(torch.from_numpy(samples.ids[:3])))
    section["trace"] = traced.report()
    mlmodel = timed("convert", convert, traced.module, settings, info.metadata(model))

    def validate(path: Path) -> None:
        result = timed("parity", check_parity, path, model, samples, settings.tolerance)
        section["parity"] = result.report()
        if not result.passed:
            raise ExportError(result.failure_message() + "\nThe artifact was not published.")

    published = publish_validated(target, lambda p: timed("save", mlmodel.save, str(p)), validate)
    vectors = published.parent / PARITY_VECTORS_FILE
    timed(
        "parity_vectors",
        write_parity_vectors,
        vectors,
        model,
        samples,
        settings.parity_vectors,
        settings.tolerance,
    )
    timings["total"] = round(time.perf_counter() - started, 3)
    section.update(
        status="ok",
        path=str(published),
        size_bytes=artifact_size(published),
        parity_vectors=str(vectors),
        platform=platform.platform(),
        input={"name": "input_ids", "dtype": "int32", "shape": [1, SEQ_LEN]},
    )
    return section
