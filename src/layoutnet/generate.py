"""`python -m layoutnet.generate n=100000 out=path.csv [seed=...] [data.*=...]`: synthetic samples as CSV.

The CSV has the header `text,label`, the format the csv data source (and the app's old
`training_data.csv`) uses. Each text is the decoded ids of a sample: trailing padding is dropped and an
id 0 inside the text (a character outside the alphabet, such as a Hebrew geresh) is written as U+FFFD,
which encodes back to 0, so reading the file back yields the same ids.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from layoutnet.contract import ALPHABET, CLASSES, PAD_ID, SEQ_LEN
from layoutnet.errors import ConfigError

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
    """Write `n` samples of stream `seed` to `out`; returns the number of rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    show = n >= _PROGRESS_FROM if progress is None else progress
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
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
                    writer.writerows(
                        zip(ids_to_texts(ids), (CLASSES[i] for i in labels.tolist()), strict=True)
                    )
                    bar.advance(task, ids.shape[0])
        else:
            for _, ids, labels in chunks:
                writer.writerows(zip(ids_to_texts(ids), (CLASSES[i] for i in labels.tolist()), strict=True))
    return n


def _run(cfg) -> None:
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf

    from layoutnet.config import build

    if OmegaConf.is_missing(cfg, "out"):
        raise ConfigError("out", None, "required: the CSV file to write, e.g. out=samples.csv")
    n, out = cfg.n, cfg.out
    if not isinstance(n, int) or n < 1:
        raise ConfigError("n", n, "must be a positive number of samples")
    if cfg.data.get("source", "synthetic") != "synthetic":
        raise ConfigError("data.source", cfg.data.source, "generate makes synthetic samples", ["synthetic"])
    datamodule = build(cfg.data, "data")
    datamodule.check()
    seed = datamodule.seed if cfg.seed is None else int(cfg.seed)
    path = Path(to_absolute_path(str(out)))
    write_csv(datamodule.synthesizer(), n, seed, path)
    print(f"wrote {n} samples (seed {seed}) to {path}")


def main() -> None:
    import hydra
    from omegaconf import DictConfig

    from layoutnet.cli import exit_on_user_error
    from layoutnet.config import CONF_DIR

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="generate")
    def entry(cfg: DictConfig) -> None:
        exit_on_user_error(lambda: _run(cfg))

    entry()


if __name__ == "__main__":
    main()
