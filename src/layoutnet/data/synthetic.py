"""The synthetic source: words typed in the right or the wrong keyboard layout, made on the fly.

Training epoch e is `train_size` fresh samples of stream `seed + e` (a resumed run sees the same data);
the validation and test sets are made once from streams no training epoch uses. Plain torch: `generate`
uses this source without loading Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from layoutnet.contract import LANGUAGES
from layoutnet.data.batches import SyntheticBatches
from layoutnet.data.sources import Batch, DataSource
from layoutnet.data.synth import SynthConfig, Synthesizer
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

    def __init__(
        self,
        languages: Mapping[str, Mapping[str, Any]] | None = None,
        flattening: float = 0.5,
        correct_layout_share: float = 0.5,
        word_count_weights: Sequence[float] = (0.6, 0.2, 0.12, 0.08),
        augment: Mapping[str, float] | None = None,
        ambiguous: Mapping[str, float] | None = None,
        length_balance: bool = False,
        prior: Mapping[str, Any] | None = None,
        technical: Mapping[str, Any] | None = None,
        layouts_dump: str | None = None,
        train_size: int = 250_000,
        val_size: int = 20_000,
        test_size: int = 20_000,
        batch_size: int = 512,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ):
        super().__init__(batch_size, eval_batch_size, seed)
        for key, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(key, value, "must be a positive integer")
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.layouts_dump = layouts_dump
        self.config = SynthConfig.from_options(
            languages=_plain(languages),
            flattening=flattening,
            correct_layout_share=correct_layout_share,
            word_count_weights=list(_plain(word_count_weights)),
            augment=_plain(augment),
            ambiguous=_plain(ambiguous),
            length_balance=length_balance,
            prior=_plain(prior),
            technical=_plain(technical),
        )
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
