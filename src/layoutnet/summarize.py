"""`python -m layoutnet.summarize <sweep dir> [--tolerance T]`: rebuild summary.md, summary.csv and
summary.png of a multirun directory (for example after a SLURM sweep was cut short) and print its table.
The summary itself is `layoutnet.reporting.multirun`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from layoutnet.reporting.multirun import summarize
from layoutnet.reporting.sweepsummary import ACCURACY_TOLERANCE, collect


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m layoutnet.summarize",
        description="Rebuild summary.md, summary.csv and summary.png of a multirun directory.",
    )
    parser.add_argument("sweep_dir", help="the multirun directory (outputs/<task>/multiruns/<time>)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=ACCURACY_TOLERANCE,
        help="accuracy below the most accurate artifact that still counts when summary.md names the "
        f"smallest artifact (default {ACCURACY_TOLERANCE})",
    )
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    console = Console(stderr=True)
    if not sweep_dir.is_dir():
        console.print(f"[bold red]error:[/] {escape(str(sweep_dir))} is not a directory")
        return 1
    rows = collect(sweep_dir)
    if not rows:
        console.print(
            f"[bold red]error:[/] {escape(str(sweep_dir))} has no job directories "
            "(numbered folders with report.json or .hydra); pass a multirun directory"
        )
        return 1
    summarize(sweep_dir, args.tolerance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
