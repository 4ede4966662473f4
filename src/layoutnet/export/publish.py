"""Atomic publishing of an artifact: write beside the target, validate, then move into place.

A failed artifact never replaces a good one; it is kept under `failed/` with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def artifact_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class StagedArtifact:
    """A staging location beside `target` (same file system, so the final move is a rename)."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.stage_dir = self.target.parent / f".staging-{uuid.uuid4().hex[:8]}"
        self.stage_dir.mkdir()
        self.path = self.stage_dir / self.target.name

    def publish(self) -> Path:
        """Move the staged artifact to the target, replacing an existing one only now."""
        backup = None
        if self.target.exists():
            backup = self.target.parent / f".previous-{uuid.uuid4().hex[:8]}-{self.target.name}"
            os.replace(self.target, backup)
        try:
            os.replace(self.path, self.target)
        except OSError:
            if backup is not None:
                os.replace(backup, self.target)
            raise
        if backup is not None:
            _remove(backup)
        _remove(self.stage_dir)
        return self.target

    def fail(self, reason: str) -> Path | None:
        """Keep what was staged under `failed/` beside the target, with `reason.txt`."""
        failed_dir = (
            self.target.parent / "failed" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        )
        failed_dir.mkdir(parents=True, exist_ok=True)
        (failed_dir / "reason.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")
        kept = None
        if self.path.exists():
            kept = failed_dir / self.target.name
            os.replace(self.path, kept)
        _remove(self.stage_dir)
        return kept


def publish_validated(target: Path, write: Callable[[Path], None], validate: Callable[[Path], None]) -> Path:
    """Write to staging with `write`, check with `validate` (raises on failure), then publish."""
    staged = StagedArtifact(target)
    try:
        write(staged.path)
        validate(staged.path)
    except BaseException as exc:
        staged.fail(f"{type(exc).__name__}: {exc}")
        raise
    return staged.publish()
