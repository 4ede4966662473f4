"""The LightningModule's settings: one structured config per module class, every default once.

`conf/model/base.yaml` starts from `ModuleSettings` (`defaults: [module_schema, ...]`) and the
distillation model from `DistillationSettings`; `LayoutClassifierModule(net)` with no other argument is
the module `python -m layoutnet` trains, and Hydra refuses a misspelt key or a value of the wrong type
when the config is composed. Plain dataclasses: no torch, no Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING


@dataclass
class ModuleSettings:
    _target_: str = "layoutnet.module.LayoutClassifierModule"
    # The network: a flat network config of conf/model/net/ (built through layoutnet's registry).
    net: Any = MISSING
    lr: float = 3.0e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    # Linear warmup steps, then cosine decay to min_lr_ratio * lr at the last step.
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    label_smoothing: float = 0.0
    # Mixup of the embeddings (ids cannot be interpolated): probability per step and Beta(alpha, alpha).
    mixup_alpha: float = 0.0
    mixup_prob: float = 0.0
    # Extra cost of rewriting correctly typed text: harm_weight * -log P(typed classes) on rows typed
    # correctly (module.rewrite_penalty). 0: plain cross-entropy, the trade between fixes and rewrites is
    # left to the app's threshold on probabilities that mean what the typing prior says.
    harm_weight: float = 0.0


@dataclass
class DistillationSettings(ModuleSettings):
    """`+experiment=distill`: the student's module, with the teacher in the loss (layoutnet/distill.py)."""

    _target_: str = "layoutnet.distill.DistillationModule"
    # A layoutnet .ckpt or a legacy OMFK .pth.
    teacher_ckpt: str | None = None
    # Legacy architecture of a .pth teacher (null: detected).
    teacher_legacy: str | None = None
    # Both distributions are softened at this temperature.
    temperature: float = 2.0
    # Weight of the teacher's soft labels; 1 - alpha on the data's labels.
    alpha: float = 0.7


def module_defaults(cls: type = ModuleSettings) -> dict[str, Any]:
    """The settings a module class takes besides its network, at their defaults."""
    defaults = cls()
    return {f.name: getattr(defaults, f.name) for f in fields(cls) if f.name not in ("_target_", "net")}


def register() -> None:
    """Make `module_schema` and `distillation_schema` available to the `model` group's files."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="model", name="module_schema", node=ModuleSettings)
    store.store(group="model", name="distillation_schema", node=DistillationSettings)
