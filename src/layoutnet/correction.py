"""Re-typing text on the layout of the language it was meant in: the one conversion that `predict` and
`evaluate` (its token-by-token scoring of typed text) apply, with the layouts chosen per language by the
`layouts` / `layouts_dump` keys of conf/correction/default.yaml."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from layoutnet.contract import LANGUAGES, split_class
from layoutnet.errors import ConfigError
from layoutnet.layouts import LayoutSet

DEFAULT_LAYOUTS: dict[str, str] = {"en": "us", "ru": "russianwin", "he": "hebrew"}
"""The layout whose keys are read for each language when correcting a text."""


class Corrector:
    """Re-types a text on the layout of the language it was meant in."""

    def __init__(self, layouts: LayoutSet, layout_for: Mapping[str, str]):
        self.layouts = layouts
        self.layout_for = dict(layout_for)
        for language in LANGUAGES:
            if language not in self.layout_for:
                raise ConfigError(f"layouts.{language}", None, "needs a layout id", sorted(layouts))
            layout = self.layouts.resolve(self.layout_for[language])  # unknown ids raise a DataError
            if layout.language and layout.language != language:
                raise ConfigError(
                    f"layouts.{language}",
                    self.layout_for[language],
                    f"is a {layout.language} layout",
                    [lid for lid in layouts if layouts[lid].language == language],
                )

    def correct(self, text: str, class_name: str) -> str:
        """`text` as meant when the model's class for it is `class_name` (unchanged for ru/en/he)."""
        meant, active = split_class(class_name)
        if meant == active:
            return text
        return self.layouts.convert(text, self.layout_for[active], self.layout_for[meant])

    def apply(self, text: str, class_name: str, probability: float, threshold: float | None) -> str:
        """What the app writes: the correction when the top probability reaches the threshold (None: no
        threshold), else the text as typed."""
        if threshold is not None and probability < threshold:
            return text
        return self.correct(text, class_name)


def build_corrector(cfg: DictConfig) -> Corrector:
    """The Corrector of a command's config: `layouts` per language over the built-in layouts, or those
    of `layouts_dump` (a JSON dump in the app's layouts.json schema)."""
    dump = cfg.get("layouts_dump")
    layouts = LayoutSet.from_dump(dump) if dump else LayoutSet.builtin()
    chosen = {**DEFAULT_LAYOUTS, **dict(cfg.get("layouts") or {})}
    return Corrector(layouts, chosen)
