"""`python -m layoutnet [+experiment=NAME] [overrides]`: train, export, report."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from layoutnet.checkpoints import best_checkpoint_path, load_net
from layoutnet.cli import exit_on_user_error
from layoutnet.config import CONF_DIR, build, to_plain
from layoutnet.contract import CLASSES
from layoutnet.errors import ConfigError
from layoutnet.export.settings import ExportSettings
from layoutnet.metrics import classification_summary, predict_logits
from layoutnet.plots import save_confusion_matrix, save_training_curves
from layoutnet.report import update_report, versions

log = logging.getLogger(__name__)


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


@contextlib.contextmanager
def _ddp_ranks_run_this_job_only(run_dir: Path) -> Iterator[None]:
    """DDP inside a multirun. Lightning starts ranks > 0 by re-running `sys.argv` with
    `hydra.run.dir=<HydraConfig run.dir>`, which would re-run the whole sweep: make them run this job
    only, in this job's directory; afterwards leave no process group and no DDP environment variables
    (LOCAL_RANK, WORLD_SIZE, MASTER_PORT, ...) behind for the next job in this process."""
    hydra_cfg = HydraConfig.get()
    argv, environ = list(sys.argv), dict(os.environ)
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, "hydra.mode=RUN"]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(run_dir)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)


def _report(directory: Path, **sections) -> None:
    if rank_zero_only.rank == 0:
        update_report(directory, **sections)


class Run:
    """One training run: validated objects, fit, evaluation of the best weights, report."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir
        self.trainer: pl.Trainer | None = None
        self.module = None
        self.datamodule = None
        self.timings: dict[str, float] = {}
        self.init_info: dict | None = None
        self.cleanup = contextlib.ExitStack()

    def prepare(self) -> None:
        """Build and check everything; any bad value is refused here, before training."""
        cfg = self.cfg
        if cfg.get("export") is not None:
            ExportSettings.from_config(cfg.export)
        if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
            raise ConfigError(
                "ckpt_path", cfg.ckpt_path, "file not found; pass a run's checkpoints/last.ckpt"
            )
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        from layoutnet.data.datamodule import as_datamodule

        self.datamodule = as_datamodule(build(cfg.data, "data"))
        self.datamodule.check()
        self.module = build(cfg.model, "model")
        self.module.net_config = to_plain(cfg.model.net)
        if cfg.get("init_from"):
            from layoutnet.legacy import init_from_legacy

            self.init_info = init_from_legacy(self.module.net, cfg.init_from, cfg.get("init_legacy", "auto"))
            log.info("initialised model.net from %s: %s", cfg.init_from, self.init_info)
        callbacks = [
            build(node, f"callbacks.{name}")
            for name, node in (cfg.get("callbacks") or {}).items()
            if node is not None
        ]
        loggers = [
            build(node, f"logger.{name}")
            for name, node in (cfg.get("logger") or {}).items()
            if node is not None
        ]
        self.trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)

    def fit(self) -> None:
        if _is_multirun() and self.trainer.world_size > 1:
            self.cleanup.enter_context(_ddp_ranks_run_this_job_only(self.run_dir))
        start = time.perf_counter()
        try:
            self.trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=self.cfg.get("ckpt_path"))
        finally:
            self.timings["fit_seconds"] = round(time.perf_counter() - start, 2)

    def best_checkpoint(self) -> str | None:
        return best_checkpoint_path(self.trainer)

    def training_section(self) -> dict:
        callback = self.trainer.checkpoint_callback if self.trainer else None
        score = getattr(callback, "best_model_score", None) if callback else None
        return {
            "family": self.module.family if self.module else None,
            "parameters": self.module.num_parameters if self.module else None,
            "best_val_accuracy": None if score is None else float(score),
            "epochs": self.trainer.current_epoch if self.trainer else None,
            "global_step": self.trainer.global_step if self.trainer else None,
        }

    def evaluate_best(self) -> dict:
        """Per-class accuracy and confusion matrix of the best weights on the fixed validation set."""
        best = self.best_checkpoint()
        net = load_net(best)[0] if best else self.module.net
        ids, labels = self.datamodule.val_tensors()
        logits = predict_logits(net, ids)
        return classification_summary(logits.argmax(1).numpy(), labels.numpy())

    def test(self) -> dict:
        best = "best" if self.best_checkpoint() else None
        results = self.trainer.test(self.module, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        return {k: float(v) for k, v in (results[0] if results else {}).items()}


def run(cfg: DictConfig) -> float | None:
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    runner = Run(cfg, run_dir)
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    _report(
        run_dir,
        status="running",
        experiment=cfg.get("task_name"),
        overrides=overrides,
        run_dir=str(run_dir),
        versions=versions(),
        data=None,
        training=None,
    )
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    try:
        runner.prepare()
        _report(
            run_dir,
            data=runner.datamodule.describe(),
            training=runner.training_section(),
            init_from=runner.init_info,
        )
        runner.fit()
        sections: dict = {"training": runner.training_section()}
        if runner.trainer.is_global_zero:
            evaluation = runner.evaluate_best()
            sections["validation"] = evaluation
            save_confusion_matrix(
                evaluation["confusion_matrix"],
                run_dir / "plots" / "confusion_matrix.png",
                title=f"{cfg.get('task_name')}: validation confusion matrix",
            )
            save_training_curves(run_dir, run_dir / "plots" / "training_curves.png")
        if cfg.get("test"):
            sections["test"] = runner.test()
        best_score = sections["training"]["best_val_accuracy"]
        _report(run_dir, status="ok", **sections, paths=_paths(runner), timings=_timings(runner, started))
        if rank_zero_only.rank == 0:
            _print_result(run_dir, sections)
        return best_score
    except BaseException as exc:
        training = runner.training_section() if runner.trainer else None
        _report(
            run_dir,
            status="failed",
            error=_failure_text(exc, run_dir),
            training=training,
            paths=_paths(runner),
            timings=_timings(runner, started),
        )
        if _is_multirun() and isinstance(exc, Exception):
            log.error("job failed, the sweep goes on: %s: %s", type(exc).__name__, exc)
            return None
        raise
    finally:
        runner.cleanup.close()


def _failure_text(exc: BaseException, run_dir: Path) -> str:
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    if isinstance(exc, KeyboardInterrupt | SystemExit) and interrupted.exists():
        return (
            f"interrupted ({type(exc).__name__}); resume with the same overrides and ckpt_path={interrupted}"
        )
    return f"{type(exc).__name__}: {exc}"


def _paths(runner: Run) -> dict:
    run_dir = runner.run_dir
    return {
        "run_dir": str(run_dir),
        "best_checkpoint": runner.best_checkpoint(),
        "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt")
        if (run_dir / "checkpoints" / "last.ckpt").exists()
        else None,
        "config": str(run_dir / "config_resolved.yaml"),
    }


def _timings(runner: Run, started: float) -> dict:
    return {**runner.timings, "total_seconds": round(time.perf_counter() - started, 2)}


def _print_result(run_dir: Path, sections: dict) -> None:
    console = Console()
    training = sections["training"]
    console.print(f"[bold]run[/] {run_dir}")
    console.print(
        f"  {training['family']} with {training['parameters']:,} parameters; best val/acc "
        f"{training['best_val_accuracy']:.4f}"
    )
    per_class = sections.get("validation", {}).get("per_class_accuracy", {})
    if per_class:
        console.print(
            "  per class: "
            + ", ".join(f"{c} {per_class[c]:.3f}" for c in CLASSES if per_class.get(c) is not None)
        )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return exit_on_user_error(lambda: run(cfg))


if __name__ == "__main__":
    main()
