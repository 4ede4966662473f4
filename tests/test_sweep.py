"""Sweep configs, the sweep summary (`reporting.sweepsummary`, summary.png), its end-of-multirun callback,
`python -m layoutnet.summarize`."""

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
from layoutnet.reporting import multirun, pictures, sweepsummary

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


def compose_job(base: list[str], job: list[str]):
    """The config one job of a sweep runs with (Hydra's own override semantics: a dict value merges)."""
    return compose_train([*base, *job])


def optuna_choice_jobs(cfg) -> list[list[str]]:
    """Every combination of an Optuna preset's categorical choices (its intervals left at the default)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
    from optuna.distributions import CategoricalDistribution

    axes = []
    for key, value in cfg.hydra.sweeper.params.items():
        override = OverridesParser.create().parse_overrides([f"{key}={value}"])[0]
        distribution = create_optuna_distribution_from_override(override)
        if isinstance(distribution, CategoricalDistribution):
            axes.append([f"{key}={choice}" for choice in distribution.choices])
    return [list(job) for job in product(*axes)]


def model_identity(cfg) -> str:
    """`function_key` of the job's network and training settings (the part a grid varies)."""
    return sweepsummary.function_key(
        {"model": OmegaConf.to_container(cfg.model, resolve=True), "seed": cfg.seed}
    )


PRESETS = [
    ("cnn_padding_kernels", "+experiment=cnn", "grid"),
    ("compact_padding_kernels", "+experiment=smoke", "grid"),
    ("optuna_cnn", "+experiment=cnn", "optuna"),
    ("optuna", "+experiment=smoke", "optuna"),
    ("optuna", "+experiment=cnn", "optuna"),
]


@pytest.mark.parametrize(("preset", "experiment", "kind"), PRESETS)
def test_presets_enumerate_distinct_networks_and_add_no_top_level_keys(preset, experiment, kind):
    base = [experiment, f"hparams_search={preset}"]
    cfg = compose_train(base)
    jobs = sweep_jobs(cfg) if kind == "grid" else optuna_choice_jobs(cfg)
    identities = [model_identity(compose_job(base, job)) for job in jobs]
    assert len(set(identities)) == len(jobs), "two jobs of the preset train the same network"
    plain = compose_train([experiment])
    assert set(cfg) == set(plain), f"{preset} adds top-level keys: {set(cfg) - set(plain)}"


def test_cnn_padding_kernel_grid_builds_every_variant():
    base = ["+experiment=cnn", "hparams_search=cnn_padding_kernels"]
    cfg = compose_train(base)
    assert cfg.hydra.mode.name == "MULTIRUN"
    jobs = sweep_jobs(cfg)
    # even kernel sets with both paddings, the all-odd set once: 7 × 3 widths
    assert len(jobs) == 7 * 3
    seen = set()
    for job in jobs:
        net = build(compose_job(base, job).model, "model").net
        kernels = tuple(branch.conv.kernel_size[0] for branch in net.branches.branches)
        seen.add((net.branches.branches[0].mode, kernels, net.branches.branches[0].conv.out_channels))
    assert {p for p, _, _ in seen} == {"same", "crop"} and len(seen) == 21
    assert {k for p, k, _ in seen if p == "crop"} == {(2, 3, 4, 5), (2, 4), (3, 4, 5)}
    # A command-line value replaces the config's axis.
    assert len(sweep_jobs(cfg, ["model.net.branch_channels=48"])) == 7
    assert len(sweep_jobs(cfg, ["model.net={branch_kernels:[2,4],padding:crop}"])) == 3


def test_compact_grid_and_optuna_configs_compose():
    base = ["+experiment=smoke", "hparams_search=compact_padding_kernels"]
    cfg = compose_train(base)
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 8
    for job in jobs:
        build(compose_job(base, job).model, "model")

    base = ["+experiment=cnn", "hparams_search=optuna_cnn"]
    cfg = compose_train([*base, "model.net={branch_kernels:[3,5],padding:same}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.max_failure_rate == 1.0  # a failed trial does not stop the study
    assert set(sweeper.params) >= {"model.lr", "model.net", "model.net.branch_channels"}
    assert cfg.optimized_metric == "val/acc_best"
    net = build(cfg.model, "model").net
    assert [b.conv.kernel_size[0] for b in net.branches.branches] == [3, 5]
    # Every Optuna choice of the joint kernel/padding axis builds the kernels it names.
    choices = {job[0] for job in optuna_choice_jobs(compose_train(base))}
    assert len(choices) == 7
    for choice in choices:
        chosen = compose_train([*base, choice]).model.net
        assert f"branch_kernels:{list(chosen.branch_kernels)}".replace(" ", "") in choice
        assert f"padding:{chosen.padding}" in choice


@pytest.mark.parametrize(
    ("family", "odd", "even"),
    [
        ("compact_cnn", ["model.net.kernel_size=3"], ["model.net.kernel_size=2"]),
        ("cnn", ["model.net.branch_kernels=[3,5]"], ["model.net.branch_kernels=[3,4]"]),
    ],
)
def test_padding_is_irrelevant_exactly_when_every_kernel_is_odd(family, odd, even):
    """The function-identity rule of the presets and of the summary's duplicate note, checked on the
    networks themselves: same weights, same outputs for odd kernels; different outputs for an even one."""
    import torch

    ids = torch.randint(0, 60, (16, 20))
    ids[:, 12:] = 0
    for kernels, identical in ((odd, True), (even, False)):
        outputs, keys = [], []
        for padding in ("same", "crop"):
            cfg = compose_train([f"model={family}", *kernels, f"model.net.padding={padding}"])
            torch.manual_seed(0)
            net = build(cfg.model, "model").net.eval()
            with torch.no_grad():
                outputs.append(net(ids))
            keys.append(model_identity(cfg))
        assert torch.equal(outputs[0], outputs[1]) is identical
        assert (keys[0] == keys[1]) is identical


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
    assert callbacks.sweep_summary._target_ == "layoutnet.reporting.multirun.SweepSummaryCallback"


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
    paths = multirun.write_summary(fake_sweep)
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
    assert "| 1 | ok | `crop` | `[2,3]` | 1,000 | **0.9300** | ok | 2e-07 | 40 KiB | 0.9300 | 11.0 |  |" in md
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
    from layoutnet.reporting.multirun import SweepSummaryCallback

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
        tuple(sorted([f"model.net={{kernel_size:{k},padding:{p}}}", f"model.net.channels={c}"]))
        for (k, p), c in product([(2, "same"), (2, "crop"), (3, "same"), (5, "same")], ["[16,16]", "[32,32]"])
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
    assert (tmp_path / "outputs" / "smoke" / "latest_multirun").resolve() == sweep.resolve()
    # the sweep's end says where its summary went, whole
    assert f"summary md: {sweep.resolve() / 'summary.md'}" in done.stdout


def _config(kernel: int, padding: str, seed: int, job_dir: Path) -> dict:
    return {
        "seed": seed,
        "model": {"lr": 0.003, "net": {"kernel_size": kernel, "padding": padding, "channels": [8, 8]}},
        "callbacks": {"model_checkpoint": {"dirpath": f"{job_dir}/checkpoints"}},
        "paths": {"output_dir": str(job_dir)},
    }


def test_summary_flags_jobs_that_train_the_same_network(tmp_path):
    """A user's own grid over padding with an odd kernel repeats jobs: the summary names the earlier job."""
    sweep = tmp_path / "sweep"
    grid = [(3, "same", 1), (3, "crop", 1), (2, "same", 1), (2, "crop", 1), (3, "crop", 2), (2, "crop", 1)]
    for num, (kernel, padding, seed) in enumerate(grid):
        overrides = [f"model.net.kernel_size={kernel}", f"model.net.padding={padding}", f"seed={seed}"]
        job = _fake_job(sweep, num, overrides, _ok(0.9 + num / 100, 1000, 1e-7, 4096, 1.0))
        (job / "config_resolved.yaml").write_text(
            yaml.safe_dump(_config(kernel, padding, seed, job)), "utf-8"
        )
    _fake_job(sweep, 6, ["model.net.kernel_size=5", "model.net.padding=crop", "seed=1"], None)  # no config
    paths = multirun.write_summary(sweep)
    with paths["csv"].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # kernel 3: same == crop; kernel 2: they differ; another seed is another network; job 5 repeats job 3.
    assert [r["duplicate_of"] for r in rows] == ["", "0", "", "", "", "3", ""]
    md = paths["md"].read_text(encoding="utf-8")
    assert "2 job(s) train the same network as an earlier job" in md
    assert "job 1 = job 0, job 5 = job 3" in md
    assert "| duplicate of | error |" in md and "| job 0 |" in md


def test_dict_valued_sweep_axis_is_spread_into_columns(tmp_path):
    """The presets' joint kernel/padding axis (`model.net={kernel_size:2,padding:crop}`): two columns."""
    sweep = tmp_path / "sweep"
    for num, value in enumerate(["{kernel_size:2,padding:crop}", "{kernel_size:3,padding:same}"]):
        _fake_job(sweep, num, [f"model.net={value}", "model.net.channels=[8,8]"], _ok(0.9, 10, 0, 1, 1))
    rows = sweepsummary.collect(sweep)
    assert rows[0].params == {
        "model.net.kernel_size": "2",
        "model.net.padding": "crop",
        "model.net.channels": "[8,8]",
    }
    assert sweepsummary.varied_keys(rows)[0] == ["model.net.kernel_size", "model.net.padding"]
    row = sweepsummary.JobRow("0", tmp_path, "ok", ["model.net={branch_kernels:[2,4],padding:same}"])
    assert row.params == {"model.net.branch_kernels": "[2,4]", "model.net.padding": "same"}


KERNEL_CHOICES = ["[2,3,4,5]", "[2,4]", "[3,4,5]", "[3,5]"]


def _optuna_like_sweep(tmp_path: Path, jobs: int) -> Path:
    """A sweep of `jobs` trials: lr sampled log, weight decay linear, a kernel-set category, two compression
    levels; every fifth trial failed before training."""
    sweep = tmp_path / f"sweep{jobs}"
    sweep.mkdir()
    multirun = {
        "hydra": {
            "sweeper": {
                "params": {
                    "model.lr": "tag(log, interval(3e-4, 1e-2))",
                    "model.weight_decay": "interval(0.0, 0.05)",
                }
            },
            "overrides": {"task": ["+experiment=cnn", "export.compression=none,int8"]},
        }
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun), encoding="utf-8")
    for num in range(jobs):
        lr = 3e-4 * (1e-2 / 3e-4) ** (num / max(jobs - 1, 1))
        compression = ["none", "int8"][num % 2]
        overrides = [
            f"model.lr={lr:.6g}",
            f"model.weight_decay={0.05 * ((num * 7) % jobs) / jobs:.4f}",
            f"model.net.branch_kernels={KERNEL_CHOICES[num % 4]}",
            f"export.compression={compression}",
        ]
        if num % 5 == 4:
            _fake_job(sweep, num, overrides, {"status": "failed", "error": "ConfigError: x"})
            continue
        report = _ok(0.90 + 0.002 * (num % 7), 50_000 + 1000 * (num % 4), 1e-6, 0, 30.0)
        report["export"]["artifact_size_bytes"] = (480_000 if compression == "none" else 160_000) + 512 * num
        report["export"]["compression"] = compression
        _fake_job(sweep, num, overrides, report)
    return sweep


@pytest.mark.parametrize("jobs", [3, 60])
def test_summary_picture_axes_failures_and_ticks(tmp_path, jobs):
    sweep = _optuna_like_sweep(tmp_path, jobs)
    rows = sweepsummary.collect(sweep)
    log_keys = sweepsummary.log_swept_keys(sweep)
    assert log_keys == {"model.lr"}
    panels = {panel.key: panel for panel in pictures.summary_panels(rows, log_keys)}
    lr, decay, kernels = panels["model.lr"], panels["model.weight_decay"], panels["model.net.branch_kernels"]
    assert (lr.kind, lr.scale) == ("numeric", "log")  # the sweep samples lr on a log scale
    assert (decay.kind, decay.scale) == ("numeric", "linear")
    assert kernels.kind == "categorical" and kernels.span == (-0.5, min(jobs, 4) - 0.5)
    # failed jobs sit in the strip, never on the accuracy axis
    failed = {row.job for row in rows if row.status != "ok"}
    assert {job for _, _, job in lr.not_ok} == failed
    assert not failed & {job for _, _, job in lr.ok}
    assert all(y >= 0.9 for _, y, _ in lr.ok)
    best = sweepsummary.best_row(rows)
    assert lr.best == (float(best.params["model.lr"]), best.val_accuracy)
    assert len(kernels.ticks) <= pictures.MAX_TICK_LABELS
    # accuracy against artifact size, one group per compression level, the pick circled
    size = panels["artifact_size"]
    assert set(size.groups) <= {"none", "int8"} and len(size.ok) == len(rows) - len(failed)
    chosen = sweepsummary.smallest_within_tolerance(rows)
    assert size.chosen == (chosen.artifact_size_bytes / 1024, chosen.artifact_accuracy)
    # the red ring marks one job in every panel: the best by validation accuracy
    assert size.best == (best.artifact_size_bytes / 1024, sweepsummary.row_accuracy(best))
    path = pictures.plot_summary(tmp_path / f"summary{jobs}.png", rows, f"{jobs} jobs", log_keys)
    assert path.stat().st_size > 5000


def test_summary_picture_ticks_at_swept_values_and_keeps_jobs_on_their_category(tmp_path):
    rows = [
        sweepsummary.JobRow(str(i), tmp_path, "ok", [f"model.net.kernel_size={k}", f"model.net.padding={p}"])
        for i, (k, p) in enumerate([(2, "same"), (2, "crop"), (3, "same"), (5, "same"), (5, "same")])
    ]
    for i, row in enumerate(rows):
        row.val_accuracy = 0.9 + i / 100
    kernel, padding = pictures.summary_panels(rows)[:2]
    assert kernel.ticks == [(2.0, "2"), (3.0, "3"), (5.0, "5")]  # not 2.4, 3.2, 4.0, 4.8
    # every job sits within the marked band of its category, in whatever order the jobs ran
    category = {"same": 0.0, "crop": 1.0}
    for x, _, job in padding.ok:
        assert abs(x - category[rows[int(job)].params["model.net.padding"]]) <= pictures.CATEGORY_BAND
    # swept values too close to label legibly (Optuna's continuous draws): even ticks instead
    assert pictures.value_ticks({0.001: "0.001", 0.00102: "0.00102", 0.01: "0.01"}, "log") == []


def test_category_ticks_are_thinned_to_stay_legible():
    many = [f"[{i},{i + 2}]" for i in range(60)]
    ticks = pictures._category_ticks(many)
    assert len(ticks) <= pictures.MAX_TICK_LABELS and ticks[0] == (0.0, "[0,2]")
    assert len(pictures._category_ticks(many[:3])) == 3


def test_smallest_artifact_within_tolerance(tmp_path):
    def row(job, size, acc, compression):
        return sweepsummary.JobRow(
            job,
            tmp_path,
            "ok",
            val_accuracy=0.99,
            artifact_size_bytes=size,
            artifact_accuracy=acc,
            compression=compression,
        )

    rows = [
        row("0", 480_000, 0.970, "none"),
        row("1", 160_000, 0.968, "int8"),
        row("2", 130_000, 0.950, "palettize6"),
    ]
    assert sweepsummary.smallest_within_tolerance(rows, 0.005).job == "1"
    assert sweepsummary.smallest_within_tolerance(rows, 0.03).job == "2"
    assert sweepsummary.smallest_within_tolerance(rows, 0.0).job == "0"
    md = sweepsummary.render_markdown(tmp_path, rows)
    assert "Smallest artifact within 0.005 of the most accurate one: job 1, 156 KiB, accuracy 0.9680" in md
    assert "compression `int8`" in md and "| compression |" in md


def test_report_export_keys_are_read_defensively(tmp_path):
    sweep = tmp_path / "sweep"
    new = _ok(0.9, 10, 0.0, 999, 1.0)
    new["export"].update(
        artifact_size_bytes=1234, compression="palettize4", accuracy={"artifact": 0.8, "torch": 0.9}
    )
    _fake_job(sweep, 0, ["seed=1"], new)
    _fake_job(sweep, 1, ["seed=2"], {"status": "ok", "export": {"status": "ok", "parity": "not a mapping"}})
    first, second = sweepsummary.collect(sweep)
    assert (first.artifact_size_bytes, first.compression, first.artifact_accuracy) == (
        1234,
        "palettize4",
        0.8,
    )
    assert (second.artifact_size_bytes, second.compression, second.artifact_accuracy) == (None, None, None)


REPORT = {
    "training": {"best_val_accuracy": 0.97, "parameters": 1000},
    "validation": {"accuracy": 0.96},
    "test": {"test/acc": 0.95},
    "export": {"status": "ok", "artifact_size_bytes": 160_000, "parity": {"artifact_accuracy": 0.94}},
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (None, 0.97),
        ("val/acc_best", 0.97),
        ("training.best_val_accuracy", 0.97),
        ("test/acc", 0.95),
        ("val/loss", 0.25),  # a metric the module logged, its last value
        ("export.parity.artifact_accuracy", 0.94),
        ("export.artifact_size_bytes", 160_000.0),
    ],
)
def test_run_returns_the_metric_optimized_metric_names(name, value):
    import torch

    from layoutnet.reporting.objective import objective_value

    assert objective_value(name, REPORT, {"val/loss": torch.tensor(0.25)}) == pytest.approx(value)


def test_a_missing_objective_is_none_with_a_warning_naming_what_exists(caplog):
    from layoutnet.reporting.objective import objective_value

    assert objective_value("export.parity.max_prob_diff", REPORT, {}) is None
    assert "export.parity.artifact_accuracy" in caplog.text and "export.artifact_size_bytes" in caplog.text
    assert objective_value("export.status", REPORT, {}) is None  # not a number
    older = {"export": {"size_bytes": 4096}}  # a report from before export.artifact_size_bytes
    assert objective_value("export.artifact_size_bytes", older, {}) == 4096


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["optimized_metric=acc"], "a report key path starts with one of training, validation, test, export"),
        (["optimized_metric=valid/acc"], "no logged metric starts with valid/"),
        (["optimized_metric=test/acc", "test=false"], "the run does not test (test=false)"),
        (["optimized_metric=export.artifact_size_bytes", "export=none"], "the run does not export"),
    ],
)
def test_a_bad_optimized_metric_is_refused_before_training(overrides, fragment):
    from layoutnet.errors import ConfigError
    from layoutnet.reporting.objective import objective_name

    cfg = compose_train(["+experiment=smoke", *overrides])
    with pytest.raises(ConfigError, match="optimized_metric") as caught:
        objective_name(cfg)
    assert fragment in str(caught.value)
    assert objective_name(compose_train(["+experiment=smoke"])) == "val/acc_best"


def test_log_axes_are_found_where_optuna_records_its_search_space(tmp_path):
    """The Optuna sweeper writes no multirun.yaml; its search space is in each job's .hydra/hydra.yaml."""
    sweep = tmp_path / "sweep"
    job = _fake_job(sweep, 0, ["model.lr=0.001"], _ok(0.9, 10, 0, 1, 1))
    params = {"model.lr": "tag(log, interval(3e-4, 1e-2))", "model.weight_decay": "interval(0.0, 0.05)"}
    hydra_cfg = {"hydra": {"sweeper": {"params": params}, "overrides": {"task": ["model.lr=0.001"]}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_cfg), encoding="utf-8")
    assert sweepsummary.log_swept_keys(sweep) == {"model.lr"}
    assert sweepsummary.log_swept_keys(tmp_path / "nowhere") == set()
