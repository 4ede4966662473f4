"""Loading networks back from layoutnet's Lightning checkpoints.

Every checkpoint a layoutnet run writes carries, under the `layoutnet` key, the resolved
network config; the network is rebuilt from it and given the checkpoint's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from layoutnet.errors import CheckpointError

META_KEY = "layoutnet"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass ckpt_path=<a run's checkpoints/best.ckpt>"
        )
    try:
        # weights_only: a checkpoint never needs arbitrary pickled objects, so none are run.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def is_layoutnet_checkpoint(checkpoint: Any) -> bool:
    return isinstance(checkpoint, dict) and META_KEY in checkpoint and "state_dict" in checkpoint


def net_from_checkpoint(checkpoint: dict[str, Any], source: str = "checkpoint") -> tuple[nn.Module, dict]:
    """(network in eval mode, the checkpoint's layoutnet metadata)."""
    if not is_layoutnet_checkpoint(checkpoint):
        raise CheckpointError(
            f"{source} is not a layoutnet Lightning checkpoint (no '{META_KEY}' metadata); for a plain "
            "state_dict from the app's old scripts pass legacy=auto"
        )
    meta = checkpoint[META_KEY]
    net = instantiate(OmegaConf.create(meta["net_config"]), _convert_="all")
    weights = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit the stored network config; missing {missing}, "
            f"unexpected {unexpected}"
        )
    return net.eval(), meta


def best_checkpoint_path(trainer: Any) -> str | None:
    """The trainer's best checkpoint file, or None when none was kept."""
    callback = getattr(trainer, "checkpoint_callback", None)
    path = getattr(callback, "best_model_path", "") if callback else ""
    return path if path and Path(path).is_file() else None


def load_net(path: str | Path) -> tuple[nn.Module, dict]:
    return net_from_checkpoint(read_checkpoint(path), str(path))
