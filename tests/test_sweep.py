"""Sweep configs, the end-of-multirun summary callback and `python -m layoutnet.summarize`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from layoutnet import summarize
from layoutnet.config import build

from .conftest import REPO_ROOT, run_module

CONF = str(REPO_ROOT / "conf")

# Small enough for CI: one batch per epoch, tiny validation set and parity check.
TINY = [
    "trainer.max_epochs=1",
    "data.train_size=256",
    "data.val_size=128",
    "data.test_size=128",
    "export.parity_samples=32",
    "export.random_samples=4",
    "export.parity_vectors=4",
    "callbacks.progress_bar.refresh_rate=0",
]


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def sweep_jobs(cfg, extra: list[str] = ()) -> list[list[str]]:
    """The jobs the basic sweeper makes of `hydra.sweeper.params` (plus command-line sweeps)."""
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *extra])
    batches = BasicSweeper.split_arguments(overrides, None)
    return [job for batch in batches for job in batch]


def apply(cfg, job: list[str]):
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for override in job:
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    return cfg


def test_cnn_padding_kernel_grid_builds_every_variant():
    cfg = compose_train(["+experiment=cnn", "hparams_search=cnn_padding_kernels"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 2 * 4 * 3
    seen = set()
    for job in jobs:
        net = build(apply(cfg, job).model, "model").net
        kernels = tuple(branch.conv.kernel_size[0] for branch in net.branches.branches)
        seen.add((net.branches.branches[0].mode, kernels, net.branches.branches[0].conv.out_channels))
    assert {p for p, _, _ in seen} == {"same", "crop"} and len(seen) == 24
    # A command-line value replaces the config's axis.
    assert len(sweep_jobs(cfg, ["model.net.branch_channels=48"])) == 8


def test_compact_grid_and_optuna_configs_compose():
    cfg = compose_train(["+experiment=smoke", "hparams_search=compact_padding_kernels"])
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 12
    for job in jobs:
        build(apply(cfg, job).model, "model")

    cfg = compose_train(["+experiment=cnn", "hparams_search=optuna_cnn", "kernel_set=k35"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.max_failure_rate == 1.0  # a failed trial does not stop the study
    assert set(sweeper.params) >= {"model.lr", "model.net.padding", "kernel_set"}
    net = build(cfg.model, "model").net
    assert [b.conv.kernel_size[0] for b in net.branches.branches] == [3, 5]
    for name in cfg.kernel_sets:
        chosen = compose_train(["+experiment=cnn", "hparams_search=optuna_cnn", f"kernel_set={name}"])
        assert list(chosen.model.net.branch_kernels) == list(cfg.kernel_sets[name])


def test_launcher_presets_compose():
    cfg = compose_train(["hydra/launcher=local_parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    cfg = compose_train(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    raw = OmegaConf.to_container(launcher, resolve=False)
    assert raw["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j" and raw["gpus_per_node"] == 1
    cfg = compose_train(["hydra/launcher=submitit_local"])
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher")
    callbacks = cfg.hydra.callbacks
    assert callbacks.sweep_summary._target_ == "layoutnet.sweep.SweepSummaryCallback"


def _fake_job(sweep: Path, num: int, overrides: list[str], report: dict | None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if report is not None:
        (job / "report.json").write_text(json.dumps({"overrides": overrides, **report}), encoding="utf-8")
    return job


def _ok(acc: float, params: int, diff: float, size: int, seconds: float) -> dict:
    return {
        "status": "ok",
        "training": {"best_val_accuracy": acc, "parameters": params, "epochs": 3},
        "export": {
            "status": "ok",
            "size_bytes": size,
            "parity": {"backend": "reference-executor", "max_prob_diff": diff, "artifact_accuracy": acc},
        },
        "timings": {"total_seconds": seconds},
    }


@pytest.fixture
def fake_sweep(tmp_path) -> Path:
    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    common = ["+experiment=cnn", "trainer.max_epochs=3"]
    _fake_job(
        sweep,
        0,
        ["model.net.padding=same", "model.net.branch_kernels=[2,3]", *common],
        _ok(0.91, 1000, 1e-7, 40960, 12.5),
    )
    _fake_job(
        sweep,
        1,
        ["model.net.padding=crop", "model.net.branch_kernels=[2,3]", *common],
        _ok(0.93, 1000, 2e-7, 40960, 11.0),
    )
    parity = (
        "parity failed (reference-executor): max |softmax difference| 0.3 > tolerance 0.01\n"
        "  worst sample: 'x'"
    )
    _fake_job(
        sweep,
        2,
        ["model.net.padding=same", "model.net.branch_kernels=[3,5]", *common],
        {
            "status": "failed",
            "error": f"ExportError: {parity}",
            "training": {"best_val_accuracy": 0.88, "parameters": 1200},
            "export": {"status": "failed", "error": parity, "parity": {"max_prob_diff": 0.3}},
            "timings": {"total_seconds": 9.0},
        },
    )
    _fake_job(
        sweep,
        3,
        ["model.net.padding=crop", "model.net.branch_kernels=[3,5]", *common],
        {
            "status": "failed",
            "error": "ExportError: strict trace failed: data-dependent control flow | in forward",
        },
    )
    _fake_job(sweep, 4, ["model.net.padding=same", "model.net.branch_kernels=[9]", *common], None)
    _fake_job(
        sweep, 10, ["model.net.padding=crop", "model.net.branch_kernels=[9]", *common], {"status": "running"}
    )
    (sweep / ".submitit").mkdir()
    (sweep / "multirun.yaml").write_text("{}", encoding="utf-8")
    return sweep


def test_summary_lists_every_job_with_its_error(fake_sweep):
    paths = summarize.write_summary(fake_sweep)
    assert paths == {
        "md": fake_sweep / "summary.md",
        "csv": fake_sweep / "summary.csv",
        "png": fake_sweep / "summary.png",
    }
    with paths["csv"].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "10"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed", "missing", "incomplete"]
    assert [r["model.net.padding"] for r in rows] == ["same", "crop", "same", "crop", "same", "crop"]
    assert rows[1]["model.net.branch_kernels"] == "[2,3]" and rows[1]["val_accuracy"] == "0.93"
    assert rows[0]["parity_max_prob_diff"] == "1e-07" and rows[0]["artifact_size_bytes"] == "40960"
    assert rows[0]["wall_seconds"] == "12.5" and rows[0]["export_status"] == "ok"
    assert rows[2]["export_status"] == "failed" and rows[2]["error"].startswith("ExportError: parity failed")
    assert "strict trace failed" in rows[3]["error"]
    assert "no report.json" in rows[4]["error"] and "killed" in rows[5]["error"]
    assert "+experiment=cnn" in rows[0]["overrides"]

    md = paths["md"].read_text(encoding="utf-8")
    assert "6 jobs: 2 failed, 1 incomplete, 1 missing, 2 ok" in md
    assert "Best: job 1, val accuracy **0.9300**" in md
    assert "Overrides shared by every job: `experiment=cnn` `trainer.max_epochs=3`" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| job | status | model.net.padding | model.net.branch_kernels | parameters |")
    assert len(table) == 1 + 6
    assert "| 1 | ok | `crop` | `[2,3]` | 1,000 | **0.9300** | ok | 2e-07 | 40 KiB | 11.0 |  |" in md
    assert "data-dependent control flow \\| in forward" in md  # pipes escaped inside the table
    assert "## Errors" in md and "worst sample: 'x'" in md  # full error text below the table
    assert paths["png"].stat().st_size > 5000


def test_summarize_command(fake_sweep, tmp_path, capsys):
    assert summarize.main([str(fake_sweep)]) == 0
    out = capsys.readouterr().out
    assert "sweep summary" in out and str(fake_sweep / "summary.md") in out
    assert summarize.main([str(tmp_path / "nowhere")]) == 1
    (tmp_path / "empty").mkdir()
    assert summarize.main([str(tmp_path / "empty")]) == 1
    (fake_sweep / "summary.md").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "layoutnet.summarize", str(fake_sweep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (fake_sweep / "summary.md").exists()


def test_callback_never_fails_the_sweep(tmp_path, caplog):
    from layoutnet.sweep import SweepSummaryCallback

    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(blocker / "sweep")}}})
    SweepSummaryCallback().on_multirun_end(cfg)
    assert "could not write the sweep summary" in caplog.text
    SweepSummaryCallback(enabled=False).on_multirun_end(cfg)


@pytest.mark.slow
def test_padding_sweep_writes_summary_with_failed_job(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_module(
        "layoutnet",
        [
            "-m",
            "+experiment=smoke",
            "hparams_search=compact_padding_kernels",
            "model.net.kernel_size=2",
            "model.net.channels=[8,8]",
            "model.net.padding=same,crop,bogus",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (sweep / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["job"], r["status"], r["model.net.padding"]) for r in rows] == [
        ("0", "ok", "same"),
        ("1", "ok", "crop"),
        ("2", "failed", "bogus"),
    ]
    for row in rows[:2]:
        assert row["export_status"] == "ok" and float(row["parity_max_prob_diff"]) < 0.01
        assert int(row["artifact_size_bytes"]) > 0 and float(row["wall_seconds"]) > 0
        assert 0 <= float(row["val_accuracy"]) <= 1 and int(row["parameters"]) > 0
        assert (Path(row["run_dir"]) / "export" / "LayoutClassifier.mlmodel").exists()
    assert "ConfigError: model.net.padding='bogus'" in rows[2]["error"]
    md = (sweep / "summary.md").read_text(encoding="utf-8")
    assert "3 jobs: 1 failed, 2 ok" in md and "`model.net.kernel_size=2`" in md
    assert (sweep / "summary.png").stat().st_size > 5000
    assert "sweep summary" in done.stdout


def test_grid_variants_are_distinct_products():
    cfg = compose_train(["+experiment=smoke", "hparams_search=compact_padding_kernels"])
    jobs = {tuple(sorted(job)) for job in sweep_jobs(cfg)}
    expected = {
        tuple(sorted([f"model.net.padding={p}", f"model.net.kernel_size={k}", f"model.net.channels={c}"]))
        for p, k, c in product(["same", "crop"], [2, 3, 5], ["[16,16]", "[32,32]"])
    }
    assert jobs == expected


def _sweep_dir_needs_hydra_config() -> bool:
    """`paths.root_dir: ${hydra:runtime.cwd}` cannot resolve where Hydra computes the sweep dir."""
    paths = yaml.safe_load((REPO_ROOT / "conf" / "paths" / "default.yaml").read_text(encoding="utf-8"))
    return "${hydra:" in str(paths.get("root_dir"))


@pytest.mark.slow
@pytest.mark.skipif(
    _sweep_dir_needs_hydra_config(),
    reason="conf/paths/default.yaml: root_dir uses ${hydra:runtime.cwd}, unresolvable for hydra.sweep.dir",
)
def test_default_sweep_directory(tmp_path):
    args = ["-m", "+experiment=smoke", "export=none", "seed=3", *TINY]
    done = run_module("layoutnet", args, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "smoke" / "multiruns").iterdir()
    assert (sweep / "0" / "report.json").exists() and (sweep / "summary.md").exists()
