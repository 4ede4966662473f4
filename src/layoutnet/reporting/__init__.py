"""Reporting: what a run, a command or a sweep leaves behind for people and scripts.

- `runreport`: the sections of `report.json` (and of `<model>.eval.json`), defined once; read and write.
- `record`: the shared ending of a command (report written, summary printed, files and last line).
- `objective`: the sweep objective (`optimized_metric`) read from a run's report.
- `sweepsummary`: one row per job of a multirun; summary.md, summary.csv; the end-of-multirun callback.
- `pictures`: every PNG (confusion matrix, training curves, corrections trade-off, summary.png).
- `console`: the terminal tables (export summary, sweep summary) and the closing lines of a command.
"""
