"""Parity of a saved artifact with the PyTorch model it came from.

The artifact is always loaded back from disk. On macOS with the Core ML runtime it is run by
Core ML (CPU only and all compute units); everywhere else by layoutnet's reference executor.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from layoutnet.contract import INPUT_NAME, OUTPUT_NAME, PAD_ID, SEQ_LEN, VOCAB_SIZE, decode, encode
from layoutnet.errors import ExportError
from layoutnet.metrics import predict_logits, softmax

EDGE_TEXTS = (
    "",
    "😀🙂👍",
    "\u0301\u200f\U0001f1fa\U0001f1f8",
    "ghbdtn",
    "руддщ",
    "akuo",
    "привет",
    "hello world, how are you today",
    "שלום עולם ומה שלומך היום",
    "Съешь же ещё этих мягких французских булок",
    "1234567890!@#$%^&*()",
    "abcdefghijklmnopqrstuvwxyz",
)


@dataclass
class ParitySamples:
    ids: np.ndarray  # int32 [N, SEQ_LEN]
    labels: np.ndarray  # int64 [N], -1 where there is no label
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def build_parity_samples(
    val_ids: torch.Tensor | None, val_labels: torch.Tensor | None, n_val: int, n_random: int, seed: int = 1234
) -> ParitySamples:
    """Held-out rows, random id sequences of random length, and edge cases."""
    parts_ids, parts_labels, texts = [], [], []
    if val_ids is not None and len(val_ids):
        rows = val_ids[:n_val].to(torch.int32).numpy()
        parts_ids.append(rows)
        parts_labels.append(val_labels[:n_val].numpy().astype(np.int64))
        texts += [decode(r) for r in rows]
    rng = np.random.default_rng(seed)
    random_ids = rng.integers(1, VOCAB_SIZE, size=(n_random, SEQ_LEN), dtype=np.int32)
    lengths = rng.integers(0, SEQ_LEN + 1, size=n_random)
    random_ids[np.arange(SEQ_LEN)[None, :] >= lengths[:, None]] = PAD_ID
    parts_ids.append(random_ids)
    parts_labels.append(np.full(n_random, -1, dtype=np.int64))
    texts += [f"<random ids {r.tolist()}>" for r in random_ids]
    edge = np.array([encode(t) for t in EDGE_TEXTS], dtype=np.int32)
    parts_ids.append(edge)
    parts_labels.append(np.full(len(EDGE_TEXTS), -1, dtype=np.int64))
    texts += list(EDGE_TEXTS)
    return ParitySamples(np.concatenate(parts_ids), np.concatenate(parts_labels), texts)


def torch_logits(model: nn.Module, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """PyTorch's logits for int id rows, as float32 NumPy (the reference side of parity)."""
    return predict_logits(model, torch.from_numpy(ids).long(), batch_size).float().numpy()


def coreml_runtime_available() -> bool:
    if sys.platform != "darwin":
        return False
    try:
        from coremltools.libcoremlpython import _MLModelProxy  # noqa: F401
    except ImportError:
        return False
    return True


class CoreMLRuntime:
    """Runs a saved artifact through Core ML itself (macOS only)."""

    def __init__(self, path: Path, compute_units: str):
        import coremltools as ct

        self.backend = "coreml-runtime"
        self.compute_units = compute_units
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))

    def predict(self, ids: np.ndarray) -> np.ndarray:
        rows = [
            np.asarray(
                self.model.predict({INPUT_NAME: row.reshape(1, SEQ_LEN).astype(np.int32)})[OUTPUT_NAME]
            )
            for row in ids
        ]
        return np.stack([r.reshape(-1) for r in rows]).astype(np.float32)


def artifact_runners(path: Path) -> list:
    """Everything that will score the artifact here: Core ML on a Mac, the executor elsewhere."""
    if coreml_runtime_available():
        return [CoreMLRuntime(path, "CPU_ONLY"), CoreMLRuntime(path, "ALL")]
    from layoutnet.export.executor import load_executor

    return [load_executor(path)]


@dataclass
class ParityResult:
    backend: str
    compute_units: str | None
    samples: int
    labelled_samples: int
    tolerance: float
    max_prob_diff: float
    max_logit_diff: float
    argmax_agreement: float
    torch_accuracy: float | None
    artifact_accuracy: float | None
    seconds: float
    worst: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.max_prob_diff <= self.tolerance

    def report(self) -> dict:
        return {
            "backend": self.backend,
            "compute_units": self.compute_units,
            "passed": self.passed,
            "samples": self.samples,
            "labelled_samples": self.labelled_samples,
            "tolerance": self.tolerance,
            "max_prob_diff": self.max_prob_diff,
            "max_logit_diff": self.max_logit_diff,
            "argmax_agreement": self.argmax_agreement,
            "torch_accuracy": self.torch_accuracy,
            "artifact_accuracy": self.artifact_accuracy,
            "seconds": round(self.seconds, 3),
            "worst_sample": self.worst,
        }

    def failure_message(self) -> str:
        w = self.worst
        return (
            f"parity failed ({self.backend}): max |softmax difference| {self.max_prob_diff:.4g} > tolerance "
            f"{self.tolerance} over {self.samples} samples (argmax agreement {self.argmax_agreement:.4f}).\n"
            f"  worst sample: {w.get('text')!r}\n  ids:      {w.get('input_ids')}\n"
            f"  pytorch:  {w.get('torch_probs')}\n  artifact: {w.get('artifact_probs')}\n"
            "Try export.precision=fp32, or check the artifact and converter version."
        )


def _compare(
    runner,
    reference: np.ndarray,
    candidate: np.ndarray,
    samples: ParitySamples,
    tolerance: float,
    seconds: float,
) -> ParityResult:
    ref_probs, cand_probs = softmax(reference), softmax(candidate)
    prob_diff = np.abs(ref_probs - cand_probs).max(axis=1)
    worst_index = int(prob_diff.argmax())
    labelled = samples.labels >= 0
    ref_pred, cand_pred = ref_probs.argmax(1), cand_probs.argmax(1)

    def accuracy(pred: np.ndarray) -> float | None:
        return float((pred[labelled] == samples.labels[labelled]).mean()) if labelled.any() else None

    worst = {
        "text": samples.texts[worst_index],
        "input_ids": samples.ids[worst_index].tolist(),
        "torch_probs": [round(float(p), 6) for p in ref_probs[worst_index]],
        "artifact_probs": [round(float(p), 6) for p in cand_probs[worst_index]],
        "prob_diff": float(prob_diff[worst_index]),
    }
    return ParityResult(
        backend=runner.backend,
        compute_units=getattr(runner, "compute_units", None),
        samples=len(samples),
        labelled_samples=int(labelled.sum()),
        tolerance=tolerance,
        max_prob_diff=float(prob_diff.max()),
        max_logit_diff=float(np.abs(reference - candidate).max()),
        argmax_agreement=float((ref_pred == cand_pred).mean()),
        torch_accuracy=accuracy(ref_pred),
        artifact_accuracy=accuracy(cand_pred),
        seconds=seconds,
        worst=worst,
    )


def check_parity(artifact: Path, model: nn.Module, samples: ParitySamples, tolerance: float) -> ParityResult:
    """Parity of the artifact on disk with `model`; with several runners the worst one is returned."""
    reference = torch_logits(model, samples.ids)
    results = []
    for runner in artifact_runners(Path(artifact)):
        start = time.perf_counter()
        candidate = runner.predict(samples.ids)
        if candidate.shape != reference.shape:
            raise ExportError(f"artifact output has shape {candidate.shape}, expected {reference.shape}")
        results.append(
            _compare(runner, reference, candidate, samples, tolerance, time.perf_counter() - start)
        )
    return max(results, key=lambda r: r.max_prob_diff)
