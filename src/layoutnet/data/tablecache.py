"""On-disk cache of the tables synthesis builds from wordfreq's lists (seconds for 3 x 200,000 words).

An entry is an `.npz` file of plain arrays, named by the SHA-256 of its key: a JSON object of
everything that shapes the arrays (wordfreq's version, the settings, digests of the inputs), which is
also stored inside the file. Entries are read with `allow_pickle=False` (nothing in a cache file can
choose code to run); one that cannot be read, holds another key, lacks an array, or whose arrays do
not fit together (the caller's consistency check) is ignored and rebuilt. Entries are written to a
temporary file in the cache folder and renamed into place, so a reader never sees half an entry; a
folder that cannot be written only costs the rebuild next time. The folder is kept within
`MAX_BYTES`: after each write the least recently used entries (by modification time, which a read
refreshes) beyond it are removed, and so are temporary files a killed writer left; nothing else in
the folder is touched.

Folder: `$LAYOUTNET_CACHE_DIR`, else `$XDG_CACHE_HOME/layoutnet`, else `~/.cache/layoutnet`;
`LAYOUTNET_CACHE_DIR=off` turns the cache off (every table is built afresh).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

CACHE_ENV = "LAYOUTNET_CACHE_DIR"
OFF = "off"
_KEY = "__key__"
MAX_BYTES = 1 << 30
"""The cache keeps its most recently used entries within this size (a default-data entry set is ~55 MB)."""
_ENTRY = re.compile(r"^[a-z]+-[0-9a-f]{32}\.npz$")
_LEFTOVER = re.compile(r"^\.[a-z]+-[0-9a-f]{32}-.*\.tmp$")
_LEFTOVER_AGE = 3600.0  # seconds after which a temporary file is a killed writer's

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in (OFF, "") else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "layoutnet"


def _key_text(kind: str, key: Mapping[str, object]) -> str:
    return json.dumps({"kind": kind, **key}, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def entry_path(folder: Path, kind: str, key: Mapping[str, object]) -> Path:
    digest = hashlib.sha256(_key_text(kind, key).encode("ascii")).hexdigest()
    return folder / f"{kind}-{digest[:32]}.npz"


def _load(path: Path, key_text: str, names: Sequence[str]) -> Arrays | None:
    try:
        with np.load(path, allow_pickle=False) as entry:
            if _KEY not in entry.files or entry[_KEY].tobytes().decode("ascii") != key_text:
                return None
            if not set(names) <= set(entry.files):
                return None
            return {name: entry[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile):
        return None


def _store(path: Path, key_text: str, arrays: Mapping[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **{_KEY: np.frombuffer(key_text.encode("ascii"), dtype=np.uint8)}, **arrays)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return
    prune(path.parent, keep=path)


def prune(folder: Path, keep: Path | None = None) -> None:
    """Remove the least recently used entries beyond `MAX_BYTES` (never `keep`) and temporary files
    older than an hour. Only regular files named like an entry or a temporary file are considered
    (not a link, not a folder); a file that vanishes or cannot be removed meanwhile is skipped."""
    entries = []
    try:
        names = list(folder.iterdir())
    except OSError:
        return
    for path in names:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if _ENTRY.match(path.name):
            entries.append((info.st_mtime, info.st_size, path))
        elif _LEFTOVER.match(path.name) and time.time() - info.st_mtime > _LEFTOVER_AGE:
            _remove(path)
    total = 0
    for _, size, path in sorted(entries, key=lambda entry: entry[0], reverse=True):
        total += size
        if total > MAX_BYTES and path != keep:
            _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def cached(
    kind: str,
    key: Mapping[str, object],
    names: Sequence[str],
    build: Callable[[], Arrays],
    consistent: Callable[[Arrays], bool] = lambda arrays: True,
) -> Arrays:
    """The arrays `names` of entry (`kind`, `key`): read from the cache, or built by `build()` and stored.

    `key` must be JSON-serialisable and hold everything the arrays depend on; an entry read back is
    used only when `consistent(arrays)` (dtypes, shapes, index ranges) holds."""
    folder = cache_dir()
    key_text = _key_text(kind, key)
    path = entry_path(folder, kind, key) if folder is not None else None
    if path is not None and path.is_file():
        found = _load(path, key_text, names)
        if found is not None and _holds(consistent, found):
            _refresh(path)
            return found
    arrays = build()
    missing = set(names) - set(arrays)
    if missing:
        raise ValueError(f"the {kind} table builder returned no {sorted(missing)}")
    if path is not None:
        _store(path, key_text, arrays)
    return {name: arrays[name] for name in names}


def _refresh(path: Path) -> None:
    """Mark an entry as just used (its modification time orders pruning)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _holds(consistent: Callable[[Arrays], bool], arrays: Arrays) -> bool:
    try:
        return bool(consistent(arrays))
    except (ValueError, TypeError, IndexError, KeyError):
        return False


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes (a content key for derived tables)."""
    hasher = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode("ascii"))
        hasher.update(array.tobytes())
    return hasher.hexdigest()
