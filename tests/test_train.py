"""End-to-end runs of `python -m layoutnet` on the tiny smoke experiment."""

from __future__ import annotations

import csv
import json
import os
import shlex
from pathlib import Path

import pytest
import torch

from layoutnet.contract import CLASSES
from layoutnet.errors import ConfigError
from layoutnet.models import CompactCNN, TransformerClassifier
from layoutnet.module import LayoutClassifierModule, warmup_cosine

from .conftest import in_process_run_config, read_fields, run_module


def run_layoutnet_args(*args):
    return run_module("layoutnet", list(args), timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke")
    # The console is checked at 80 columns (test_console_...): what a narrow terminal shows.
    result = run_module(
        "layoutnet",
        ["+experiment=smoke", f"hydra.run.dir={run_dir}"],
        env={"COLUMNS": "80", "PYTHONWARNINGS": ""},
        timeout=900,
        fresh=True,  # the console as a user's own interpreter shows it, warnings included
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
def test_smoke_run_trains_exports_and_reports(smoke_run):
    run_dir, result = smoke_run
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "ok" and report["experiment"] == "smoke"
    assert report["training"]["family"] == "compact_cnn" and report["training"]["parameters"] > 0
    assert 0 < report["training"]["best_val_accuracy"] <= 1
    assert set(report["validation"]["per_class_accuracy"]) == set(CLASSES)
    assert {"torch", "coremltools", "layoutnet"} <= set(report["versions"])
    assert report["timings"]["fit_seconds"] > 0
    export = report["export"]
    assert export["status"] == "ok" and export["parity"]["passed"]
    assert export["parity"]["backend"] == "reference-executor"
    assert (run_dir / "export" / "LayoutClassifier.mlmodel").exists()
    assert (run_dir / "export" / "parity_vectors.json").exists()
    # what the probabilities mean: the typing prior, in the report, the checkpoint and the artifact
    prior = report["data"]["prior"]
    assert prior["labels"] == "posterior" and sum(prior["class_prior"].values()) == pytest.approx(
        1.0, abs=1e-5
    )
    meta = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["layoutnet"]
    assert meta["labels"] == prior
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    stored = json.loads(manifest["app_metadata"]["typing_prior"])
    assert stored == {"labels": "posterior", "class_prior": prior["class_prior"]}
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "config_resolved.yaml",
        "csv/metrics.csv",
        "plots/confusion_matrix.png",
        "plots/training_curves.png",
    ):
        assert (run_dir / name).exists(), name
    assert "Core ML export: OK" in result.stdout


@pytest.mark.slow
def test_interrupted_run_resumes_from_last_checkpoint(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    last = run_dir / "checkpoints" / "last.ckpt"
    steps_before = torch.load(last, weights_only=False)["global_step"]
    result = run_layoutnet_args(
        "+experiment=smoke",
        f"ckpt_path={last}",
        "trainer.max_epochs=4",
        "export=none",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["training"]["epochs"] == 4
    assert report["training"]["global_step"] > steps_before
    assert report["export"]["status"] == "disabled"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["+experiment=nope"], "Could not find 'experiment/nope'"),
        (["model=nope"], "Could not find 'model/nope'"),
        (["+experiment=smoke", "data=csv", "data.path=/nonexistent/train.csv"], "/nonexistent/train.csv"),
        (["+experiment=smoke", "model.net.kernel_size=25"], "model.net.kernel_size"),
        (["+experiment=smoke", "export.format=onnx"], "export.format"),
        (["+experiment=smoke", "ckpt_path=/nonexistent/last.ckpt"], "ckpt_path"),
    ],
)
def test_bad_input_is_refused_before_training(tmp_path, args, expected):
    result = run_layoutnet_args(*args, f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_console_starts_with_the_run_and_ends_with_a_whole_summary_at_80_columns(smoke_run):
    run_dir, result = smoke_run
    out = result.stdout
    lines = [line for line in out.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[0] == "training run: starting"  # the command names itself, then the run directory
    start = lines.index("training run: starting")
    header = read_fields(lines[start + 1 : start + 9])
    assert header["run"] == str(run_dir) and header["task"].startswith("smoke,")
    assert header["model"].split(",")[0] == "compact_cnn"  # one name: the choice is the family
    end = lines.index("training run: ok")
    summary = read_fields(lines[end + 1 : -1])
    report = json.loads((run_dir / "report.json").read_text())
    assert summary["run"] == str(run_dir)
    assert summary["model"].startswith("compact_cnn, ")  # the family as the header and the report name it
    assert summary["artifact"] == "export/LayoutClassifier.mlmodel"  # inside the run directory
    assert summary["val/acc"].startswith(f"{report['training']['best_val_accuracy']:.4f}")
    assert "reference-executor" in summary["parity"]
    assert summary["pictures"] == "plots/confusion_matrix.png, plots/training_curves.png"
    assert lines[-1] == f"report: {run_dir / 'report.json'}"  # whole, for scripts and copy-paste
    assert all(len(line) <= 80 for line in lines[start : start + 9] + lines[end:-1])
    # The progress bar shows val/acc: off a TTY tqdm draws a fixed 10-character bar; without it the line
    # fits 80 columns, so on an 80-column terminal tqdm shrinks the bar instead of cutting metrics.
    output = (result.stdout + result.stderr).replace("\r", "\n").splitlines()
    bars = [line.rstrip("`") for line in output if line.startswith("Epoch 2:")]
    assert bars and "val/acc=" in bars[-1] and "v_num" not in bars[-1]
    assert len(bars[-1]) - 10 <= 80, bars[-1]
    # Non-actionable third-party noise is filtered (runtime.quiet_third_party), the rest still shows.
    for noise in ("GPU available", "LeafSpec", "litlogger", "ckpt_path=None", "IterableDataset"):
        assert noise not in out + result.stderr, noise


DEBUG_RUNS = {
    "fdr": ["debug=fdr"],
    "limit": ["debug=limit"],
    "overfit": ["debug=overfit", "trainer.max_epochs=6", "trainer.log_every_n_steps=1"],
    "profiler": ["debug=profiler", "trainer.max_epochs=1"],
    "no_validation": ["trainer.max_epochs=2", "+trainer.limit_val_batches=0", "data.train_size=2048"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DEBUG_RUNS))
def test_debug_configs_and_runs_without_validation_finish_cleanly(tmp_path, name):
    result = run_layoutnet_args("+experiment=smoke", *DEBUG_RUNS[name], f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "ok"
    training, export = report["training"], report["export"]
    if name in ("fdr", "no_validation"):
        # Nothing to pick a best model by: no best checkpoint, the final weights are exported, and said so.
        assert training["best_val_accuracy"] is None and report["paths"]["best_checkpoint"] is None
        assert export["status"] == "ok" and export["weights"] == "final weights"
        assert "final weights" in result.stdout
        assert not (tmp_path / "checkpoints" / "best.ckpt").exists()
    if name == "no_validation":
        assert training["epochs"] == 2 and (tmp_path / "checkpoints" / "last.ckpt").exists()
    if name == "fdr":
        assert training["global_step"] == 1
    if name == "limit":
        assert training["global_step"] == 3 * 8 and export["status"] == "ok"
    if name == "overfit":
        assert export["status"] == "disabled"
        rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
        losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
        # 18 steps, mostly in the LR warm-up: the loss on the same 3 batches falls (30 epochs: towards 0).
        assert len(losses) >= 12 and losses[-1] < losses[0]
    if name == "profiler":
        assert "FIT Profiler Report" in (tmp_path / "fit-profile.txt").read_text()


def test_warmup_cosine_schedule_shape():
    factor = warmup_cosine(10, 110, 0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55) and factor(110) == pytest.approx(0.1)


def test_harm_weight_makes_rewriting_typed_text_cost_more_than_a_missed_fix():
    spec = {"family": "compact_cnn", "embed_dim": 8, "channels": [8, 8]}
    plain = LayoutClassifierModule(spec, label_smoothing=0.0)
    weighted = LayoutClassifierModule(spec, label_smoothing=0.0, harm_weight=2.0)
    ru, en_from_ru, ru_from_en = (CLASSES.index(name) for name in ("ru", "en_from_ru", "ru_from_en"))
    # A typed `ru` row the model rewrites (60% on en_from_ru) and a wrong-layout row it leaves alone
    # (60% on ru): the same cross-entropy, but only the first is a harmful correction.
    logits = torch.full((2, len(CLASSES)), -9.0)
    logits[0, en_from_ru], logits[0, ru] = 0.4, 0.0
    logits[1, ru], logits[1, ru_from_en] = 0.4, 0.0
    labels = torch.tensor([ru, ru_from_en])
    per_row = [plain._loss(logits[i : i + 1], labels[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(per_row[0], per_row[1])
    harmful = weighted._loss(logits[:1], labels[:1]) - per_row[0]
    missed = weighted._loss(logits[1:], labels[1:]) - per_row[1]
    p_typed = torch.softmax(logits[0], 0)[[CLASSES.index(c) for c in ("ru", "en", "he")]].sum()
    torch.testing.assert_close(harmful, -2.0 * torch.log(p_typed))
    assert float(missed) == 0.0
    with pytest.raises(ConfigError, match="harm_weight"):
        LayoutClassifierModule(spec, harm_weight=-1.0)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ({"family": "compact_cnn", "embed_dim": 8, "channels": [8, 8]}, CompactCNN),
        (
            {
                "family": "transformer",
                "kwargs": {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 16},
            },
            TransformerClassifier,
        ),
    ],
)
def test_mixup_mixes_embeddings_only_during_the_step(spec, cls):
    module = LayoutClassifierModule(spec, mixup_alpha=0.4, mixup_prob=1.0)
    net = module.net
    assert isinstance(net, cls)
    ids = torch.randint(1, 189, (8, 20))
    labels = torch.randint(0, 9, (8,))
    module.log = lambda *a, **k: None
    torch.manual_seed(0)
    loss = module.training_step((ids, labels), 0)
    assert torch.isfinite(loss) and loss.requires_grad
    assert module.mixup.perm is None
    net.eval()
    torch.testing.assert_close(net(ids), net(ids))


@pytest.mark.slow
def test_parity_failure_fails_the_run_and_publishes_nothing(tmp_path):
    # fp32 artifacts agree to ~1e-7: a tolerance of 1e-12 cannot be met, as a broken artifact would not.
    result = run_layoutnet_args(
        "+experiment=smoke", "trainer.max_epochs=1", "export.tolerance=1e-12", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert "parity failed" in result.stderr and "worst sample" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["export"]["status"] == "failed"
    assert not (tmp_path / "export" / "LayoutClassifier.mlmodel").exists()
    (failed,) = (tmp_path / "export" / "failed").iterdir()
    assert "parity failed" in (failed / "reason.txt").read_text()


@pytest.mark.slow
def test_compressed_export_commands_of_the_docs_publish_and_validate(smoke_run, tmp_path):
    """docs/export.md's compression commands on the smoke run's checkpoint: int8 through
    torch.export publishes at the default tolerance and budget (parity against the file's own
    weights), validate passes it, and auto publishes the smallest level within budget."""
    from layoutnet.export.executor import load_executor

    best = smoke_run[0] / "checkpoints" / "best.ckpt"
    common = [f"ckpt_path={best}", "export=mlprogram", "data=tiny"]
    done = run_module(
        "layoutnet.export",
        [
            *common,
            "export.compression=int8",
            "export.frontend=torch_export",
            f"hydra.run.dir={tmp_path / 'int8'}",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    export = json.loads((tmp_path / "int8" / "report.json").read_text())["export"]
    assert (
        export["compression"] == "int8"
        and export["parity"]["passed"]
        and export["parity"]["tolerance"] == 0.01
    )
    assert export["compression_cost"]["within_budget"] and export["compression_cost"]["size_ratio"] < 1
    assert "compression cost" in done.stdout
    artifact = tmp_path / "int8" / "export" / "LayoutClassifier.mlpackage"
    assert "constexpr_affine_dequantize" in load_executor(artifact).op_types
    validate = [f"artifact={artifact}", f"ckpt_path={best}", "data=tiny", f"hydra.run.dir={tmp_path / 'v'}"]
    done = run_module("layoutnet.export.validate", validate)
    assert done.returncode == 0, done.stderr[-3000:]
    validation = json.loads((tmp_path / "v" / "report.json").read_text())["validation"]
    assert validation["compression_cost"]["level"] == "int8" and validation["parity"]["passed"]

    done = run_module(
        "layoutnet.export", [*common, "export.compression=auto", f"hydra.run.dir={tmp_path / 'auto'}"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    export = json.loads((tmp_path / "auto" / "report.json").read_text())["export"]
    assert export["compression_trials"][-1] == {**export["compression_trials"][-1], "outcome": "published"}
    assert export["compression"] == export["compression_trials"][-1]["level"] and "auto tried" in done.stdout


@pytest.mark.slow
def test_reexport_and_validate_commands(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    best = run_dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "app"
    done = run_module(
        "layoutnet.export",
        [
            f"ckpt_path={best}",
            "export=mlprogram",
            f"output_dir={out}",
            "data=tiny",
            f"hydra.run.dir={tmp_path / 'export_run'}",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = out / "LayoutClassifier.mlpackage"
    report = json.loads((tmp_path / "export_run" / "report.json").read_text())
    assert report["status"] == "ok" and report["export"]["path"] == str(artifact)
    by_precision = report["export"]["parity_by_precision"]
    assert by_precision["fp32"]["samples"] >= 1000 and by_precision["fp16_storage"]["samples"] >= 1000
    for mode in ("fp16_wide", "fp16", "fp16_sequential"):  # true fp16 runs on the spread rows only
        assert by_precision[mode]["samples"] == 256
    parity = report["export"]["parity"]  # the worst of the app's bracket, by default fp32 to the fp16 tree
    assert parity["required"] == ["fp32", "fp16_storage", "fp16_wide", "fp16"]
    assert parity["precision"] in parity["required"]
    assert parity["samples"] == by_precision[parity["precision"]]["samples"]

    validate = ["data=tiny", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'validate_run'}"]
    done = run_module("layoutnet.export.validate", [f"artifact={artifact}", *validate])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reference-executor" in done.stdout

    # The artifact checked against other weights (the last epoch's, from another run) must fail.
    other = tmp_path / "other"
    trained = run_layoutnet_args(
        "+experiment=smoke", "trainer.max_epochs=1", "seed=7", "export=none", f"hydra.run.dir={other}"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = run_module(
        "layoutnet.export.validate",
        [
            f"artifact={artifact}",
            "data=tiny",
            f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'validate_other'}",
        ],
    )
    assert done.returncode == 1 and "parity failed" in done.stderr


SIGNAL_AT = ["+callbacks.signal_at._target_=tests.signal_at.SignalAt", "+callbacks.signal_at.step=10"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_stops_the_run_with_a_checkpoint_exit_code_and_resume_command(tmp_path, name, code):
    run_dir = tmp_path / "run"
    args = ["+experiment=smoke", "export=none", "trainer.max_epochs=1", *SIGNAL_AT]
    result = run_layoutnet_args(*args, f"+callbacks.signal_at.signal={name}", f"hydra.run.dir={run_dir}")
    assert result.returncode == code, result.stderr[-3000:]
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    # Sent during step 10's batch: the run stops at the next batch boundary, with whole steps saved.
    assert torch.load(interrupted, weights_only=False)["global_step"] == 11
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "interrupted" and report["signal"] == name
    assert report["training"]["global_step"] == 11
    command = report["resume"]["command"]
    assert command.endswith(f"ckpt_path={interrupted}") and "+experiment=smoke" in command
    assert command in result.stderr  # printed on the console, whole
    if name == "SIGINT":
        return
    resumed_dir = tmp_path / "resumed"
    python, dash_m, module, *resume_args = shlex.split(command)
    assert (python, dash_m, module) == ("python", "-m", "layoutnet")
    resumed = run_layoutnet_args(*resume_args, f"hydra.run.dir={resumed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((resumed_dir / "report.json").read_text())
    assert report["status"] == "ok" and report["training"]["global_step"] > 11
    assert report["resumed_from"] == str(interrupted)


@pytest.mark.slow
def test_a_reused_run_directory_starts_from_scratch(tmp_path):
    args = ["+experiment=smoke", "export=none", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}"]
    first = run_layoutnet_args(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    steps = json.loads((tmp_path / "report.json").read_text())["training"]["global_step"]
    assert steps > 0 and (tmp_path / "checkpoints" / "last.ckpt").exists()
    second = run_layoutnet_args(*args, "seed=3")
    assert second.returncode == 0, second.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    # The old last.ckpt was not restored: the second run trained its own epoch from step 0.
    assert report["status"] == "ok" and report["training"]["global_step"] == steps
    assert report["resumed_from"] is None
    assert "Restoring states" not in second.stdout + second.stderr
    assert "already holds another run's checkpoints" in second.stdout + second.stderr


def test_unique_dir_resolver_never_hands_out_a_directory_twice(tmp_path):
    from layoutnet.rundir import unique_dir

    base = str(tmp_path / "runs" / "2026-01-01_00-00-00")
    made = [unique_dir(base) for _ in range(3)]
    assert made == [base, f"{base}_1", f"{base}_2"]
    assert all((tmp_path / "runs" / p).is_dir() for p in made)


def test_latest_points_at_the_newest_run_of_a_task(tmp_path):
    from layoutnet.rundir import link_latest, unique_dir

    base = str(tmp_path / "smoke" / "runs" / "2026-01-01_00-00-00")
    first = unique_dir(base)
    link = link_latest(first)
    assert link == tmp_path / "smoke" / "latest" and os.readlink(link) == "runs/2026-01-01_00-00-00"
    second = unique_dir(base)  # started in the same second: <time>_1, and the link follows it
    link_latest(second)
    assert os.readlink(link) == "runs/2026-01-01_00-00-00_1" and link.resolve() == Path(second).resolve()
    sweep = tmp_path / "smoke" / "multiruns" / "2026-01-01_00-00-05"
    sweep.mkdir(parents=True)
    assert link_latest(sweep).resolve() == sweep.resolve() and link.name == "latest"
    assert (tmp_path / "smoke" / "latest_multirun").is_symlink()
    assert link_latest(tmp_path / "elsewhere") is None  # hydra.run.dir=<anywhere>: no task, no link
    taken = tmp_path / "mine"
    (taken / "latest").mkdir(parents=True)  # a real folder of that name is left alone; the run goes on
    (taken / "runs" / "a").mkdir(parents=True)
    assert link_latest(taken / "runs" / "a") is None and (taken / "latest").is_dir()
    assert not [p for p in taken.iterdir() if p.name.startswith(".latest")]  # no staged link left behind


@pytest.mark.slow
def test_a_run_in_the_default_place_is_linked_as_latest_and_shown_from_there(tmp_path):
    args = ["+experiment=smoke", "export=none", "trainer.max_epochs=1", "data.train_size=512"]
    done = run_module("layoutnet", [*args, "data.val_size=128", "test=false"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "smoke" / "runs").iterdir()
    assert (tmp_path / "outputs" / "smoke" / "latest").resolve() == run_dir.resolve()
    lines = done.stdout.splitlines()
    summary = read_fields(lines[lines.index("training run: ok") + 1 : -1])
    # paths as typed from where the command ran, and the link that will name it until the next run
    assert summary["run"] == f"outputs/smoke/runs/{run_dir.name} (also outputs/smoke/latest)"


@pytest.mark.parametrize(
    ("load", "expected"),
    [(0.1, 2), (0.8, 1), (1.6, 1), (9.0, 1)],  # a 2-core machine: idle, half busy, busy, overloaded
)
def test_auto_threads_take_the_cores_left_idle_by_the_load(monkeypatch, load, expected):
    from layoutnet import runtime

    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (load, load, load))
    assert runtime.resolve_threads("auto") == expected


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("auto", {}, 1),  # on a machine whose load leaves one core (set below)
        ("auto", {"OMP_NUM_THREADS": "3"}, 3),  # a launcher's (or the user's) share
        ("auto", {"SLURM_CPUS_PER_TASK": "8", "OMP_NUM_THREADS": "3"}, 8),
        (4, {"OMP_NUM_THREADS": "3"}, 4),
        ("all", {}, len(os.sched_getaffinity(0))),
    ],
)
def test_runtime_threads_setting(monkeypatch, value, environ, expected):
    from layoutnet import runtime
    from layoutnet.runtime import resolve_threads

    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (runtime.available_cores() - 1.0,) * 3)
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    for name, setting in environ.items():
        monkeypatch.setenv(name, setting)
    assert resolve_threads(value) == expected


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_bad_runtime_threads_is_refused_naming_the_key(value):
    from layoutnet.errors import ConfigError
    from layoutnet.runtime import resolve_threads

    with pytest.raises(ConfigError, match=r"runtime\.threads"):
        resolve_threads(value)


def test_runtime_threads_limit_numpy_blas_as_well_as_torch():
    # The reference executor's matrix products run in NumPy's BLAS: on a busy machine they must not
    # take every core while torch keeps to its share.
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from layoutnet.runtime import apply_threads

    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=None):
            assert apply_threads({"threads": 1}) == {
                "threads": 1,
                "interop_threads": torch.get_num_interop_threads(),
                "adaptive": False,
            }
            blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and set(blas) == {1}
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


class _FakeMachine:
    """A clock, this process's CPU time and the other processes' cores, set by a test."""

    def __init__(self):
        self.now, self.own, self.others_cores, self.applied = 0.0, 0.0, 0.0, []

    def others(self, wall, own):
        return self.others_cores

    def governor(self, threads=2, limit=2):
        from layoutnet.runtime import ThreadGovernor

        return ThreadGovernor(
            threads,
            limit,
            interval=10.0,
            clock=lambda: self.now,
            own_cpu=lambda: self.own,
            others=self.others,
            apply=self.applied.append,
        )


def test_auto_threads_follow_the_load_during_a_run():
    # Two threads at start; another process takes a core; it ends: 2 -> 1 -> 2. A change needs two
    # looks in a row wanting it, and is applied once.
    machine = _FakeMachine()
    governor = machine.governor()
    machine.now, machine.others_cores = 5.0, 1.0
    assert governor.poll(10) is None  # not looked at before the interval
    machine.now = 11.0
    assert governor.poll(20) is None  # one look wants 1 thread
    machine.now = 22.0
    assert governor.poll(30) == 1  # the second agrees
    machine.now = 33.0
    assert governor.poll(40) is None  # still busy: no change, nothing applied again
    machine.now, machine.others_cores = 44.0, 0.2
    assert governor.poll(50) is None
    machine.now = 55.0
    assert governor.poll(60) == 2
    assert machine.applied == [1, 2]
    assert [c["threads"] for c in governor.changes] == [1, 2]
    assert [c["step"] for c in governor.changes] == [30, 60]


def test_a_load_at_a_rounding_edge_does_not_flip_the_threads_at_every_look():
    machine = _FakeMachine()
    governor = machine.governor()
    for look, others in enumerate([0.6, 0.4, 0.6, 0.4, 0.6, 0.4]):  # wants 1, 2, 1, 2, ...
        machine.now, machine.others_cores = 10.0 * (look + 1), others
        assert governor.poll() is None
    assert machine.applied == []


def test_the_end_of_a_fit_settles_the_threads_on_one_look():
    # After the fit, test and export run at what the machine allows now: one look decides.
    machine = _FakeMachine()
    governor = machine.governor(threads=1)
    machine.now, machine.others_cores = 0.2, 0.0
    assert governor.poll(settle=True) is None  # too short to measure anything
    machine.now = 3.0
    assert governor.poll(99, settle=True) == 2
    assert governor.changes[-1]["step"] == 99


def test_auto_threads_never_go_below_one_or_above_the_limit():
    machine = _FakeMachine()
    governor = machine.governor(threads=1, limit=4)
    for now, others, expected in (
        (10, 9.0, None),
        (20, 0.0, None),
        (30, 0.0, 4),
        (40, 2.6, None),
        (50, 2.6, 1),
    ):
        machine.now, machine.others_cores = float(now), others
        assert governor.poll() == expected
    assert 1 <= governor.threads <= 4


def test_a_multi_process_run_keeps_its_thread_counts():
    from types import SimpleNamespace

    from layoutnet.callbacks import AdaptiveThreads

    one, ddp = AdaptiveThreads(), AdaptiveThreads()
    one.on_fit_start(SimpleNamespace(world_size=1), None)
    ddp.on_fit_start(SimpleNamespace(world_size=2), None)
    assert one.governor is not None and ddp.governor is None and ddp.report() == {}


def test_other_processes_cores_are_the_busy_time_of_our_cpus_minus_our_own(monkeypatch, tmp_path):
    # /proc/stat's busy time (all but idle and iowait, in clock ticks) counts only the CPUs this
    # process may run on; this process's own CPU time is taken off.
    from layoutnet import runtime

    hz = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"

    def write(cpu0_busy, cpu1_busy, cpu7_busy):
        rows = [f"cpu {cpu0_busy + cpu1_busy + cpu7_busy} 0 0 999 0 0 0 0 0 0"]
        rows += [
            f"cpu{n} {b} 0 0 999 5 0 0 0 0 0" for n, b in ((0, cpu0_busy), (1, cpu1_busy), (7, cpu7_busy))
        ]
        stat.write_text("\n".join(rows) + "\nintr 1 2 3\n", encoding="ascii")

    monkeypatch.setattr(runtime, "PROC_STAT", stat)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1})
    write(0, 0, 0)
    read = runtime.others_cores_reader()
    # 10 s: CPUs 0 and 1 busy 15 s together, of which 6 s were ours; CPU 7 (not ours) is ignored
    write(10 * hz, 5 * hz, 1000 * hz)
    assert read(10.0, 6.0) == pytest.approx(0.9)
    write(10 * hz, 5 * hz, 1000 * hz)  # nothing since: nobody else used anything
    assert read(10.0, 0.0) == 0.0
    # no line for our CPUs (a container's /proc/stat numbered from 0): no reading, not an idle machine
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {4, 5})
    assert runtime._cpu_seconds_of({4, 5}) is None
    stat.write_text("cpu0 x y\n", encoding="ascii")  # unparsable
    assert runtime._cpu_seconds_of({0}) is None


def test_other_processes_cores_read_on_this_machine_stay_within_its_cores():
    import time

    from layoutnet.runtime import others_cores_reader

    read = others_cores_reader()
    time.sleep(0.2)
    others = read(0.2, 0.0)
    assert others is None or 0.0 <= others <= len(os.sched_getaffinity(0)) + 0.5


@pytest.mark.parametrize("adaptive", [True, False])
def test_a_run_with_auto_threads_re_decides_them_between_batches(tmp_path, monkeypatch, adaptive):
    from layoutnet import callbacks
    from layoutnet.fit import Run, _runtime

    polls: list[int | None] = []

    class RecordingGovernor:
        def __init__(self, threads):
            self.threads, self.changes = threads, [{"step": 1, "threads": 1, "others_cores": 1.0}]

        def poll(self, step=None, settle=False):
            polls.append(step)

    monkeypatch.setattr(callbacks, "ThreadGovernor", RecordingGovernor)
    overrides = ["+experiment=smoke", "data=tiny", "export=none", "trainer.max_epochs=1", "test=false"]
    overrides += ["+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1"]
    run = Run(
        in_process_run_config(tmp_path, overrides),
        tmp_path,
        {"threads": 2, "interop_threads": 1, "adaptive": adaptive},
    )
    run.prepare()
    run.fit()
    if adaptive:
        assert polls[:3] == [1, 2, 3]  # after every training step (then the validation batch)
        assert _runtime(run)["thread_changes"] == [{"step": 1, "threads": 1, "others_cores": 1.0}]
        assert _runtime(run)["threads"] == 2  # the choice at start stays in the report
    else:
        assert polls == []
        assert "thread_changes" not in _runtime(run)
