"""The outcome of an export (or a validation) as one typed object. `reporting.record.record_export`
writes it into `report.json` (the `export` section, or `validation` for `python -m
layoutnet.export.validate`) and prints its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from layoutnet.errors import ExportError


@dataclass
class ExportResult:
    status: str = "failed"  # ok | failed | disabled
    path: str | None = None  # the published (or validated) artifact
    export_dir: str | None = None
    format: str | None = None
    precision: str | None = None
    frontend: str | None = None
    compression: str | None = None  # the level of the artifact (what export.compression=auto chose)
    app_precision: str | None = None
    weights: str | None = None  # where the PyTorch weights came from
    artifact_size_bytes: int | None = None
    interface: dict | None = None
    capture: dict | None = None
    parity: dict | None = None  # the required precision's figures (backend, max_prob_diff, ...)
    parity_by_precision: dict | None = None  # every precision mode's figures (the device bracket)
    range_guards: dict | None = None  # largest values against float16's and the Neural Engine's limits
    # a compressed artifact: its size and cost against the uncompressed model (accuracy, real text, harm)
    compression_cost: dict | None = None
    compression_trials: list | None = None  # export.compression=auto: each level tried, and its outcome
    accuracy: dict | None = None  # {"torch": ..., "artifact": ..., "labelled_samples": ...}
    parity_vectors: str | None = None
    manifest: str | None = None
    handoff: str | None = None  # how the folder was published: rename | exchange | two renames (why)
    manifest_check: str | None = None  # validate: "ok", "no manifest", or the mismatches
    app_metadata: dict = field(default_factory=dict)
    settings: dict | None = None
    versions: dict | None = None
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    failed_dir: str | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def take_parity(self, check) -> None:
        """The figures of a `parity.ParityCheck`: the required precision's, every precision's, and the
        accuracies of PyTorch and the artifact on the labelled rows."""
        self.parity = check.report()
        self.parity_by_precision = check.by_precision()
        self.range_guards = check.guards_report()
        governing = check.governing
        self.accuracy = {
            "torch": governing.torch_accuracy,
            "artifact": governing.artifact_accuracy,
            "labelled_samples": governing.labelled_samples,
        }

    def section(self) -> dict:
        """The report section: every field that has a value; `size_bytes` is kept for older readers."""
        values = {k: v for k, v in asdict(self).items() if v is not None and v != [] and v != {}}
        if self.artifact_size_bytes is not None:
            values["size_bytes"] = self.artifact_size_bytes
        return values


class ExportFailure(ExportError):
    """An export (or validation) that failed, carrying its result for the report."""

    def __init__(self, message: str, result: ExportResult):
        super().__init__(message)
        self.result = result
