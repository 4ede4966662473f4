from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HYDRA_FULL_ERROR", "1")
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
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in a subprocess, as a user would type it (`full_error=False`: without
    HYDRA_FULL_ERROR, so a refusal prints only its `error:` line)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": "1" if full_error else "0"}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + "\n" + done.stderr[-3000:]
    return done
