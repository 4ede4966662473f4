"""`python -m layoutnet.predict model_path=<.ckpt | .pth | .mlpackage | .mlmodel> text=ghbdtn`: the most
likely classes of a text with their probabilities, and the text as it was meant (the same keys typed
on the intended layout: `ghbdtn` -> `привет`). Without `text`, one result per line of stdin.

The text is taken literally: `text=руддщ`, `text="hello world"` and `text="it's"` need no Hydra quoting
(the command quotes the value itself; a value already wrapped in matching quotes is passed as it is).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import hydra
import numpy as np
from omegaconf import DictConfig

from layoutnet.commandline import exit_on_user_error
from layoutnet.config import CONF_DIR
from layoutnet.contract import CLASSES, encode_batch
from layoutnet.correction import Corrector, build_corrector
from layoutnet.errors import ConfigError
from layoutnet.metrics import softmax
from layoutnet.modelfile import Scorer, open_model

OUTPUT_FORMATS = ("text", "json")
BATCH = 1024


@dataclass
class Prediction:
    text: str
    corrected: str
    top: list[tuple[str, float]]
    threshold: float | None = None

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def held_back(self) -> bool:
        """A correction the threshold stops: the top class says wrong layout, its probability is below."""
        return self.threshold is not None and self.corrected != self.text and self.top[0][1] < self.threshold

    def line(self) -> str:
        ranked = ", ".join(f"{name} {p:.3f}" for name, p in self.top)
        if self.held_back:
            return f"{self.text} -> no change (below threshold {self.threshold:.3f}) | {ranked}"
        return f"{self.text} -> {self.corrected} | {ranked}"

    def as_json(self) -> str:
        payload = {
            "text": self.text,
            "corrected": self.text if self.held_back else self.corrected,
            "class": self.label,
            "probability": round(self.top[0][1], 6),
            "top": [{"class": name, "probability": round(p, 6)} for name, p in self.top],
        }
        if self.threshold is not None:
            payload["threshold"] = self.threshold
            payload["changed"] = payload["corrected"] != self.text
        return json.dumps(payload, ensure_ascii=False)


def predict_texts(
    scorer: Scorer, corrector: Corrector, texts: Sequence[str], top_k: int = 3, threshold: float | None = None
) -> list[Prediction]:
    if not texts:
        return []
    probs = softmax(scorer.logits(encode_batch(texts)))
    k = max(1, min(int(top_k), len(CLASSES)))
    results = []
    for text, row in zip(texts, probs, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        top = [(CLASSES[i], float(row[i])) for i in order]
        results.append(Prediction(text, corrector.correct(text, top[0][0]), top, threshold))
    return results


def _stdin_batches(stream) -> Iterator[list[str]]:
    """Lines without their line ends: one at a time from a terminal, in batches from a pipe."""
    interactive = stream.isatty() if hasattr(stream, "isatty") else False
    batch: list[str] = []
    for line in stream:
        batch.append(line.rstrip("\r\n"))
        if interactive or len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def correction_threshold_for(cfg: DictConfig, scorer: Scorer) -> float | None:
    """`threshold=` from the command line (`threshold=none`: no threshold), else the model's own: the
    artifact's `correction_threshold` metadata, or the evaluate report next to the model file."""
    from layoutnet.quality import parse_threshold, stored_threshold

    given = cfg.get("threshold")
    if given is not None:
        return None if str(given).lower() == "none" else parse_threshold(given, "threshold")
    found = stored_threshold(scorer.source, getattr(scorer, "metadata", None))
    return None if found is None else found[0]


def run_predict(cfg: DictConfig, stdin=None, out=None) -> list[Prediction]:
    out = out or sys.stdout
    fmt = cfg.get("format", "text")
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError("format", fmt, "unknown output format", OUTPUT_FORMATS)
    top_k = int(cfg.get("top_k", 3))
    if top_k < 1:
        raise ConfigError("top_k", top_k, "must be >= 1")
    scorer = open_model(cfg.get("model_path"), cfg.get("legacy"))
    threshold = correction_threshold_for(cfg, scorer)
    corrector = build_corrector(cfg)
    text = cfg.get("text")
    batches: Iterable[list[str]] = [[str(text)]] if text is not None else _stdin_batches(stdin or sys.stdin)
    results: list[Prediction] = []
    for batch in batches:
        for prediction in predict_texts(scorer, corrector, batch, top_k, threshold):
            print(prediction.as_json() if fmt == "json" else prediction.line(), file=out, flush=True)
            results.append(prediction)
    return results


# Taking `text=...` literally ------------------------------------------------------------------------------

_TEXT_ARG = re.compile(r"^(\+{0,2}text=)(.*)$", re.DOTALL)


def hydra_quote(value: str) -> str:
    """`value` as a single-quoted Hydra override value that comes back unchanged after parsing and
    OmegaConf resolution (quotes, backslashes and `${` are escaped)."""
    # OmegaConf: `${` starts an interpolation; `\${` is a literal, and backslashes before it are doubled.
    value = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    # Hydra: inside quotes, backslashes are literal except before a quote or at the very end.
    value = re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{value}'"


def quote_text_overrides(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with any `text=<raw>` rewritten to a quoted Hydra override."""
    rewritten = []
    for arg in argv:
        match = _TEXT_ARG.match(arg)
        if match:
            raw = match.group(2)
            already_quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            if not already_quoted:
                arg = match.group(1) + hydra_quote(raw)
        rewritten.append(arg)
    return rewritten


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(lambda: run_predict(cfg))


def main() -> None:
    sys.argv = [sys.argv[0], *quote_text_overrides(sys.argv[1:])]
    _hydra_main()


if __name__ == "__main__":
    main()
