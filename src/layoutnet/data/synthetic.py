"""The synthetic source: words typed in the right or the wrong keyboard layout, made on the fly.

Training epoch e is `train_size` fresh samples of stream `seed + e` (a resumed run sees the same data);
the validation and test sets are made once from streams no training epoch uses. Plain torch: `generate`
uses this source without loading Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from layoutnet.contract import LANGUAGES
from layoutnet.data.batches import SyntheticBatches
from layoutnet.data.settings import SyntheticSettings
from layoutnet.data.sources import Batch, DataSource
from layoutnet.data.synth import SYNTH_KEYS, SynthConfig, Synthesizer
from layoutnet.errors import ConfigError, DataError
from layoutnet.layouts import LayoutSet

VAL_STREAM_OFFSET = 1 << 40
"""The validation set is stream `seed + VAL_STREAM_OFFSET`, the test set `seed + 2 * VAL_STREAM_OFFSET`:
far from every training stream `seed + epoch`."""


def _plain(value: Any) -> Any:
    """Hydra/OmegaConf containers as plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


class SyntheticSource(DataSource):
    """Samples from the synthesizer (`conf/data/synthetic.yaml`)."""

    name = "synthetic"

    def __init__(self, **options: Any):
        """Any keys of `SyntheticSettings` (`layoutnet.data.settings`, the defaults' one home); a key left
        out takes its default there, so `SyntheticSource()` is the data `python -m layoutnet` trains on."""
        options = {key: _plain(value) for key, value in options.items()}
        options.pop("_target_", None)
        defaults = SyntheticSettings()
        known = [f.name for f in fields(SyntheticSettings) if f.name != "_target_"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                unknown[0], options[unknown[0]], "is not a setting of the synthetic data", known
            )
        given = {key: options.get(key, getattr(defaults, key)) for key in known}
        super().__init__(given["batch_size"], given["eval_batch_size"], given["seed"])
        for key in ("train_size", "val_size", "test_size"):
            value = given[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(key, value, "must be a positive integer")
        self.train_size, self.val_size, self.test_size = (
            given["train_size"],
            given["val_size"],
            given["test_size"],
        )
        self.layouts_dump = given["layouts_dump"]
        self.config = SynthConfig.from_options(**{key: given[key] for key in SYNTH_KEYS})
        self._synth: Synthesizer | None = None

    def synthesizer(self) -> Synthesizer:
        """The synthesizer (built and checked on first use)."""
        if self._synth is None:
            self._synth = Synthesizer(self.config, self._layouts())
        return self._synth

    def _layouts(self) -> LayoutSet:
        wanted = list(dict.fromkeys(lid for spec in self.config.languages for lid in spec.layouts))
        builtin = LayoutSet.builtin()
        if self.layouts_dump is None:
            unknown = [lid for lid in wanted if lid not in builtin]
            if unknown:
                raise DataError(
                    f"layout {', '.join(map(repr, unknown))} is not built in "
                    f"(built in: {', '.join(builtin)}); give a layout dump that has it: "
                    "data.layouts_dump=/path/to/layouts.json"
                )
            return builtin
        # Layouts of languages outside the contract must come from the dump; built-in ids may too.
        from_dump = [lid for lid in wanted if lid not in builtin]
        extra = [spec.code for spec in self.config.languages if spec.code not in LANGUAGES]
        return LayoutSet.from_dump(Path(self.layouts_dump), layout_ids=from_dump, languages=extra or None)

    def _prepare(self) -> None:
        self.synthesizer()

    def _splits(self) -> dict[str, Batch]:
        synth = self.synthesizer()
        return {
            "val": synth.generate(self.val_size, self.seed + VAL_STREAM_OFFSET),
            "test": synth.generate(self.test_size, self.seed + 2 * VAL_STREAM_OFFSET),
        }

    def train_batches(self, epoch: Callable[[], int]) -> SyntheticBatches:
        return SyntheticBatches(self.synthesizer(), self.train_size, self.batch_size, self.seed, epoch)

    def label_meaning(self) -> dict[str, Any]:
        return self.synthesizer().prior_description()

    def _describe(self) -> dict[str, Any]:
        return {
            "sizes": {"train_per_epoch": self.train_size, "val": self.val_size, "test": self.test_size},
            "seeds": {
                "train": f"{self.seed} + epoch",
                "val": self.seed + VAL_STREAM_OFFSET,
                "test": self.seed + 2 * VAL_STREAM_OFFSET,
            },
            "layouts_dump": self.layouts_dump,
            **self.synthesizer().describe(),
        }
