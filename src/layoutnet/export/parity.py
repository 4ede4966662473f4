"""Parity of a saved artifact with the PyTorch model it came from.

The artifact is always loaded back from disk, its interface checked against the contract first
(`artifact.open_artifact`). On macOS with the Core ML runtime it is run by Core ML (CPU only and all
compute units); everywhere else by layoutnet's reference executor at fp32, fp16 storage and fp16
arithmetic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from layoutnet.contract import PAD_ID, SEQ_LEN, VOCAB_SIZE, decode, encode
from layoutnet.errors import ExportError
from layoutnet.export.executor.engine import ACCUMULATION_OF
from layoutnet.export.executor.ranges import OpRange
from layoutnet.export.settings import APP_PRECISIONS, ExportSettings
from layoutnet.metrics import softmax
from layoutnet.modelfile import predict_logits

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

    def spread(self, n: int) -> np.ndarray:
        """Indices of at most `n` rows (all when `n` is 0 or covers them): evenly spaced over the
        held-out and random rows, plus every edge case (build_parity_samples puts those last)."""
        if n <= 0 or n >= len(self):
            return np.arange(len(self))
        body = len(self) - len(EDGE_TEXTS)
        keep = np.unique(np.linspace(0, body - 1, max(1, n - len(EDGE_TEXTS))).round().astype(int))
        return np.concatenate([keep, np.arange(body, len(self))])

    def take(self, index: np.ndarray) -> ParitySamples:
        return ParitySamples(self.ids[index], self.labels[index], [self.texts[i] for i in index])


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


def validation_tensors(data_cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out rows (ids, labels) of a `data` config, for parity samples."""
    from layoutnet.config import build

    datamodule = build(data_cfg, "data")
    datamodule.check()
    datamodule.setup("validate")
    return datamodule.val_tensors()


def torch_logits(model: nn.Module, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """PyTorch's logits for int id rows, as float32 NumPy (the reference side of parity)."""
    return predict_logits(model, torch.from_numpy(ids).long(), batch_size).float().numpy()


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
    precision: str | None = None

    @property
    def passed(self) -> bool:
        return self.max_prob_diff <= self.tolerance

    def report(self) -> dict:
        return {
            "backend": self.backend,
            "precision": self.precision,
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
            "Try export.precision=fp32, export.compression=none, export.app_precision=fp32 if the app runs "
            "on the CPU only, or check the artifact and converter version."
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


PRECISION_ORDER = APP_PRECISIONS
"""The executor's precision modes, most to least precise (`settings.APP_PRECISIONS`)."""

DEVICES = {
    "fp32": "CPU (.cpuOnly): float32",
    "fp16_storage": "GPU, Core ML's default: float16 tensors, float32 accumulation",
    "fp16_wide": "Neural Engine hypothesis: float16 products into a wide accumulator",
    "fp16": "float16 products summed in a pairwise float16 tree",
    "fp16_sequential": "GPU allowed low-precision accumulation: one running float16 sum",
}
"""What each precision mode stands for on Apple hardware (reported beside its figures)."""

FP16_ARITHMETIC = tuple(ACCUMULATION_OF)
"""The modes with true fp16 arithmetic: checked on `samples.spread(fp16_arithmetic_samples)` rows."""


def bracket(app_precision: str, file_precision: str) -> list[str]:
    """The precisions whose parity must hold: every mode from the most precise the file can run at
    (an fp16 file is never computed from fp32 weights: fp16 storage) to the app's."""
    floor = PRECISION_ORDER.index("fp16_storage" if file_precision == "fp16" else "fp32")
    top = max(floor, PRECISION_ORDER.index(app_precision))
    return list(PRECISION_ORDER[floor : top + 1])


FP16_MAX = 65504.0
"""The largest finite float16."""
MATRIX_OUTPUT_CEILING = 32768.0
"""The output ceiling of the Neural Engine's matrix and convolution units (reverse-engineering write-up)."""
EXP_LIMIT = math.log(FP16_MAX)
"""The largest x whose exp(x) is a finite float16 (11.09)."""


@dataclass
class RangeGuard:
    """One range check of the largest values the model computes (`executor.ranges`) against a limit."""

    name: str
    what: str
    limit: float
    largest: float
    op: str  # where the largest value is: "<op name> (<op type>)"
    gates: bool  # part of the gate at the app's precision (else reported only)

    @property
    def passed(self) -> bool:
        return self.largest < self.limit

    @property
    def margin(self) -> float:
        """How far below the limit the largest value stays: a factor (limit / largest), or for the
        exponent's input a difference (limit - largest)."""
        if self.name == "exp_inputs":
            return self.limit - self.largest
        return math.inf if self.largest <= 0 else self.limit / self.largest

    def report(self) -> dict:
        return {
            "what": self.what,
            "limit": self.limit,
            "largest": self.largest,
            "op": self.op,
            "margin": self.margin,
            "passed": self.passed,
            "gates": self.gates,
        }


def range_guards(ranges: list[OpRange], bracket_modes: list[str]) -> list[RangeGuard]:
    """The range guards of a model's op ranges; which gate depends on the modes of the bracket:
    fp16 storage (values), the Neural Engine hypothesis (matrix outputs) and fp16 partial sums."""

    def largest(entries: list[tuple[float, OpRange]]) -> tuple[float, str]:
        value, entry = max(entries, key=lambda e: e[0], default=(0.0, None))
        return value, "" if entry is None else f"{entry.name} ({entry.op_type})"

    stored = any(m != "fp32" for m in bracket_modes)
    fp16_sums = any(m in ("fp16", "fp16_sequential") for m in bracket_modes)
    guards = [
        RangeGuard(
            "values",
            "largest |value| of every op against float16's largest (65504)",
            FP16_MAX,
            *largest([(r.output, r) for r in ranges]),
            gates=stored,
        ),
        RangeGuard(
            "matrix_outputs",
            "largest |output| of matrix products and convolutions against the Neural Engine's 32768",
            MATRIX_OUTPUT_CEILING,
            *largest([(r.output, r) for r in ranges if r.matrix]),
            gates="fp16_wide" in bracket_modes,
        ),
        RangeGuard(
            "accumulators",
            "largest |partial sum| of matrix products and convolutions in any order against 65504",
            FP16_MAX,
            *largest([(r.accumulator, r) for r in ranges if r.accumulator is not None]),
            gates=fp16_sums,
        ),
    ]
    exp_inputs = [(r.exp_input, r) for r in ranges if r.exp_input is not None]
    if exp_inputs:
        guards.append(
            RangeGuard(
                "exp_inputs",
                "largest input of softmax / exp against ln(65504) = 11.09, the headroom of a device that "
                "exponentiates before subtracting the row maximum",
                EXP_LIMIT,
                *largest(exp_inputs),
                gates=False,
            )
        )
    return guards


@dataclass
class ParityCheck:
    """Parity at every precision the artifact may run at here, which must pass, and the range guards."""

    results: dict[str, ParityResult]  # precision (or Core ML compute units) -> result
    required: list[str]
    guards: list[RangeGuard] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        results_pass = all(self.results[name].passed for name in self.required)
        return results_pass and all(g.passed for g in self.guards if g.gates)

    @property
    def governing(self) -> ParityResult:
        """The worst required result (what the app would see at its precision)."""
        return max((self.results[n] for n in self.required), key=lambda r: r.max_prob_diff)

    def report(self) -> dict:
        return {**self.governing.report(), "passed": self.passed, "required": self.required}

    def by_precision(self) -> dict:
        return {
            name: {
                "device": DEVICES.get(name, name),
                "samples": r.samples,
                "max_prob_diff": r.max_prob_diff,
                "margin": r.tolerance - r.max_prob_diff,
                "max_logit_diff": r.max_logit_diff,
                "argmax_agreement": r.argmax_agreement,
                "artifact_accuracy": r.artifact_accuracy,
                "passed": r.passed,
                "required": name in self.required,
                "seconds": round(r.seconds, 3),
            }
            for name, r in self.results.items()
        }

    def guards_report(self) -> dict:
        return {g.name: g.report() for g in self.guards}

    def failure_message(self) -> str:
        failed = [n for n in self.required if not self.results[n].passed]
        guards = [g for g in self.guards if g.gates and not g.passed]
        lines = []
        if failed:
            figures = ", ".join(f"{n} {r.max_prob_diff:.3g}" for n, r in self.results.items())
            lines.append(
                f"parity failed at {', '.join(failed)} (in the bracket of export.app_precision: "
                f"{', '.join(self.required)}); max |softmax difference| by precision: {figures}."
            )
        for g in guards:
            lines.append(
                f"range guard {g.name} failed: {g.op} reaches {g.largest:.6g} >= {g.limit:.6g} ({g.what})."
            )
        detail = (
            self.results[failed[0]].failure_message()
            if failed
            else (
                "Scale the layer's inputs down (normalise before it), or set export.app_precision to a "
                "bracket the app really uses (fp32 for .cpuOnly)."
            )
        )
        return "\n".join(lines) + "\n" + detail


def check_parity(
    artifact: Path,
    model: nn.Module,
    samples: ParitySamples,
    tolerance: float,
    app_precision: str = "fp32",
    file_precision: str = "fp32",
    fp16_arithmetic_samples: int = 0,
) -> ParityCheck:
    """Parity of the artifact on disk with `model` (for a compressed artifact: the model carrying the
    artifact's own decompressed weights, `compression.with_file_weights`), and the range guards.

    The artifact's interface is checked first (`open_artifact`). On a Mac it is run by Core ML with
    CPU only and with all compute units, and both must pass. Elsewhere the reference executor runs
    it at every precision of `PRECISION_ORDER`; all are reported and those of the app's bracket
    (`bracket`) must pass. The fp16-arithmetic modes run on `samples.spread(fp16_arithmetic_samples)`
    (0: every row), the others on every row. The range guards read the fp32 run (every row).
    """
    from layoutnet.export.artifact import CoreMLRuntime, coreml_runtime_available, open_artifact
    from layoutnet.export.executor import load_executor
    from layoutnet.export.executor.ranges import observed_run

    reference = torch_logits(model, samples.ids)
    modes = bracket(app_precision, file_precision)
    ranges = None
    if coreml_runtime_available():
        open_artifact(artifact)  # the interface check
        runners = {f"coreml {u}": CoreMLRuntime(Path(artifact), u) for u in ("CPU_ONLY", "ALL")}
        required = list(runners)
        _, ranges = observed_run(load_executor(artifact, precision="fp32"), samples.ids)
    else:
        runners = {p: open_artifact(artifact, precision=p).runner for p in PRECISION_ORDER}
        required = modes
    results = {}
    for name, runner in runners.items():
        index = samples.spread(fp16_arithmetic_samples if name in FP16_ARITHMETIC else 0)
        rows, expected = samples.take(index), reference[index]
        start = time.perf_counter()
        if ranges is None and name == "fp32":  # the fp32 run records the op ranges too
            candidate, ranges = observed_run(runner.executor, rows.ids)
        else:
            candidate = runner.predict(rows.ids)
        if candidate.shape != expected.shape:
            raise ExportError(f"artifact output has shape {candidate.shape}, expected {expected.shape}")
        results[name] = _compare(runner, expected, candidate, rows, tolerance, time.perf_counter() - start)
        results[name].precision = name
    return ParityCheck(results, required, range_guards(ranges or [], modes))


def check_with_settings(
    artifact: Path, model: nn.Module, samples: ParitySamples, settings: ExportSettings, file_precision: str
) -> ParityCheck:
    """`check_parity` with an export's settings: its tolerance, app precision and fp16-arithmetic rows."""
    return check_parity(
        artifact,
        model,
        samples,
        settings.tolerance,
        settings.app_precision,
        file_precision,
        settings.fp16_arithmetic_samples,
    )
