"""A callback for tests: the run sends itself a real signal at a fixed training step.

Added on the command line like any callback: `+callbacks.signal_at._target_=tests.signal_at.SignalAt
+callbacks.signal_at.step=10 +callbacks.signal_at.signal=SIGTERM` (the subprocess runs in the repo root).
"""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    def __init__(self, step: int, signal: str, times: int = 1):
        self.step = step
        self.signum = getattr(signal_module, signal)
        self.times = times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


signal_module = signal
