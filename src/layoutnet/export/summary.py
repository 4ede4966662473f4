"""The short human-readable export summary printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_export_summary(section: dict, console: Console | None = None) -> None:
    console = console or Console()
    ok = section.get("status") == "ok"
    table = Table(title="Core ML export: " + ("[green]OK[/]" if ok else "[red]FAILED[/]"), show_header=False)
    table.add_row("artifact", escape(str(section.get("path"))))
    table.add_row("format", f"{section.get('format')} / {section.get('precision')}")
    if "size_bytes" in section:
        table.add_row("size", f"{section['size_bytes'] / 1e6:.2f} MB")
    parity = section.get("parity") or {}
    if parity:
        table.add_row("parity backend", str(parity.get("backend")))
        table.add_row("samples", str(parity.get("samples")))
        table.add_row(
            "max |prob diff|", f"{parity.get('max_prob_diff'):.3g} (tolerance {parity.get('tolerance')})"
        )
        table.add_row("max |logit diff|", f"{parity.get('max_logit_diff'):.3g}")
        table.add_row("argmax agreement", f"{parity.get('argmax_agreement'):.4f}")
        if parity.get("torch_accuracy") is not None:
            table.add_row(
                "accuracy torch / artifact",
                f"{parity['torch_accuracy']:.4f} / {parity['artifact_accuracy']:.4f}",
            )
    timings = section.get("timings") or {}
    if timings:
        table.add_row("timings (s)", ", ".join(f"{k} {v}" for k, v in timings.items()))
    if not ok and section.get("error"):
        table.add_row("error", escape(str(section["error"])[:2000]))
    console.print(table)
