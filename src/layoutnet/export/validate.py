"""`python -m layoutnet.export.validate artifact=<.mlpackage|.mlmodel> ckpt_path=<.ckpt|.pth>`: check
an existing artifact as an export does, without publishing anything: its interface against the
contract, the checksums in the `manifest.json` beside it, and parity with the checkpoint it came
from at every precision (those of the `export.app_precision` bracket must pass) - for a compressed
artifact, with the file's own decompressed weights, after the compression's cost against the
checkpoint is held to `export.compression_budget`."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console

from layoutnet.commandline import run_command
from layoutnet.config import CONF_DIR
from layoutnet.errors import ConfigError, ExportError
from layoutnet.export.artifact import COREML_SUFFIXES, read_interface
from layoutnet.export.compression import CostMeter, with_file_weights
from layoutnet.export.notices import NoticeCollector
from layoutnet.export.parity import build_parity_samples, check_with_settings, validation_tensors
from layoutnet.export.pipeline import read_manifest
from layoutnet.export.publish import ExportFolder, artifact_size, verify_manifest
from layoutnet.export.result import ExportFailure, ExportResult
from layoutnet.export.settings import ExportSettings
from layoutnet.modelfile import open_model
from layoutnet.reporting.record import record_export
from layoutnet.reporting.runreport import REPORT_FILE, versions


def check_manifest(artifact: Path) -> str:
    """ "ok" when every checksum in the manifest beside `artifact` matches; raises ExportError otherwise."""
    manifest = read_manifest(artifact.parent)
    if manifest is None:
        return "no manifest.json beside the artifact (an older export): checksums not checked"
    if manifest.get("artifact") != artifact.name:
        raise ExportError(
            f"{artifact.parent / 'manifest.json'} describes {manifest.get('artifact')!r}, "
            f"not {artifact.name!r}"
        )
    problems = verify_manifest(artifact, manifest)
    if problems:
        raise ExportError(
            f"{artifact} does not match its manifest.json: "
            + "; ".join(problems)
            + ". The folder was changed "
            "after export (or copied incompletely); re-export or copy the whole export folder again."
        )
    return f"ok ({len(manifest['files'])} files, sha256)"


def _compression_checked(artifact, model, interface, settings, result, val_ids, val_labels):
    """A compressed artifact: the checkpoint's model with the file's decompressed weights (what its
    parity is measured against), after its cost against the checkpoint is measured and held to
    `export.compression_budget` (at the correction threshold the file carries, else its own)."""
    from layoutnet.quality import METADATA_KEY, correction_threshold, parse_threshold

    twin, placed = with_file_weights(model, artifact)
    given = interface.metadata.get(METADATA_KEY)
    threshold = parse_threshold(given, f"{artifact} metadata {METADATA_KEY}") if given else None
    meter = CostMeter(model, val_ids, val_labels, correction_threshold(model))
    cost = meter.cost(
        result.compression, twin, correction_threshold(twin) if threshold is None else threshold
    )
    cost.size_bytes, cost.weights = result.artifact_size_bytes, placed
    result.compression_cost = cost.report(settings.compression_budget)
    over = cost.violations(settings.compression_budget)
    if over:
        raise ExportError(
            f"{artifact} ({result.compression}) costs more than export.compression_budget allows: "
            + "; ".join(over)
        )
    return twin


def validate_artifact(cfg: DictConfig, console: Console | None = None) -> ExportResult:
    settings = ExportSettings.from_config(cfg.export)
    artifact = Path(str(cfg.artifact)).expanduser() if cfg.get("artifact") else None
    if artifact is None or artifact.suffix not in COREML_SUFFIXES:
        raise ConfigError("artifact", cfg.get("artifact"), "must be an existing .mlpackage or .mlmodel")
    if not artifact.exists():
        ExportFolder(artifact.parent).recover()  # an export killed while publishing: put the old one back
    if not artifact.exists():
        raise ConfigError("artifact", cfg.get("artifact"), "must be an existing .mlpackage or .mlmodel")
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path", None, "required: the checkpoint the artifact was exported from")
    result = ExportResult(
        path=str(artifact), export_dir=str(artifact.parent), app_precision=settings.app_precision
    )
    with NoticeCollector() as notices:
        result.versions = versions(lightning=False)
        try:
            interface = read_interface(artifact)
            result.interface = interface.report()
            result.format = interface.format
            result.precision = interface.metadata.get("precision", "fp32")
            result.frontend = interface.metadata.get("frontend", "trace")
            result.compression = interface.metadata.get("compression", "none")
            result.app_metadata = {
                k: v for k, v in (read_manifest(artifact.parent) or {}).get("app_metadata", {}).items()
            }
            result.artifact_size_bytes = artifact_size(artifact)
            result.manifest_check = check_manifest(artifact)
            loaded = open_model(cfg.ckpt_path, cfg.get("legacy"))
            if loaded.net is None:
                raise ConfigError(
                    "ckpt_path", cfg.ckpt_path, "must be the .ckpt or legacy .pth the artifact came from"
                )
            result.weights = loaded.source
            val_ids, val_labels = validation_tensors(cfg.data)
            samples = build_parity_samples(
                val_ids, val_labels, settings.parity_samples, settings.random_samples
            )
            reference = loaded.net
            if result.compression != "none":
                reference = _compression_checked(
                    artifact, loaded.net, interface, settings, result, val_ids, val_labels
                )
            check = check_with_settings(artifact, reference, samples, settings, result.precision)
            result.take_parity(check)
            if not check.passed:
                raise ExportError(check.failure_message())
            result.status = "ok"
        except ExportError as exc:
            result.error = str(exc)
    result.warnings = [n.report() for n in notices.items]
    record_export(
        Path(cfg.paths.output_dir),
        result,
        section="validation",
        top_level=True,
        console=console,
        files={"report": Path(cfg.paths.output_dir) / REPORT_FILE},
        command="validate",
    )
    if not result.ok:
        raise ExportFailure(result.error, result)
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="validate")
def main(cfg: DictConfig) -> None:
    run_command(cfg, validate_artifact)


if __name__ == "__main__":
    main()
