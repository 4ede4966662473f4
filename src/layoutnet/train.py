"""`python -m layoutnet [+experiment=NAME] [overrides]`: train, export, report (the run is `fit.run`).
Returns the run's objective (`optimized_metric`) to a Hydra sweeper."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from layoutnet.commandline import exit_on_user_error
from layoutnet.config import CONF_DIR
from layoutnet.fit import run


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return exit_on_user_error(lambda: run(cfg))


if __name__ == "__main__":
    main()
