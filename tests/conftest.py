from __future__ import annotations

import os
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
