"""`python -m layoutnet.validate artifact=<.mlpackage|.mlmodel> ckpt_path=<.ckpt|.pth>`: re-run only
the parity check of an existing artifact against the checkpoint it came from."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from layoutnet.cli import exit_on_user_error
from layoutnet.config import CONF_DIR
from layoutnet.errors import ConfigError, ExportError
from layoutnet.export.cli import validation_tensors
from layoutnet.export.parity import build_parity_samples, check_parity
from layoutnet.export.publish import artifact_size
from layoutnet.export.summary import print_export_summary
from layoutnet.loading import COREML_SUFFIXES, load_model
from layoutnet.report import update_report
from layoutnet.runtime import apply_threads


def run_validate(cfg: DictConfig) -> dict:
    artifact = Path(cfg.artifact) if cfg.get("artifact") else None
    if artifact is None or artifact.suffix not in COREML_SUFFIXES or not artifact.exists():
        raise ConfigError("artifact", cfg.get("artifact"), "must be an existing .mlpackage or .mlmodel")
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path", None, "required: the checkpoint the artifact was exported from")
    loaded = load_model(cfg.ckpt_path, cfg.get("legacy"))
    val_ids, val_labels = validation_tensors(cfg)
    samples = build_parity_samples(val_ids, val_labels, cfg.export.parity_samples, cfg.export.random_samples)
    result = check_parity(artifact, loaded.net, samples, cfg.export.tolerance)
    section = {
        "status": "ok" if result.passed else "failed",
        "path": str(artifact),
        "format": "mlprogram" if artifact.suffix == ".mlpackage" else "neuralnetwork",
        "precision": "as saved",
        "size_bytes": artifact_size(artifact),
        "parity": result.report(),
        "weights": loaded.source,
    }
    if not result.passed:
        section["error"] = result.failure_message()
    update_report(
        Path(cfg.paths.output_dir), command="validate", status=section["status"], validation=section
    )
    print_export_summary(section)
    if not result.passed:
        raise ExportError(result.failure_message())
    return section


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="validate")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(lambda: apply_threads(cfg.get("runtime")))
    return exit_on_user_error(lambda: run_validate(cfg))


if __name__ == "__main__":
    main()
