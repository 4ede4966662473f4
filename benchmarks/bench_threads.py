"""Training-step throughput against torch's thread settings, on an idle and on a loaded machine.

For each network (smoke, default, omfk) and each setting (intra-op threads 1 or all cores; inter-op
threads 1 or torch's default), a fresh child process runs the bare training step (forward, loss,
backward, clip, AdamW) on one fixed batch and reports steps/s. "Loaded" runs the same child beside
one CPU-burning process per core (a Python busy loop), which is what a shared machine looks like.
One child process per inter-op setting (1, or torch's default); inside it intra-op threads alternate
between 1 and all cores, and each cell is the median of `--repeats` timed runs.

    python benchmarks/bench_threads.py --models smoke default omfk --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(name: str, interop: int | None, steps: int, warmup: int, batch: int, repeats: int) -> None:
    """One process per inter-op setting (torch fixes it at the first parallel op); intra-op threads
    alternate between 1 and all cores inside it, `repeats` times each."""
    import torch

    if interop is not None:
        torch.set_num_interop_threads(interop)
    sys.path.insert(0, str(HERE))
    from bench_train_step import MODELS, bare_loop, fixed_batch, make_module

    module, cfg = make_module(MODELS[name])
    batch = batch or int(cfg.data.batch_size)
    ids, labels = fixed_batch(batch)
    cores = len(os.sched_getaffinity(0))
    rates: dict[int, list[float]] = {1: [], cores: []}
    for repeat in range(repeats):
        for threads in (1, cores) if repeat % 2 == 0 else (cores, 1):
            torch.set_num_threads(threads)
            rates[threads].append(bare_loop(module, ids, labels, warmup, steps) * batch)
    print(json.dumps({"rates": rates, "interop": torch.get_num_interop_threads()}))


def child_arrival(name: str, adaptive: bool, seconds: float) -> None:
    """Train `name` for `seconds` with every core's worth of threads; after the first third, one
    CPU-burning process per core starts (other work arriving mid-run). `adaptive`: the run's
    ThreadGovernor (what `runtime.threads=auto` does in a fit) re-decides the threads every 3 s;
    otherwise the count chosen at start stays. Prints steps/s before and after the load arrived."""
    import torch

    torch.set_num_interop_threads(1)
    sys.path.insert(0, str(HERE))
    from bench_train_step import MODELS, bare_loop, fixed_batch, make_module
    from layoutnet.runtime import ThreadGovernor, set_threads

    module, cfg = make_module(MODELS[name])
    ids, labels = fixed_batch(int(cfg.data.batch_size))
    cores = len(os.sched_getaffinity(0))
    set_threads(cores)
    bare_loop(module, ids, labels, 2, 1)
    governor = ThreadGovernor(cores, interval=3.0) if adaptive else None
    start, burners, steps = time.monotonic(), [], {"before": 0, "after": 0}
    arrival = start + seconds / 3
    while (now := time.monotonic()) < start + seconds:
        if not burners and now >= arrival:
            burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
        bare_loop(module, ids, labels, 0, 1)
        steps["after" if burners else "before"] += 1
        if governor is not None:
            governor.poll()
    for proc in burners:
        proc.kill()
        proc.wait()
    rates = {"before": steps["before"] / (seconds / 3), "after": steps["after"] / (2 * seconds / 3)}
    threads = governor.threads if governor else cores
    print(json.dumps({"rates": rates, "threads_at_end": threads}))


def arrival(name: str, repeats: int, seconds: float) -> dict:
    """Fixed threads against `runtime.threads=auto`'s governor when load arrives mid-run, alternating."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    runs: dict[str, list[dict]] = {"fixed": [], "adaptive": []}
    for repeat in range(repeats):
        for mode in ("fixed", "adaptive") if repeat % 2 == 0 else ("adaptive", "fixed"):
            cmd = [sys.executable, __file__, "--arrival-child", name, mode, str(seconds)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = {
        mode: {
            "steps_per_s_before": round(statistics.median(r["rates"]["before"] for r in rs), 2),
            "steps_per_s_after": round(statistics.median(r["rates"]["after"] for r in rs), 2),
            "threads_at_end": [r["threads_at_end"] for r in rs],
        }
        for mode, rs in runs.items()
    }
    summary["adaptive_vs_fixed_after"] = round(
        summary["adaptive"]["steps_per_s_after"] / summary["fixed"]["steps_per_s_after"], 2
    )
    return summary


def measure(name: str, interop: int | None, steps: int, warmup: int, batch: int, repeats: int) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    args = [name, interop or 0, steps, warmup, batch, repeats]
    cmd = [sys.executable, __file__, "--child", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["smoke", "default", "omfk"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=6)
    parser.add_argument("--arrival", action="store_true", help="load arriving mid-run: fixed vs auto threads")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--arrival-child", nargs=3)
    args = parser.parse_args()
    if args.arrival_child:
        name, mode, seconds = args.arrival_child
        child_arrival(name, mode == "adaptive", float(seconds))
        return
    if args.arrival:
        sys.path.insert(0, str(HERE))
        from common import save_result

        results = {name: arrival(name, args.repeats, args.seconds) for name in args.models}
        for name, summary in results.items():
            print(name, summary, flush=True)
        with open("/proc/loadavg", encoding="ascii") as handle:
            loadavg = handle.read().split()[:3]
        record = {"seconds": args.seconds, "loadavg_at_end": loadavg, "results": results}
        save_result("threads_arrival", record)
        return
    if args.child:
        name, interop, steps, warmup, batch, repeats = args.child
        child(name, int(interop) or None, int(steps), int(warmup), int(batch), int(repeats))
        return
    sys.path.insert(0, str(HERE))
    from common import save_result

    cores = len(os.sched_getaffinity(0))
    # (timed steps, warm-up steps, batch; 0 = the experiment's). The production ensemble runs a
    # batch of 128 instead of its 1024 so that a CPU cell takes seconds, not minutes.
    steps = {"smoke": (40, 5, 0), "default": (10, 2, 0), "omfk": (2, 1, 128)}
    results: dict = {}
    for load in ("idle", "loaded"):
        burners = []
        if load == "loaded":
            burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
            time.sleep(1.0)
        try:
            for name in args.models:
                cell = {}
                for interop in (1, None):
                    out = measure(name, interop, *steps[name], args.repeats)
                    for threads, rates in out["rates"].items():
                        key = f"intra {threads} / interop {out['interop']}"
                        cell[key] = {
                            "median": round(statistics.median(rates), 1),
                            "all": [round(r) for r in rates],
                        }
                base = cell["intra 1 / interop 1"]["median"]
                for value in cell.values():
                    value["ratio_to_1_thread"] = round(value["median"] / base, 3)
                results.setdefault(name, {})[load] = cell
                print(
                    load,
                    name,
                    {k: (v["median"], v["ratio_to_1_thread"]) for k, v in cell.items()},
                    flush=True,
                )
        finally:
            for proc in burners:
                proc.kill()
                proc.wait()
    with open("/proc/loadavg", encoding="ascii") as handle:
        loadavg = handle.read().split()[:3]
    save_result(
        "threads",
        {"cores": cores, "repeats": args.repeats, "loadavg_at_end": loadavg, "results": results},
    )


if __name__ == "__main__":
    main()
