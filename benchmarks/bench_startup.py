"""Fixed start-up cost of the commands, against a bare `python -c "import torch"` measured in the same run.

Each command runs `--repeats` times as a fresh process (the order rotates across repeats, so a burst of
load from elsewhere spreads over all of them); the figures are the median wall time and the median CPU
time (user + system of the child: steadier than wall time on a loaded machine), and the ratios are to
the medians of `import torch`. A model is trained once first (the smoke experiment, 1 epoch) so that
predict, evaluate and validate have a checkpoint and a .mlmodel to open; `generate n=1` uses the
default data config (what a user runs), with the synthesis table cache (`layoutnet.data.tablecache`,
a fresh folder, filled by one untimed run first) and with the cache off (`LAYOUTNET_CACHE_DIR=off`:
a first run, or a changed data config). Also reports, per command, whether pytorch_lightning and
coremltools were imported at all (`-X importtime`).

    python benchmarks/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CACHE_OFF = "generate n=1 (table cache off)"
HEAVY = ("pytorch_lightning", "coremltools")


def timed(cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stderr of one run of `cmd`."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **(extra_env or {})}
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{done.stderr[-2000:]}")
    return elapsed, _children_cpu() - cpu, done.stderr


def imported(cmd: list[str], cwd: Path, packages: tuple[str, ...]) -> dict[str, bool]:
    """Which of the top-level `packages` the command imports (`-X importtime`)."""
    _, _, stderr = timed([cmd[0], "-X", "importtime", *cmd[1:]], cwd)
    names = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}
    return {package: package in names for package in packages}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from common import save_result

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LAYOUTNET_CACHE_DIR"] = str(work / "table-cache")
        run_dir = work / "run"
        timed(
            [py, "-m", "layoutnet", "+experiment=smoke", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
            ROOT,
        )
        ckpt = run_dir / "checkpoints" / "best.ckpt"
        artifact = run_dir / "export" / "LayoutClassifier.mlmodel"
        commands = {
            "import torch": [py, "-c", "import torch"],
            "predict (one word, .ckpt)": [py, "-m", "layoutnet.predict", f"model_path={ckpt}", "text=ghbdtn"],
            "predict (one word, .mlmodel)": [
                py,
                "-m",
                "layoutnet.predict",
                f"model_path={artifact}",
                "text=ghbdtn",
            ],
            "generate n=1": [py, "-m", "layoutnet.generate", "n=1", f"out={work / 'g.csv'}"],
            CACHE_OFF: [py, "-m", "layoutnet.generate", "n=1", f"out={work / 'g.csv'}"],
            "evaluate (.mlmodel, data=tiny)": [
                py,
                "-m",
                "layoutnet.evaluate",
                f"model_path={artifact}",
                "data=tiny",
                "run_data=false",
                f"output_dir={work / 'eval'}",
            ],
            "validate (data=tiny)": [
                py,
                "-m",
                "layoutnet.export.validate",
                f"artifact={artifact}",
                f"ckpt_path={ckpt}",
                "data=tiny",
                f"hydra.run.dir={work / 'validate'}",
            ],
        }
        env = {name: {"LAYOUTNET_CACHE_DIR": "off"} if name == CACHE_OFF else None for name in commands}
        timed(commands["generate n=1"], ROOT)  # fills the table cache
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for repeat in range(args.repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                wall, seconds, _ = timed(commands[name], ROOT, env[name])
                times[name].append(wall)
                cpu[name].append(seconds)
        packages = {name: imported(cmd, ROOT, HEAVY) for name, cmd in commands.items()}
    base = statistics.median(times["import torch"])
    base_cpu = statistics.median(cpu["import torch"])
    results = {
        name: {
            "median_s": round(statistics.median(values), 3),
            "ratio_to_import_torch": round(statistics.median(values) / base, 2),
            "median_cpu_s": round(statistics.median(cpu[name]), 3),
            "cpu_ratio_to_import_torch": round(statistics.median(cpu[name]) / base_cpu, 2),
            "imports_pytorch_lightning": packages[name]["pytorch_lightning"],
            "imports_coremltools": packages[name]["coremltools"],
            "all_s": [round(v, 3) for v in values],
        }
        for name, values in times.items()
    }
    for name, row in results.items():
        print(
            f"{name:34} {row['median_s']:7.2f} s  x{row['ratio_to_import_torch']:<5} "
            f"cpu {row['median_cpu_s']:6.2f} s  x{row['cpu_ratio_to_import_torch']:<5} "
            f"lightning={row['imports_pytorch_lightning']} coremltools={row['imports_coremltools']}"
        )
    with open("/proc/loadavg", encoding="ascii") as handle:
        loadavg = handle.read().split()[:3]
    save_result("startup", {"repeats": args.repeats, "loadavg_at_end": loadavg, "results": results})


if __name__ == "__main__":
    main()
