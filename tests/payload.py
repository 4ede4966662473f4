"""A harmless stand-in for a malicious `_target_`: calling it writes a marker file. Tests plant
`tests.payload.mark` in model files and run configs and assert that the marker never appears."""

from __future__ import annotations

from pathlib import Path

TARGET = "tests.payload.mark"


def mark(path: str, *args, **kwargs) -> None:
    Path(path).write_text("the payload ran", encoding="utf-8")


def node(marker: Path) -> dict:
    """A config node that, given to hydra.utils.instantiate, writes `marker`."""
    return {"_target_": TARGET, "path": str(marker)}
