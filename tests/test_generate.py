"""`python -m layoutnet.generate` and the data configs it composes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from layoutnet.config import build
from layoutnet.contract import SEQ_LEN, encode_batch
from layoutnet.data.csv_source import CsvSource, load_csv
from layoutnet.data.datamodule import LayoutDataModule
from layoutnet.data.synth import SynthConfig, Synthesizer
from layoutnet.data.synthetic import SyntheticSource
from layoutnet.errors import ConfigError
from layoutnet.generate import UNKNOWN_CHAR, ids_to_texts, write_csv

from .conftest import REPO_ROOT, run_module

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_generate(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="generate", overrides=list(overrides))


def test_ids_to_texts_is_lossless() -> None:
    ids = torch.zeros((5, SEQ_LEN), dtype=torch.long)
    ids[0, :3] = torch.tensor([1, 2, 3])  # abc
    ids[1, :4] = torch.tensor([0, 1, 0, 2])  # unknown, a, unknown, b
    ids[2] = torch.arange(1, SEQ_LEN + 1)  # full row
    ids[4, :2] = torch.tensor([1, 63])  # a letter and a space at the end
    texts = ids_to_texts(ids)
    assert texts[0] == "abc"
    assert texts[1] == f"{UNKNOWN_CHAR}a{UNKNOWN_CHAR}b"
    assert len(texts[2]) == SEQ_LEN
    assert texts[3] == UNKNOWN_CHAR  # nothing known: one unknown character, never an empty text
    assert texts[4].endswith(" ")
    assert torch.equal(encode_batch(texts), ids)


def test_write_csv_reads_back(tmp_path: Path) -> None:
    languages = {
        "en": {"vocab_size": 200, "layouts": {"us": 1.0}},
        "he": {"vocab_size": 200, "layouts": {"hebrew": 1.0}},
    }
    synth = Synthesizer(
        SynthConfig.from_options(
            languages=languages, augment={"punctuation": 0.5}, prior={"lexicon_size": 200}
        )
    )
    out = tmp_path / "sub" / "samples.csv"
    write_csv(synth, 3000, seed=4, out=out, progress=True)
    samples = load_csv(out)
    ids, labels = synth.generate(3000, seed=4)
    assert torch.equal(samples.ids, ids) and torch.equal(samples.labels, labels)
    assert out.read_text(encoding="utf-8").startswith("text,label\n")


def test_configs_compose_and_instantiate() -> None:
    default = compose_generate("out=x.csv")
    assert default.data._target_ == "layoutnet.data.synthetic.SyntheticSource"
    assert default.data.val_size >= 5000
    assert set(default.data.languages) == {"en", "ru", "he"}
    module = instantiate(default.data)
    assert isinstance(module, SyntheticSource) and module.train_size == default.data.train_size

    tiny = compose_generate("out=x.csv", "data=tiny")
    assert tiny.data.train_size < 10_000 and tiny.data.languages.ru.vocab_size <= 5000
    assert tiny.data.augment.capitalize == default.data.augment.capitalize  # inherits the rest

    bad = compose_generate("out=x.csv", "data.train_size=0")
    with pytest.raises(ConfigError, match=r"^data\.train_size=0"):
        build(bad.data, "data")

    csv = compose_generate("out=x.csv", "data=csv", "data.path=/tmp/training_data.csv")
    module = instantiate(csv.data)
    assert isinstance(module, CsvSource) and module.path == "/tmp/training_data.csv"


def test_generate_command_writes_a_csv_the_csv_source_loads(tmp_path: Path) -> None:
    result = run_module(
        "layoutnet.generate",
        cwd=tmp_path,
        timeout=120,
        args=["n=700", "out=samples.csv", "data=tiny", "seed=5", "data.augment.all_caps=0.2"],
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 700 samples (seed 5)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]  # no Hydra folders left behind
    samples = load_csv(tmp_path / "samples.csv")
    assert len(samples) == 700

    config = compose_generate("out=x.csv", "data=tiny", "data.augment.all_caps=0.2")
    module = instantiate(config.data)
    ids, labels = module.synthesizer().generate(700, seed=5)
    assert torch.equal(samples.ids, ids) and torch.equal(samples.labels, labels)

    module = LayoutDataModule(CsvSource(path=str(tmp_path / "samples.csv"), batch_size=64))
    module.check()
    batch_ids, batch_labels = next(iter(module.train_dataloader()))
    assert batch_ids.shape == (64, SEQ_LEN) and batch_labels.shape == (64,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["n=10"], "out"),
        (["n=10", "out=x.csv", "data=csv", "data.path=y.csv"], "data._target_='layoutnet.data.csv_source"),
        (["n=0", "out=x.csv", "data=tiny"], "n=0"),
        (["n=10", "out=sub", "data=tiny"], "out='sub': is a directory"),
        (["n=10", "out=f.txt/x.csv", "data=tiny"], "is a file, not a directory"),
    ],
)
def test_generate_command_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "f.txt").write_text("a file")
    result = run_module("layoutnet.generate", list(args), cwd=tmp_path, timeout=300, full_error=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_generate_runs_without_lightning(tmp_path: Path) -> None:
    # Issue 12.8: generate imports only what it uses; the synthetic source needs no Lightning.
    code = (
        "import atexit, runpy, sys\n"
        "names = {'pytorch_lightning', 'lightning'}\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules} & names)\n"
        "atexit.register(lambda: print('lightning modules:', loaded()))\n"
        "sys.argv = ['generate', 'n=5', 'out=x.csv', 'data=tiny']\n"
        "runpy.run_module('layoutnet.generate', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 5 samples" in result.stdout and "lightning modules: []" in result.stdout
