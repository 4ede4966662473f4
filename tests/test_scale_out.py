"""Scaling out: parallel local jobs (joblib), submitit's local executor (the SLURM launcher's twin), an
Optuna study that maximises validation accuracy, and DDP on two CPU processes with one export and one
report written by rank 0."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from pathlib import Path

import pytest
import yaml

import layoutnet.fit
from layoutnet.reporting.sweepsummary import log_swept_keys

from .conftest import run_module

TINY = [
    "+experiment=smoke",
    "trainer.max_epochs=1",
    "data.train_size=256",
    "data.val_size=128",
    "data.test_size=128",
    "callbacks.progress_bar.refresh_rate=0",
]
TINY_EXPORT = ["export.parity_samples=32", "export.random_samples=4", "export.parity_vectors=4"]

pytestmark = pytest.mark.slow

run_layoutnet = functools.partial(run_module, "layoutnet", check=True)


def summary_rows(sweep: Path) -> list[dict]:
    with (sweep / "summary.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text(encoding="utf-8"))


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_layoutnet(
        [
            "-m",
            "hydra/launcher=local_parallel",
            *TINY,
            "export=none",
            "model.net.padding=same,crop",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    rows = summary_rows(sweep)
    assert [(r["job"], r["status"], r["model.net.padding"], r["export_status"]) for r in rows] == [
        ("0", "ok", "same", "disabled"),
        ("1", "ok", "crop", "disabled"),
    ]
    assert "model.net.padding=same" in report(sweep / "0")["overrides"]
    # the smoke network's kernel (3) is odd: `crop` trains the same network as `same`, and the summary says so
    assert [r["duplicate_of"] for r in rows] == ["", "0"]


def test_submitit_local_executor(tmp_path):
    sweep = tmp_path / "sweep"
    run_layoutnet(
        ["-m", "hydra/launcher=submitit_local", *TINY, "export=none", "seed=1,2", f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    rows = summary_rows(sweep)
    assert [(r["job"], r["status"], r["seed"]) for r in rows] == [("0", "ok", "1"), ("1", "ok", "2")]
    # submitit kept each job's pickled call and logs; the jobs ran in their own processes.
    logs = list((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    assert (sweep / "summary.md").exists() and (sweep / "summary.png").exists()


def test_optuna_maximises_validation_accuracy(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_layoutnet(
        [
            *TINY,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            "export=none",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert "Best value" in done.stdout + done.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text(encoding="utf-8"))
    rows = summary_rows(sweep)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    accuracies = [report(sweep / r["job"])["training"]["best_val_accuracy"] for r in rows]
    assert results["best_value"] == pytest.approx(max(accuracies))
    assert set(results["best_params"]) == {"model.lr", "model.weight_decay", "model.label_smoothing"}
    assert log_swept_keys(sweep) == {"model.lr"}  # summary.png draws lr on a log axis
    assert "## Optuna result" in (sweep / "summary.md").read_text(encoding="utf-8")


def test_ddp_two_cpu_processes_export_and_report_once(tmp_path):
    run_dir = tmp_path / "run"
    args = ["trainer=ddp", *TINY, *TINY_EXPORT, "data.train_size=512", f"hydra.run.dir={run_dir}"]
    done = run_layoutnet(args, tmp_path)
    output = done.stdout + done.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert (run_dir / "train_ddp_process_1.log").exists()  # rank 1 ran as its own Hydra process
    assert output.count("Core ML export: OK") == 1  # only rank 0 exported
    summary = re.compile(rf"^report: {re.escape(str(run_dir / 'report.json'))}$", re.MULTILINE)
    assert len(summary.findall(output)) == 1  # only rank 0 printed the result
    result = report(run_dir)
    assert result["status"] == "ok" and result["export"]["status"] == "ok"
    assert result["export"]["parity"]["max_prob_diff"] < 0.01
    assert result["training"]["global_step"] == 1  # 512 rows, batches of 256, split over 2 ranks
    assert (run_dir / "export" / "LayoutClassifier.mlmodel").exists()
    assert (run_dir / "checkpoints" / "best.ckpt").exists()


@pytest.mark.skipif(
    not hasattr(layoutnet.fit, "_ddp_ranks_run_this_job_only"),
    reason="DDP inside a multirun needs fit.py to relaunch ranks > 0 for the current job only",
)
def test_ddp_inside_a_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_layoutnet(
        [
            "-m",
            "trainer=ddp",
            *TINY,
            "data.train_size=512",
            "export=none",
            "model.net.padding=same,crop",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    rows = summary_rows(sweep)
    assert [(r["status"], r["model.net.padding"]) for r in rows] == [("ok", "same"), ("ok", "crop")]
    assert (done.stdout + done.stderr).count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2
    assert all((sweep / r["job"] / "train_ddp_process_1.log").exists() for r in rows)


def test_submitit_job_requeued_by_its_preemption_signal_resumes_from_its_checkpoint(tmp_path):
    # submitit's local executor requeues a job that its USR2 handler checkpointed, as SLURM does.
    sweep = tmp_path / "sweep"
    args = [
        *TINY,
        "data.train_size=4096",
        "export=none",
        "+callbacks.signal_at._target_=tests.signal_at.SignalAt",
    ]
    signal_at = ["+callbacks.signal_at.step=5", "+callbacks.signal_at.signal=SIGUSR2"]
    done = run_module(
        "layoutnet",
        ["-m", "hydra/launcher=submitit_local", *args, *signal_at, f"hydra.sweep.dir={sweep}"],
        fresh=True,  # submitit re-runs jobs in processes of its own
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "Caught signal SIGUSR2" in log and "interrupted by SIGUSR2 at step 6" in log
    result = report(sweep / "0")
    interrupted = sweep / "0" / "checkpoints" / "interrupted.ckpt"
    assert result["status"] == "ok" and result["scheduler"]["resumed_from"] == str(interrupted)
    assert result["training"]["global_step"] == 16  # the requeued attempt finished the epoch it was in


def test_runs_started_together_get_their_own_directories(tmp_path):
    # Both runs ask for the same directory name (as two runs started in the same second do).
    import subprocess
    import sys

    args = [*TINY, *TINY_EXPORT, "hydra.run.dir=${unique_dir:outputs/same}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "layoutnet", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    dirs = sorted((tmp_path / "outputs").iterdir())
    assert [d.name for d in dirs] == ["same", "same_1"]
    for run_dir in dirs:
        result = report(run_dir)
        assert result["status"] == "ok" and result["run_dir"] == str(run_dir)
        assert result["export"]["status"] == "ok"
        assert (run_dir / "checkpoints" / "last.ckpt").exists()
        assert (run_dir / "export" / "LayoutClassifier.mlmodel").exists()
