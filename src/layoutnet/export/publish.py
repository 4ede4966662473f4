"""Atomic hand-off of an export folder: the artifact, `parity_vectors.json` and `manifest.json`
are staged together in one directory and published together.

The export folder (`<run>/export/` or `export.output_dir`) is the unit the app's engineers pick up.
An export stages its three files in `.<folder>.staging-<id>/` beside the folder (same file system),
checks them there, and publishes the whole staging directory in one system call:

- no previous export: one rename of the staging directory onto the folder's name;
- a previous export: one atomic exchange of the two directories (Linux `renameat2` with
  `RENAME_EXCHANGE`, macOS `renamex_np` with `RENAME_SWAP`). The folder's name never disappears: a
  reader sees the complete old export, then the complete new one. The old export is now under the
  staging name; what is not part of an export (`failed/`, the user's files) is carried into the new
  folder and the rest removed. A kill before that leaves a stale staging folder holding the old
  export, which the next export (or `validate`) carries over and removes the same way.
- where the exchange is unavailable (no such call, an old kernel, a file system that refuses it),
  two renames: the old folder to `.<folder>.previous-<id>/`, then the staging directory onto the
  name. A kill between them leaves the name empty for a moment and the complete old export under
  `.previous-*`, which the next export (or `validate`) moves back.

Either way a new artifact is never beside old vectors. `publish` returns which of the three was
used; the export result records it (`handoff`). The next export removes stale `.staging-*`
directories of killed exports; a failed export's staged files are kept under
`<folder>/failed/<time>-<id>/` with `reason.txt`.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from layoutnet.errors import ExportError

PARITY_VECTORS_FILE = "parity_vectors.json"
MANIFEST_FILE = "manifest.json"
FAILED_DIR = "failed"
ARTIFACT_SUFFIXES = (".mlmodel", ".mlpackage")
HANDOFF_RENAME = "rename"  # nothing was published before: one rename
HANDOFF_EXCHANGE = "exchange"  # one atomic exchange of the staging and the published folder
HANDOFF_TWO_RENAMES = "two renames"  # the exchange is unavailable: old aside, then new in place
_UNAVAILABLE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)}


class ExchangeUnavailable(OSError):
    """This system or file system cannot exchange two directories atomically."""


def _libc_exchange():
    """(function, flag) of the system call that swaps two paths, or None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        call = libc.renameat2  # int renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
        call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: call(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        call = libc.renamex_np  # int renamex_np(from, to, flags)
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rename_swap = 2
        return lambda a, b: call(a, b, rename_swap)
    return None


_EXCHANGE_CALL = _libc_exchange()


def exchange_paths(first: Path, second: Path) -> None:
    """Swap two existing paths in one system call. Raises ExchangeUnavailable where the system or
    the file system has no such call, OSError for any other failure (nothing was moved)."""
    if _EXCHANGE_CALL is None:
        raise ExchangeUnavailable(errno.ENOSYS, f"no atomic exchange call on {sys.platform}")
    if _EXCHANGE_CALL(os.fsencode(first), os.fsencode(second)) != 0:
        code = ctypes.get_errno()
        kind = ExchangeUnavailable if code in _UNAVAILABLE else OSError
        raise kind(code, os.strerror(code), str(first), None, str(second))


# Every move of the hand-off goes through one of these two functions (tests inject failures here).
_rename = os.replace
_exchange = exchange_paths


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def artifact_size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def artifact_files(artifact: Path) -> list[Path]:
    """Every file of an artifact (the .mlmodel itself, or each file inside an .mlpackage), sorted."""
    artifact = Path(artifact)
    if artifact.is_dir():
        return sorted(p for p in artifact.rglob("*") if p.is_file())
    return [artifact]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(artifact: Path, root: Path) -> dict[str, dict]:
    """{path relative to `root`: {"sha256", "bytes"}} for every file of the artifact."""
    return {
        p.relative_to(root).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in artifact_files(artifact)
    }


def _is_bundle_entry(path: Path) -> bool:
    return path.name in (PARITY_VECTORS_FILE, MANIFEST_FILE) or path.suffix in ARTIFACT_SUFFIXES


class ExportFolder:
    """The published export folder and its staging/previous siblings."""

    def __init__(self, directory: Path):
        self.directory = Path(directory).expanduser().absolute()
        if self.directory.parent == self.directory:
            raise ExportError(f"{self.directory} cannot be an export folder (it is a file system root)")
        self.parent = self.directory.parent
        self.name = self.directory.name
        self.published = False  # set once the staged export holds the folder's name

    def _siblings(self, kind: str) -> list[Path]:
        if not self.parent.is_dir():
            return []
        return sorted(self.parent.glob(f".{self.name}.{kind}-*"))

    def recover(self) -> list[str]:
        """Undo or finish what a killed export left: restore a previous folder whose replacement
        never arrived, drop replaced ones, remove stale staging directories. Returns what was done."""
        done = []
        previous = self._siblings("previous")
        if previous and not self.directory.exists():
            newest = max(previous, key=lambda p: p.stat().st_mtime)
            _rename(newest, self.directory)
            previous.remove(newest)
            done.append(f"restored the previous export from {newest.name}")
        for old in previous:
            self._carry_over(old)
            _remove(old)
            done.append(f"removed {old.name}")
        for stale in self._siblings("staging"):
            # Either a staged export that was never published, or the old export an exchange
            # swapped out before it was cleared (a kill right after the exchange): keep what the
            # old one carried that is not part of an export, drop the rest.
            self._carry_over(stale)
            _remove(stale)
            done.append(f"removed stale {stale.name}")
        return done

    def check_owned(self) -> None:
        """Refuse a folder that holds other things than a layoutnet export (it is replaced whole)."""
        if not self.directory.exists():
            return
        if not self.directory.is_dir():
            raise ExportError(
                f"the export folder {self.directory} is a file; choose a folder (export.output_dir)"
            )
        entries = list(self.directory.iterdir())
        markers = {PARITY_VECTORS_FILE, MANIFEST_FILE, FAILED_DIR}
        if entries and not any(e.name in markers for e in entries):
            raise ExportError(
                f"the export folder {self.directory} holds files that are not a layoutnet export "
                f"({', '.join(sorted(e.name for e in entries)[:5])}); an export replaces the whole folder, "
                "so choose an empty or new folder for export.output_dir / output_dir"
            )

    def stage(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        staging = self.parent / f".{self.name}.staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        return staging

    def publish(self, staging: Path) -> str:
        """Put the staged folder in place of the published one; returns how (`HANDOFF_*`, with the
        reason where the exchange was unavailable). Once this returns, the new export is published
        even if clearing the old one failed (the next export finishes that)."""
        if not self.directory.exists():
            _rename(staging, self.directory)
            self.published = True
            return HANDOFF_RENAME
        try:
            _exchange(staging, self.directory)
            replaced, how = staging, HANDOFF_EXCHANGE
        except ExchangeUnavailable as why:
            replaced = self._two_renames(staging)
            how = f"{HANDOFF_TWO_RENAMES} (exchange unavailable: {why.strerror or why})"
        self.published = True
        try:
            self._carry_over(replaced)
            _remove(replaced)
        except OSError as exc:
            how += f"; clearing the replaced export failed ({exc}), the next export removes {replaced.name}"
        return how

    def _two_renames(self, staging: Path) -> Path:
        """The old folder aside, the staged one onto its name (put back if that fails)."""
        previous = self.parent / f".{self.name}.previous-{uuid.uuid4().hex[:8]}"
        _rename(self.directory, previous)
        try:
            _rename(staging, self.directory)
        except BaseException:
            _rename(previous, self.directory)
            raise
        return previous

    def _carry_over(self, previous: Path) -> None:
        """Move what is not part of an export (failed attempts, user files) into the new folder;
        evaluations of the replaced artifact (`<its name>.eval*`) describe a model no longer there and go."""
        if not self.directory.is_dir():
            return
        stems = {p.stem for p in previous.iterdir() if p.suffix in ARTIFACT_SUFFIXES}
        for entry in previous.iterdir():
            if _is_bundle_entry(entry) or any(entry.name.startswith(f"{s}.eval") for s in stems):
                continue
            destination = self.directory / entry.name
            if entry.name == FAILED_DIR and destination.is_dir():
                for attempt in entry.iterdir():
                    if not (destination / attempt.name).exists():
                        _rename(attempt, destination / attempt.name)
            elif not destination.exists():
                _rename(entry, destination)

    def fail(self, staging: Path, reason: str) -> Path:
        """Keep what was staged under `<folder>/failed/<time>-<id>/` with `reason.txt`."""
        failed_dir = self.directory / FAILED_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        failed_dir.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            _rename(staging, failed_dir)
        else:
            failed_dir.mkdir()
        (failed_dir / "reason.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")
        return failed_dir


def verify_manifest(artifact: Path, manifest: dict) -> list[str]:
    """Files of the export folder whose checksum or size differs from `manifest` (empty: all match)."""
    root = Path(artifact).parent
    problems = []
    listed = manifest.get("files") or {}
    if not listed:
        return ["the manifest lists no files"]
    present = {p.relative_to(root).as_posix() for p in artifact_files(artifact)}
    for name in sorted(present - set(listed) - {PARITY_VECTORS_FILE}):
        problems.append(f"{name}: not listed in the manifest")
    for name, expected in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != expected.get("bytes") or sha256(path) != expected.get("sha256"):
            problems.append(f"{name}: checksum differs from the manifest")
    return problems
