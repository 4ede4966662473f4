from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HYDRA_FULL_ERROR", "1")
# Synthesis tables are cached on disk (layoutnet.data.tablecache): the tests (and the commands they start)
# use a folder of their own, never the user's cache.
_TABLE_CACHE = tempfile.TemporaryDirectory(prefix="layoutnet-table-cache-")
os.environ["LAYOUTNET_CACHE_DIR"] = _TABLE_CACHE.name
warnings.filterwarnings("ignore", message=".*coremltools.*")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present: the reference material lives beside the repo, not in it")
    return SHARED


def run_module(
    module: str,
    args: list[str],
    cwd: Path = REPO_ROOT,
    timeout: int = 300,
    check: bool = False,
    full_error: bool = True,
    env: dict[str, str] | None = None,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` as a user would type it (`full_error=False`: without
    HYDRA_FULL_ERROR, so a refusal prints only its `error:` line; `env`: extra variables).

    By default the command runs as a fork of a warm interpreter (`tests/zygote.py`: the same
    `python -m` semantics without paying torch's and Lightning's imports each time); `fresh=True`
    starts a new interpreter, for tests about imports, start-up, interpreter warnings, or commands
    that start more processes from `sys.argv`."""
    if fresh:
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PYTHONWARNINGS": "ignore",
                "HYDRA_FULL_ERROR": "1" if full_error else "0",
                **(env or {}),
            },
            timeout=timeout,
        )
    else:
        done = _zygote().run(module, args, cwd=cwd, timeout=timeout, full_error=full_error, env=env)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + "\n" + done.stderr[-3000:]
    return done


class Zygote:
    """Client of `tests/zygote.py`: runs `python -m <module> <args>` as a fork of one warm process
    (see that file for when a test may use it instead of `run_module`)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py"))],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        ready = self.process.stdout.readline()
        assert json.loads(ready).get("ready"), f"the zygote did not start: {ready!r}"

    def run(
        self,
        module: str,
        args: list[str],
        cwd: Path = REPO_ROOT,
        timeout: int = 300,
        full_error: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {
                "module": module,
                "args": list(args),
                "cwd": str(cwd),
                "env": {"HYDRA_FULL_ERROR": "1" if full_error else "0", **(env or {})},
                "stdout": str(out),
                "stderr": str(err),
                "timeout": timeout,
            }
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = json.loads(self.process.stdout.readline())
            if answer["returncode"] is None:
                raise subprocess.TimeoutExpired([module, *args], timeout)
            return subprocess.CompletedProcess(
                [module, *args],
                answer["returncode"],
                out.read_text(encoding="utf-8", errors="replace"),
                err.read_text(encoding="utf-8", errors="replace"),
            )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        self.process.stdout.close()


_WARM: list[Zygote] = []


def read_fields(lines: list[str]) -> dict[str, str]:
    """The `key  value` block `reporting.console.print_fields` prints, read back: a line that starts with
    a space continues the value above it (after a `/` directly, else after a space)."""
    fields: dict[str, str] = {}
    key = None
    for line in lines:
        if line.startswith(" ") and key is not None:
            gap = "" if fields[key].endswith("/") else " "
            fields[key] += gap + line.strip()
        elif "  " in line:
            key, value = (part.strip() for part in line.split("  ", 1))
            fields[key] = value
    return fields


def in_process_run_config(run_dir: Path, overrides: list[str]):
    """The composed `train` config of `overrides` with every output under `run_dir` and no progress bar,
    for tests that drive `layoutnet.fit.Run` in the test process itself."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(run_dir)
    cfg.callbacks.model_checkpoint.dirpath = str(run_dir / "checkpoints")
    cfg.callbacks.interrupt_checkpoint.dirpath = str(run_dir / "checkpoints")
    cfg.logger.csv.save_dir = str(run_dir)
    cfg.callbacks.progress_bar = None
    cfg.trainer.enable_progress_bar = False
    return cfg


def _zygote() -> Zygote:
    """One warm process per test process, started on first use and closed at exit."""
    if not _WARM or _WARM[0].process.poll() is not None:
        _WARM[:] = [Zygote()]
        atexit.register(_WARM[0].close)
    return _WARM[0]


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # `-n auto` runs one worker per core: each computes with one thread, and the commands it
        # starts see a one-core share (`runtime.threads=auto` reads OMP_NUM_THREADS as a launcher's
        # share), so the workers never fight over the cores.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`), tests that share a module-scoped fixture (a trained
    run, an exported artifact) go to one worker, so the fixture is built once; the rest spread."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if "module" in scopes:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
