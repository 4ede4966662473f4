"""One training run, start to end: the run directory's report and config, every value checked before
training (`Run.prepare`), the fit, the best weights evaluated and drawn, the export (by its callback),
the report, and the objective a sweeper reads. Interrupted, failed and requeued runs end here too.
`python -m layoutnet` (`train.py`) runs `run(cfg)`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from layoutnet.callbacks import AdaptiveThreads
from layoutnet.config import build, check_trainer_settings, require_values
from layoutnet.errors import ConfigError
from layoutnet.export.callback import CoreMLExportCallback
from layoutnet.export.settings import ExportSettings
from layoutnet.metrics import classification_summary
from layoutnet.modelfile import best_checkpoint_path, check_resume_checkpoint, load_net, predict_logits
from layoutnet.reporting.console import display_path, print_fields, print_run_result
from layoutnet.reporting.objective import objective_name, objective_value
from layoutnet.reporting.pictures import save_confusion_matrix, save_training_curves
from layoutnet.reporting.runreport import read_report, update_report, versions
from layoutnet.runtime import (
    GUARD,
    RunInterrupted,
    apply_threads,
    exit_code,
    quiet_third_party,
    resume_command,
    submitit_job_id,
)

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

    def __init__(self, cfg: DictConfig, run_dir: Path, threads: dict | None = None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.threads = threads or {}
        # runtime.threads=auto: the count follows the load during the fit
        self.adaptive = AdaptiveThreads() if self.threads.get("adaptive") else None
        self.trainer: pl.Trainer | None = None
        self.module = None
        self.datamodule = None
        self.timings: dict[str, float] = {}
        self.init_info: dict | None = None
        self.cleanup = contextlib.ExitStack()

    def prepare(self) -> None:
        """Build and check everything; any bad value is refused here, before training."""
        cfg = self.cfg
        # the export settings are checked once, here, and the callback gets the checked object
        export_settings = ExportSettings.from_config(cfg.export) if cfg.get("export") is not None else None
        check_trainer_settings(cfg.get("trainer"))
        if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
            raise ConfigError(
                "ckpt_path", cfg.ckpt_path, "file not found; pass a run's checkpoints/last.ckpt"
            )
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        self.module = build(cfg.model, "model")
        if cfg.get("ckpt_path"):
            check_resume_checkpoint(cfg.ckpt_path, self.module.net, self.module.net_spec)
        from layoutnet.data.datamodule import as_datamodule

        self.datamodule = as_datamodule(build(cfg.data, "data"))
        self.datamodule.check()
        self.module.label_meaning = self.datamodule.label_meaning()
        if cfg.get("init_from"):
            from layoutnet.legacy import init_from_legacy

            self.init_info = init_from_legacy(self.module.net, cfg.init_from, cfg.get("init_legacy", "auto"))
            log.info("initialised model.net from %s: %s", cfg.init_from, self.init_info)
        callbacks = [
            build(node, f"callbacks.{name}")
            for name, node in (cfg.get("callbacks") or {}).items()
            if node is not None
        ]
        if self.adaptive is not None:
            callbacks.append(self.adaptive)
        if export_settings is not None:
            callbacks.append(CoreMLExportCallback(export_settings, str(self.run_dir)))
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


def _requeued_checkpoint(run_dir: Path, job_id: str | None) -> Path | None:
    """A submitit job requeued after SLURM's time limit or a preemption runs again in its own run
    directory: continue from the checkpoint its previous attempt left. Only then does a run resume
    without `ckpt_path=` (same directory, same scheduler job id, previous attempt interrupted)."""
    if job_id is None:
        return None
    previous = read_report(run_dir)
    if previous.get("status") != "interrupted" or (previous.get("scheduler") or {}).get("job_id") != job_id:
        return None
    for name in ("interrupted.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    return None


REQUIRED_HINTS = {
    "teacher_ckpt": "the teacher: a layoutnet run's checkpoints/best.ckpt or a legacy OMFK .pth",
    "data.path": "the training CSV (text,label)",
}
"""What to give for the `???` values of the training configs (conf/experiment/distill.yaml, data/csv)."""


def run(cfg: DictConfig) -> float | None:
    require_values(cfg, REQUIRED_HINTS)
    run_dir = Path(cfg.paths.output_dir)
    objective = objective_name(cfg)
    started = time.perf_counter()
    threads = apply_threads(cfg.get("runtime"))
    quiet_third_party()
    runner = Run(cfg, run_dir, threads)
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    job_id = submitit_job_id()
    requeued = _requeued_checkpoint(run_dir, job_id) if not cfg.get("ckpt_path") else None
    if requeued is not None:
        with open_dict(cfg):
            cfg.ckpt_path = str(requeued)
        log.info("requeued job %s: resuming from %s", job_id, requeued)
    elif (run_dir / "checkpoints").is_dir() and rank_zero_only.rank == 0:
        log.warning(
            "%s already holds another run's checkpoints: this run starts from scratch and replaces them "
            "(to continue that run, pass ckpt_path=)",
            run_dir,
        )
    no_validation = _adapt_to_missing_validation(cfg)
    GUARD.install()
    if rank_zero_only.rank == 0:
        _print_header(cfg, run_dir, threads, no_validation)
    _report(
        run_dir,
        status="running",
        experiment=cfg.get("task_name"),
        overrides=overrides,
        run_dir=str(run_dir),
        versions=versions(),
        runtime=threads,
        scheduler={"job_id": job_id, "resumed_from": str(requeued) if requeued else None} if job_id else None,
        resumed_from=cfg.get("ckpt_path"),
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
        _report(
            run_dir,
            status="ok",
            **sections,
            runtime=_runtime(runner),
            paths=_paths(runner),
            timings=_timings(runner, started),
        )
        if rank_zero_only.rank == 0:
            print_run_result(run_dir, read_report(run_dir))
        return objective_value(objective, read_report(run_dir), runner.trainer.callback_metrics)
    except BaseException as exc:
        training = runner.training_section() if runner.trainer else None
        signum = GUARD.pending() if isinstance(exc, RunInterrupted | SystemExit | KeyboardInterrupt) else None
        if signum is not None:
            _interrupted(runner, signum, overrides, training, started)
        _report(
            run_dir,
            status="failed",
            error=_failure_text(exc, run_dir),
            training=training,
            runtime=_runtime(runner),
            paths=_paths(runner),
            timings=_timings(runner, started),
        )
        if _is_multirun() and isinstance(exc, Exception):
            log.error("job failed, the sweep goes on: %s: %s", type(exc).__name__, exc)
            return None
        raise
    finally:
        GUARD.restore()
        runner.cleanup.close()


def _interrupted(runner: Run, signum: int, overrides: list[str], training: dict | None, started: float):
    """Report and print how to continue a run stopped by a signal, then exit 128 + signal number
    (130 for SIGINT, 143 for SIGTERM). In a submitit job stopped by its preemption signal, submitit
    requeues the job instead (it resumes from this checkpoint by itself)."""
    run_dir = runner.run_dir
    name = signal.Signals(signum).name
    checkpoint = next(
        (
            run_dir / "checkpoints" / f
            for f in ("interrupted.ckpt", "last.ckpt")
            if (run_dir / "checkpoints" / f).is_file()
        ),
        None,
    )
    command = resume_command(overrides, checkpoint) if checkpoint else None
    _report(
        run_dir,
        status="interrupted",
        error=f"stopped by {name}",
        signal=name,
        resume={"ckpt_path": str(checkpoint) if checkpoint else None, "command": command},
        training=training,
        runtime=_runtime(runner),
        paths=_paths(runner),
        timings=_timings(runner, started),
    )
    if rank_zero_only.rank == 0:
        console = Console(stderr=True, soft_wrap=True, highlight=False)
        step = (training or {}).get("global_step")
        where = f" at step {step}" if step is not None else ""
        console.print(f"[bold yellow]interrupted[/] by {name}{where}; run directory {run_dir}", markup=True)
        if command:
            console.print(f"resume with:\n  {command}", markup=False)
        else:
            console.print("no checkpoint was written yet: start the run again", markup=False)
    GUARD.hand_over()
    raise SystemExit(exit_code(signum)) from None


def _failure_text(exc: BaseException, run_dir: Path) -> str:
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    if isinstance(exc, KeyboardInterrupt | SystemExit) and interrupted.exists():
        return (
            f"interrupted ({type(exc).__name__}); resume with the same overrides and ckpt_path={interrupted}"
        )
    return f"{type(exc).__name__}: {exc}"


def _runtime(runner: Run) -> dict:
    """The report's `runtime` section: the threads chosen at start and, when they followed the load,
    the count at the end and every change."""
    return {**runner.threads, **(runner.adaptive.report() if runner.adaptive else {})}


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


def _adapt_to_missing_validation(cfg: DictConfig) -> str | None:
    """Runs without validation (`trainer.limit_val_batches=0`) or without checkpoints
    (`trainer.fast_dev_run`) finish cleanly: nothing monitors val/acc, no best checkpoint is selected,
    and the export takes the final weights. Returns why, for the console and the report."""
    trainer = cfg.get("trainer") or {}
    if trainer.get("fast_dev_run"):
        reason = "fast_dev_run: Lightning saves no checkpoint"
    elif trainer.get("limit_val_batches") == 0:
        reason = "limit_val_batches=0: no validation"
    else:
        return None
    callbacks = cfg.get("callbacks") or {}
    with open_dict(cfg):
        for name, node in callbacks.items():
            target = str((node or {}).get("_target_", ""))
            if target.endswith("EarlyStopping"):
                cfg.callbacks[name] = None
            elif target.endswith("ModelCheckpoint") and node.get("monitor"):
                node.monitor = None  # keep last.ckpt only: there is no "best" without a score
                node.save_top_k = 0
    return reason


def _print_header(cfg: DictConfig, run_dir: Path, threads: dict, no_validation: str | None) -> None:
    """The run directory and a compact view of the config, before anything else happens."""
    console = Console(highlight=False)
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    data, trainer, export = cfg.get("data") or {}, cfg.get("trainer") or {}, cfg.get("export") or {}
    net = cfg.get("model", {}).get("net") or {}
    family = str(net.get("family") or net.get("_target_", "?")).rsplit(".", 1)[-1]
    sizes = ", ".join(
        f"{k.removesuffix('_size')} {data[k]:,}" for k in ("train_size", "val_size", "test_size") if k in data
    )
    model = choices.get("model", "?")
    rows = [
        ("run", display_path(run_dir)),
        ("task", f"{cfg.get('task_name')}, seed {cfg.get('seed')}"),
        (
            "model",
            f"{model if model == family else f'{model} ({family})'}, lr {cfg.get('model', {}).get('lr')}",
        ),
        ("data", f"{choices.get('data', '?')}: {sizes or data.get('path')}, batch {data.get('batch_size')}"),
        (
            "trainer",
            f"{trainer.get('max_epochs')} epochs, {trainer.get('accelerator')} x{trainer.get('devices')}"
            f", {threads['threads']} thread(s)" + (f", {no_validation}" if no_validation else ""),
        ),
        ("export", "off" if not export.get("enabled", True) else f"{export.get('format')}"),
    ]
    if cfg.get("ckpt_path"):
        rows.append(("resume", str(cfg.ckpt_path)))
    if choices.get("debug"):
        rows.append(("debug", str(choices["debug"])))
    print_fields(console, rows, title="training run: starting")
