"""The one `text,label` CSV format, the data sources (CSV, synthetic) and the data module that wraps them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import layoutnet.data.batches as batches_module
from layoutnet.contract import CLASS_TO_ID, CLASSES, SEQ_LEN, encode_batch
from layoutnet.data import csvfile
from layoutnet.data.csv_source import CsvSource, load_csv, split_samples
from layoutnet.data.datamodule import LayoutDataModule
from layoutnet.data.sources import KNOWN_SOURCES, DataSource, is_known_source
from layoutnet.data.synthetic import VAL_STREAM_OFFSET, SyntheticSource
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
        DataError, match=r"bad\.csv, line 3: label 'russian' is not one of the 9 classes.*ru_from_en"
    ) as err:
        load_csv(path)
    assert "fix or remove that row" in str(err.value)


def test_empty_text_is_a_sample_and_a_short_row_names_its_line(tmp_path: Path) -> None:
    # One rule for every reader (issue 8.3): an empty text is a valid sample, written `,label`.
    samples = load_csv(write(tmp_path / "empty.csv", "text,label\nhello,en\nworld,en\n,ru\n"))
    assert len(samples) == 3 and samples.ids[2].eq(0).all() and samples.labels[2] == CLASS_TO_ID["ru"]
    with pytest.raises(DataError, match=r"short\.csv, line 2: the row has 1 field\(s\), expected 2"):
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
    module = CsvSource(path=str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="not found"):
        module.check()
    bad = write(tmp_path / "bad.csv", "text,label\nhello,english\n")
    with pytest.raises(DataError, match="line 2"):
        CsvSource(path=str(bad)).check()
    with pytest.raises(ConfigError, match=r"^path=None"):
        CsvSource()
    # The form of configs written before sources were objects still builds (old run directories).
    with pytest.raises(ConfigError, match=r"^path=None"):
        LayoutDataModule(source="csv")
    with pytest.raises(ConfigError, match=r"^source='parquet'"):
        LayoutDataModule(source="parquet")


def test_csv_module_batches_and_describe(good_csv: Path) -> None:
    module = LayoutDataModule(
        CsvSource(path=str(good_csv), batch_size=8, val_fraction=0.2, test_fraction=0.2)
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
        SyntheticSource(
            languages=SMALL_LANGUAGES, train_size=5000, val_size=1000, test_size=800, batch_size=512, seed=7
        )
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
    synth = synthetic.source.synthesizer()
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
    synth = synthetic.source.synthesizer()
    stream = synth.generate(5000, 7 + 3)[0]
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(batches_module, "_shard", lambda rank=rank: (rank, 2))
        batches = batches_module.SyntheticBatches(synth, 5000, 512, 7, lambda: 3)
        assert len(batches) == 5
        parts.append(torch.cat([b[0] for b in batches]))
        val = batches_module.FixedBatches(*synthetic.val_tensors(), 300)
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
        SyntheticSource(train_size=0)
    with pytest.raises(ConfigError, match=r"^augment\.typos="):
        SyntheticSource(augment={"typos": 0.2})
    with pytest.raises(ConfigError, match=r"^data\.languages\.en\.layouts\.russianwin"):
        SyntheticSource(languages={"en": {"layouts": {"russianwin": 1.0}}}).check()  # check() says data.
    with pytest.raises(ConfigError, match=r"^batch_size=0"):
        SyntheticSource(batch_size=0)
    missing = SyntheticSource(languages={"de": {"layouts": {"german": 1.0}, "label_as": "en"}})
    with pytest.raises(DataError, match=r"'german' is not built in.*layouts_dump"):
        missing.check()
    dumped = SyntheticSource(
        languages={"de": {"layouts": {"german": 1.0}, "label_as": "en"}},
        layouts_dump=str(tmp_path / "none.json"),
    )
    with pytest.raises(DataError, match=r"none\.json not found"):
        dumped.check()


# The one text,label format (layoutnet.data.csvfile) --------------------------------------------------------


def test_header_is_optional_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    plain = csvfile.read(write(tmp_path / "plain.csv", "привет,ru\nghbdtn, RU_FROM_EN \n"))
    assert plain.texts == ["привет", "ghbdtn"] and plain.labels == [0, CLASS_TO_ID["ru_from_en"]]
    assert plain.lines == [1, 2]
    named = csvfile.read(write(tmp_path / "named.csv", "id,label,text\n1,en,hello\n\n2,he,שלום\n"))
    assert named.texts == ["hello", "שלום"] and named.lines == [2, 4]  # a blank line is skipped
    # A first row whose second cell is a class is a sample, even when its text is the word "text".
    assert csvfile.read(write(tmp_path / "word.csv", "text,en\n")).texts == ["text"]


def test_missing_label_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cols\.csv has no column 'label' \(its header is text,kind\)"):
        csvfile.read(write(tmp_path / "cols.csv", "text,kind\nhello,en\n"))
    with pytest.raises(DataError, match=r"has no column 'text'"):
        csvfile.read(write(tmp_path / "cols.csv", "words,label\nhello,en\n"))


def test_each_bad_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    # The quoted text spans lines 2-3, so the bad label is on the row that starts at line 4.
    path = write(tmp_path / "rows.csv", 'text,label\n"two\nlines",en\nok,english\n')
    with pytest.raises(DataError, match=r"rows\.csv, line 4: label 'english' is not one of"):
        csvfile.read(path)
    with pytest.raises(DataError, match=r"rows\.csv, line 2: the row has 3 field\(s\)"):
        csvfile.read(write(path, "text,label\nhello, world,en\n"))
    with pytest.raises(DataError, match=r"not UTF-8"):
        path.write_bytes(b"text,label\n\xff\xfe,en\n")
        csvfile.read(path)
    with pytest.raises(DataError, match=r"is a directory"):
        csvfile.read(tmp_path)


def test_quoted_fields_hold_any_unicode_and_any_length(tmp_path: Path) -> None:
    breaks = "a\u2028b\x85c\x0cd\re\r\nf\u2029g\x1ch\x0bi"
    long_text = "ы" * 300_000  # over the csv module's default field limit (128 KiB)
    path = write(tmp_path / "odd.csv", f'text,label\n"{breaks}",ru\n"{long_text}",ru\n"say ""hi""",en\n')
    rows = csvfile.read(path)
    assert rows.texts == [breaks, long_text, 'say "hi"'] and rows.lines == [2, 5, 6]


HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(",\"\n\r\u2028\u2029\x85\x0c\x0b\x1c\x00\ufeff \t'ש"),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(HOSTILE, st.integers(0, len(CLASSES) - 1)), min_size=1, max_size=8))
def test_what_write_writes_read_returns_identically(tmp_path_factory, rows) -> None:
    path = tmp_path_factory.mktemp("rt") / "rows.csv"
    texts, labels = [t for t, _ in rows], [c for _, c in rows]
    assert csvfile.write(path, texts, labels) == len(rows)
    back = csvfile.read(path)
    assert back.texts == texts and back.labels == labels
    # Every text with a character that str.splitlines (or a BOM-aware tool) treats specially is quoted.
    content = path.read_bytes().decode("utf-8")
    for text in texts:
        if len(text.splitlines()) > 1 or (text.splitlines() != [text] and text) or "\ufeff" in text:
            assert '"' + text.replace('"', '""') + '",' in content


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = csvfile.write(tmp_path / "keep.csv", ["a"], ["en"]) and tmp_path / "keep.csv"
    with pytest.raises(DataError, match="cannot write label 'klingon'"):
        csvfile.write(path, ["a", "b"], ["en", "klingon"])
    assert csvfile.read(path).texts == ["a"] and sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]
    with pytest.raises(DataError, match="is a directory"):
        csvfile.write(tmp_path, ["a"], ["en"])


# Data sources ------------------------------------------------------------------------------------------


def test_every_data_config_names_a_known_source_and_every_known_source_is_one() -> None:
    import importlib

    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "data"
    targets = {yaml.safe_load(p.read_text()).get("_target_") for p in conf.glob("*.yaml")} - {None}
    assert targets and all(is_known_source(t) for t in targets)
    for target in KNOWN_SOURCES:
        module, _, name = target.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, DataSource | LayoutDataModule)
    assert not is_known_source("os.system") and not is_known_source({"_target_": "x"})


class _ListSource(DataSource):
    """A source the data module has never heard of: it works through the interface alone."""

    name = "list"

    def _prepare(self) -> None:
        pass

    def _splits(self):
        ids = encode_batch(["ab", "cd", "ef"])
        return {"val": (ids, torch.tensor([0, 1, 2])), "test": (ids[:1], torch.tensor([1]))}

    def train_batches(self, epoch):
        return batches_module.FixedBatches(*self._splits()["val"], self.batch_size)

    def _describe(self):
        return {"rows": 3}


def test_the_data_module_works_with_any_source() -> None:
    module = LayoutDataModule(_ListSource(batch_size=2))
    module.setup("fit")
    assert [b[1].tolist() for b in module.train_dataloader()] == [[0, 1], [2]]
    assert module.test_tensors()[1].tolist() == [1]
    assert module.describe() == {"source": "list", "batch_size": 2, "rows": 3}
