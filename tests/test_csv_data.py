"""The CSV source and the data module (both sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import layoutnet.data.datamodule as datamodule_module
from layoutnet.contract import CLASS_TO_ID, CLASSES, SEQ_LEN, encode_batch
from layoutnet.data.csv_source import load_csv, split_samples
from layoutnet.data.datamodule import VAL_STREAM_OFFSET, LayoutDataModule
from layoutnet.errors import ConfigError, DataError

SMALL_LANGUAGES = {
    "en": {"vocab_size": 300, "layouts": {"us": 1.0}, "extra_letters": "'"},
    "ru": {"vocab_size": 300, "layouts": {"russianwin": 0.5, "russian": 0.5}},
    "he": {"vocab_size": 300, "layouts": {"hebrew": 0.6, "hebrew_pc": 0.4}},
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    rows = ["text,label", "привет,ru", "ghbdtn,ru_from_en", '"hello, world",en', "akuo,he_from_en", "שלום,he"]
    rows += [f"word{i},en" for i in range(45)]
    return write(tmp_path / "training_data.csv", "\n".join(rows) + "\n")


# CSV source ---------------------------------------------------------------------------------------------


def test_load_csv(good_csv: Path) -> None:
    samples = load_csv(good_csv)
    assert len(samples) == 50
    assert torch.equal(samples.ids[:3], encode_batch(["привет", "ghbdtn", "hello, world"]))
    assert samples.labels[:5].tolist() == [
        CLASS_TO_ID[c] for c in ("ru", "ru_from_en", "en", "he_from_en", "he")
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv not found.*text,label"):
        load_csv(tmp_path / "nowhere.csv")


def test_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "text,class\nhello,en\n")
    with pytest.raises(DataError, match=r"bad\.csv has no column 'label'.*text,class"):
        load_csv(path)
    with pytest.raises(DataError, match="empty"):
        load_csv(write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="no rows"):
        load_csv(write(tmp_path / "header.csv", "text,label\n"))


def test_unknown_label_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "text,label\nhello,en\nghbdtn,russian\n")
    with pytest.raises(
        DataError, match=r"bad\.csv, row 2 \(line 3\): unknown label 'russian'.*ru_from_en"
    ) as err:
        load_csv(path)
    assert "Fix or remove" in str(err.value)


def test_empty_text_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "text,label\nhello,en\nworld,en\n,ru\n")
    with pytest.raises(DataError, match=r"row 3 \(line 4\): empty text"):
        load_csv(path)
    with pytest.raises(DataError, match=r"row 1 .*fewer fields"):
        load_csv(write(tmp_path / "short.csv", "text,label\nhello\n"))


def test_split_is_seeded_and_complete(good_csv: Path) -> None:
    samples = load_csv(good_csv)
    split = split_samples(samples, 0.2, 0.1, seed=4)
    assert [split[name][0].shape[0] for name in ("train", "val", "test")] == [35, 10, 5]
    again = split_samples(samples, 0.2, 0.1, seed=4)
    assert torch.equal(split["val"][0], again["val"][0])
    other = split_samples(samples, 0.2, 0.1, seed=5)
    assert not torch.equal(split["val"][1], other["val"][1]) or not torch.equal(
        split["val"][0], other["val"][0]
    )
    together = torch.cat([split[name][1] for name in ("train", "val", "test")])
    assert sorted(together.tolist()) == sorted(samples.labels.tolist())
    with pytest.raises(ConfigError, match="val_fraction"):
        split_samples(samples, 0.6, 0.5, seed=0)


# Data module: CSV ---------------------------------------------------------------------------------------


def test_csv_module_checks_before_training(tmp_path: Path) -> None:
    module = LayoutDataModule(source="csv", path=str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="not found"):
        module.check()
    bad = write(tmp_path / "bad.csv", "text,label\nhello,english\n")
    with pytest.raises(DataError, match="row 1"):
        LayoutDataModule(source="csv", path=str(bad)).check()
    with pytest.raises(ConfigError, match=r"^path=None"):
        LayoutDataModule(source="csv")
    with pytest.raises(ConfigError, match=r"^source='parquet'"):
        LayoutDataModule(source="parquet")


def test_csv_module_batches_and_describe(good_csv: Path) -> None:
    module = LayoutDataModule(
        source="csv", path=str(good_csv), batch_size=8, val_fraction=0.2, test_fraction=0.2
    )
    module.check()
    module.setup("fit")
    val_ids, val_labels = module.val_tensors()
    assert val_ids.shape == (10, SEQ_LEN) and val_labels.shape == (10,)
    assert module.test_tensors()[0].shape == (10, SEQ_LEN)
    batches = list(module.train_dataloader())
    assert [b[0].shape[0] for b in batches] == [8, 8, 8, 6]
    assert all(b[0].dtype == torch.long and b[1].dtype == torch.long for b in batches)
    first_epoch = torch.cat([b[1] for b in batches])
    second_epoch = torch.cat([b[1] for b in module.train_dataloader()])
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist())
    assert [b[0].shape[0] for b in module.val_dataloader()] == [8, 2]
    info = module.describe()
    assert info["source"] == "csv" and info["path"] == str(good_csv)
    assert info["sizes"] == {"total": 50, "train": 30, "val": 10, "test": 10}
    assert info["languages"] == ["en", "he", "ru"]
    assert info["class_counts"]["en"] == 46


# Data module: synthetic ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> LayoutDataModule:
    module = LayoutDataModule(
        languages=SMALL_LANGUAGES, train_size=5000, val_size=1000, test_size=800, batch_size=512, seed=7
    )
    module.check()
    module.setup("fit")
    return module


def test_synthetic_module_sets_and_batches(synthetic: LayoutDataModule) -> None:
    val_ids, val_labels = synthetic.val_tensors()
    test_ids, _ = synthetic.test_tensors()
    assert val_ids.shape == (1000, SEQ_LEN) and val_labels.dtype == torch.long
    assert test_ids.shape == (800, SEQ_LEN)
    assert torch.equal(synthetic.val_tensors()[0], val_ids)  # fixed
    synth = synthetic.synthesizer()
    assert torch.equal(val_ids, synth.generate(1000, 7 + VAL_STREAM_OFFSET)[0])

    loader = synthetic.train_dataloader()
    assert len(loader) == 10
    epoch0 = list(loader)
    assert [b[0].shape for b in epoch0][-1] == (392, SEQ_LEN)
    ids0 = torch.cat([b[0] for b in epoch0])
    assert torch.equal(ids0, synth.generate(5000, 7)[0])  # epoch 0 = stream seed + 0
    ids1 = torch.cat([b[0] for b in loader])  # without a trainer each pass is the next epoch
    assert torch.equal(ids1, synth.generate(5000, 8)[0])
    assert not torch.equal(val_ids, ids0[:1000])  # validation is its own stream


def test_synthetic_module_shards_the_stream(synthetic: LayoutDataModule, monkeypatch) -> None:
    synth = synthetic.synthesizer()
    stream = synth.generate(5000, 7 + 3)[0]
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(datamodule_module, "_shard", lambda rank=rank: (rank, 2))
        batches = datamodule_module.SyntheticBatches(synth, 5000, 512, 7, lambda: 3)
        assert len(batches) == 5
        parts.append(torch.cat([b[0] for b in batches]))
        val = datamodule_module.FixedBatches(*synthetic.val_tensors(), 300)
        assert len(val) == 2 and sum(b[0].shape[0] for b in val) == 500
    assert torch.equal(parts[0], stream[0::2]) and torch.equal(parts[1], stream[1::2])


def test_synthetic_describe(synthetic: LayoutDataModule) -> None:
    info = synthetic.describe()
    assert info["source"] == "synthetic"
    assert info["sizes"] == {"train_per_epoch": 5000, "val": 1000, "test": 800}
    assert info["seeds"] == {
        "train": "7 + epoch",
        "val": 7 + VAL_STREAM_OFFSET,
        "test": 7 + 2 * VAL_STREAM_OFFSET,
    }
    assert set(info["languages"]) == {"en", "ru", "he"}
    assert info["languages"]["he"]["layouts"] == {"hebrew": 0.6, "hebrew_pc": 0.4}
    assert info["languages"]["ru"]["vocab_size"] == 300
    assert set(info["expected_class_shares"]) == set(CLASSES)
    assert info["correct_layout_share"] == 0.5 and "augment" in info


def test_synthetic_module_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^train_size=0"):
        LayoutDataModule(train_size=0)
    with pytest.raises(ConfigError, match=r"^augment="):
        LayoutDataModule(augment={"typos": 0.2})
    with pytest.raises(ConfigError, match=r"^data\.languages\.en\.layouts\.russianwin"):
        LayoutDataModule(languages={"en": {"layouts": {"russianwin": 1.0}}}).check()  # check() says data.
    missing = LayoutDataModule(languages={"de": {"layouts": {"german": 1.0}, "label_as": "en"}})
    with pytest.raises(DataError, match=r"'german' is not built in.*layouts_dump"):
        missing.check()
    dumped = LayoutDataModule(
        languages={"de": {"layouts": {"german": 1.0}, "label_as": "en"}},
        layouts_dump=str(tmp_path / "none.json"),
    )
    with pytest.raises(DataError, match=r"none\.json not found"):
        dumped.check()
