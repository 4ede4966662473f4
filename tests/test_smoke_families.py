"""`python -m layoutnet +experiment=smoke model=<family>` trains, exports and checks a tiny network of
every family end to end (the smoke experiment selects `conf/model/net/tiny_<model>.yaml`)."""

from __future__ import annotations

import json

import pytest

from .conftest import run_module

# Small enough for CI: two training steps, small validation and parity sets.
TINY = [
    "trainer.max_epochs=1",
    "data.train_size=512",
    "data.val_size=256",
    "export.parity_samples=64",
    "export.random_samples=16",
    "export.parity_vectors=8",
]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["compact_cnn", "cnn", "transformer", "ensemble"])
def test_smoke_trains_and_exports_a_tiny_network_of_every_family(tmp_path, family):
    done = run_module(
        "layoutnet", ["+experiment=smoke", f"model={family}", *TINY, f"hydra.run.dir={tmp_path}"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    # one name for a family: the model= choice, the report and the checkpoint agree
    assert report["status"] == "ok" and report["training"]["family"] == family
    assert 0 < report["training"]["parameters"] < 30_000  # the tiny variant, not the full-size network
    assert report["export"]["status"] == "ok" and report["export"]["parity"]["passed"]
    assert (tmp_path / "export" / "LayoutClassifier.mlmodel").exists()
    from layoutnet.modelfile import load_net

    _, meta = load_net(tmp_path / "checkpoints" / "best.ckpt")
    assert meta["net"]["family"] == family
