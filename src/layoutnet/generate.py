"""`python -m layoutnet.generate n=100000 out=path.csv [seed=...] [data.*=...]`: synthetic samples as CSV.

The CSV is the one `text,label` format (`layoutnet.data.csvfile`) that the csv data source, evaluate
and the app's old `training_data.csv` use; it reads back identically. Each text is the decoded ids of a
sample: trailing padding is dropped and an id 0 inside the text (a character outside the alphabet, such
as a Hebrew geresh) is written as U+FFFD, which encodes back to 0, so reading it back gives the same ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from layoutnet.contract import ALPHABET, PAD_ID, SEQ_LEN
from layoutnet.data import csvfile
from layoutnet.errors import ConfigError

SYNTHETIC_SOURCE = "layoutnet.data.synthetic.SyntheticSource"

UNKNOWN_CHAR = "\ufffd"
"""Written for an id 0 inside a text; outside the alphabet, so it encodes back to 0."""

_CODEPOINTS = np.array([0, *(ord(ch) for ch in ALPHABET)], dtype=np.uint32)
_PROGRESS_FROM = 100_000


def ids_to_texts(ids: torch.Tensor) -> list[str]:
    """Texts of rows of ids, vectorised: trailing padding dropped, inner zeros as UNKNOWN_CHAR.

    A row of zeros only becomes a single UNKNOWN_CHAR (a CSV text must not be empty).
    """
    array = ids.numpy().astype(np.int64, copy=False)
    nonzero = array != PAD_ID
    # Length up to the last non-zero id; zeros before it are unknown characters, not padding.
    length = np.where(nonzero.any(1), SEQ_LEN - np.argmax(nonzero[:, ::-1], axis=1), 1)
    codes = _CODEPOINTS[array]
    inner = ~nonzero & (np.arange(SEQ_LEN) < length[:, None])
    codes[inner] = ord(UNKNOWN_CHAR)
    # A fixed-width unicode view drops trailing NULs: one string per row.
    return np.ascontiguousarray(codes).view(f"<U{SEQ_LEN}").reshape(-1).tolist()


def write_csv(synth, n: int, seed: int, out: Path, progress: bool | None = None) -> int:
    """Write `n` samples of stream `seed` to `out` in the one `text,label` format (`data/csvfile.py`);
    returns the number of rows written. The file appears only once complete (a failed write leaves any
    older file at `out` as it was)."""
    show = n >= _PROGRESS_FROM if progress is None else progress
    with csvfile.open_for_writing(out) as handle:
        chunks = synth.iter_chunks(n, seed)
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (
                TextColumn("writing {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task(out.name, total=n)
                for _, ids, labels in chunks:
                    csvfile.write_rows(handle, ids_to_texts(ids), labels.tolist())
                    bar.advance(task, ids.shape[0])
        else:
            for _, ids, labels in chunks:
                csvfile.write_rows(handle, ids_to_texts(ids), labels.tolist())
    return n


def _output_path(out: object) -> Path:
    """The CSV path of `out=`, refused before any sample is made when it cannot be written."""
    from hydra.utils import to_absolute_path

    path = Path(to_absolute_path(str(out)))
    if path.is_dir() or str(out).endswith(("/", "\\")):
        raise ConfigError("out", str(out), "is a directory; give the CSV file to write, e.g. out=samples.csv")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError("out", str(out), f"{parent} is a file, not a directory; choose another path")
    return path


def _run(cfg) -> None:
    from layoutnet.config import build, require_values

    require_values(cfg, {"out": "the CSV file to write, e.g. out=samples.csv"})
    n = cfg.n
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError("n", n, "must be a positive number of samples")
    target = cfg.data.get("_target_")
    if target != SYNTHETIC_SOURCE:
        raise ConfigError("data._target_", target, "generate makes synthetic samples", [SYNTHETIC_SOURCE])
    path = _output_path(cfg.out)
    source = build(cfg.data, "data")
    source.check()
    seed = source.seed if cfg.seed is None else int(cfg.seed)
    write_csv(source.synthesizer(), n, seed, path)
    print(f"wrote {n} samples (seed {seed}) to {path}")


def main() -> None:
    import hydra
    from omegaconf import DictConfig

    from layoutnet.commandline import exit_on_user_error
    from layoutnet.config import CONF_DIR

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
    def entry(cfg: DictConfig) -> None:
        exit_on_user_error(lambda: _run(cfg))

    entry()


if __name__ == "__main__":
    main()
