"""Atomic hand-off: the artifact, parity_vectors.json and manifest.json are published together, a
re-export in one exchange of directories (two renames with recovery where the exchange is
unavailable); an export killed at any step leaves the old artifact with the old vectors; stale
staging is removed; `validate` checks the manifest's checksums."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import layoutnet.export.pipeline as pipeline
import layoutnet.export.publish as publish
from layoutnet.errors import ExportError
from layoutnet.export.pipeline import ModelInfo, export_model
from layoutnet.export.publish import (
    HANDOFF_EXCHANGE,
    HANDOFF_RENAME,
    HANDOFF_TWO_RENAMES,
    ExchangeUnavailable,
    ExportFolder,
    verify_manifest,
)
from layoutnet.export.result import ExportFailure
from layoutnet.export.settings import ExportSettings

from .test_models import FAMILIES

SETTINGS = ExportSettings(parity_samples=16, random_samples=8, parity_vectors=8)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no cleanup, no rollback)."""


def dead(*_args):
    raise Killed


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def model(seed: int):
    torch.manual_seed(seed)
    return FAMILIES["compact_cnn"]().eval()


@pytest.fixture
def published(tmp_path):
    folder = tmp_path / "export"
    export_model(model(0), SETTINGS, folder, ModelInfo(run_id="old"))
    return folder, snapshot(folder)


def stale(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


def no_exchange(*_args):
    raise ExchangeUnavailable(errno.EINVAL, "Invalid argument")


def exchange_supported(tmp_path: Path) -> bool:
    (tmp_path / ".probe-a").mkdir()
    (tmp_path / ".probe-b").mkdir()
    try:
        publish.exchange_paths(tmp_path / ".probe-a", tmp_path / ".probe-b")
        return True
    except ExchangeUnavailable:
        return False
    finally:
        (tmp_path / ".probe-a").rmdir()
        (tmp_path / ".probe-b").rmdir()


@pytest.fixture
def exchange(tmp_path):
    if not exchange_supported(tmp_path):
        pytest.skip(f"{sys.platform} / this file system cannot exchange two directories atomically")


def test_first_export_is_one_rename_and_a_re_export_one_exchange(tmp_path, exchange, monkeypatch):
    calls = []
    for name in ("_rename", "_exchange"):
        real = getattr(publish, name)
        monkeypatch.setattr(
            publish, name, lambda a, b, real=real, name=name: (calls.append(name), real(a, b))
        )
    folder = tmp_path / "export"
    first = export_model(model(0), SETTINGS, folder, ModelInfo(run_id="old"))
    assert (first.handoff, calls) == (HANDOFF_RENAME, ["_rename"])
    before = snapshot(folder)
    calls.clear()
    second = export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    assert (second.handoff, calls) == (HANDOFF_EXCHANGE, ["_exchange"])
    assert snapshot(folder)["LayoutClassifier.mlmodel"] != before["LayoutClassifier.mlmodel"]
    assert stale(tmp_path) == []


def test_killed_right_after_the_exchange_the_name_holds_the_whole_new_export_and_the_old_is_carried_over(
    published, tmp_path, exchange, monkeypatch
):
    folder, before = published
    (folder / "failed" / "attempt").mkdir(parents=True)
    (folder / "failed" / "attempt" / "reason.txt").write_text("old failure")
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    real_exchange = publish._exchange

    def exchange_then_die(a, b):
        real_exchange(a, b)
        raise Killed

    monkeypatch.setattr(publish, "_exchange", exchange_then_die)
    monkeypatch.setattr(ExportFolder, "fail", dead)
    with pytest.raises(Killed):
        export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    monkeypatch.undo()
    new = snapshot(folder)
    assert set(new) == {"LayoutClassifier.mlmodel", "parity_vectors.json", "manifest.json"}
    assert new["LayoutClassifier.mlmodel"] != before["LayoutClassifier.mlmodel"]
    assert verify_manifest(folder / "LayoutClassifier.mlmodel", json.loads(new["manifest.json"])) == []
    (swapped_out,) = [tmp_path / n for n in stale(tmp_path)]
    assert ".staging-" in swapped_out.name and snapshot(swapped_out) == before

    done = ExportFolder(folder).recover()
    assert stale(tmp_path) == [] and any("stale" in line for line in done)
    assert snapshot(folder) == {
        **new,
        "failed/attempt/reason.txt": b"old failure",
        "notes.txt": b"mine",
    }


# Another process reading the folder's manifest in a loop until the stop file appears.
READER = """
import os, sys
manifest, stop = sys.argv[1], sys.argv[2]
reads = missing = 0
while not os.path.exists(stop):
    try:
        with open(manifest) as handle:
            handle.read()
        reads += 1
    except FileNotFoundError:
        missing += 1
print(reads, missing)
"""


def test_a_reader_never_finds_the_folder_missing_while_exports_are_exchanged(tmp_path, exchange):
    folder = ExportFolder(tmp_path / "export")

    def publish_one(index: int) -> str:
        staging = folder.stage()
        (staging / "manifest.json").write_text(json.dumps({"export": index}))
        (staging / "parity_vectors.json").write_text("{}")
        return folder.publish(staging)

    publish_one(0)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(folder.directory / "manifest.json"), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        handoffs = {publish_one(i) for i in range(1, 300)}
    finally:
        stop.write_text("")
        reads, missing = map(int, reader.communicate(timeout=60)[0].split())
    # (With two renames this reader sees the name missing a few times in 300 hand-offs.)
    assert handoffs == {HANDOFF_EXCHANGE}
    assert reads > 0 and missing == 0
    assert json.loads((folder.directory / "manifest.json").read_text()) == {"export": 299}
    assert stale(tmp_path) == []


def test_without_the_exchange_a_re_export_takes_two_renames_and_says_why(published, tmp_path, monkeypatch):
    folder, before = published
    monkeypatch.setattr(publish, "_exchange", no_exchange)
    result = export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    assert result.handoff == f"{HANDOFF_TWO_RENAMES} (exchange unavailable: Invalid argument)"
    assert snapshot(folder)["LayoutClassifier.mlmodel"] != before["LayoutClassifier.mlmodel"]
    assert stale(tmp_path) == []


def test_an_exchange_that_fails_for_another_reason_fails_the_export_and_keeps_the_old_one(
    published, monkeypatch
):
    folder, before = published

    def denied(a, b):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(a), None, str(b))

    monkeypatch.setattr(publish, "_exchange", denied)
    with pytest.raises(PermissionError):
        export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    assert {k: v for k, v in snapshot(folder).items() if not k.startswith("failed/")} == before
    assert any(k.startswith("failed/") and k.endswith("LayoutClassifier.mlmodel") for k in snapshot(folder))


def test_export_folder_holds_artifact_vectors_and_manifest_that_agree(published):
    folder, files = published
    assert set(files) == {"LayoutClassifier.mlmodel", "parity_vectors.json", "manifest.json"}
    manifest = json.loads(files["manifest.json"])
    assert verify_manifest(folder / "LayoutClassifier.mlmodel", manifest) == []
    assert manifest["parity_vectors"]["file"] == "parity_vectors.json"
    assert {"torch", "coremltools", "layoutnet"} <= set(manifest["versions"])
    assert manifest["settings"]["format"] == "neuralnetwork" and manifest["parity"]["passed"]
    assert set(manifest["parity_by_precision"]) == {
        "fp32",
        "fp16_storage",
        "fp16_wide",
        "fp16",
        "fp16_sequential",
    }
    assert manifest["range_guards"]["values"]["passed"] and manifest["compression_cost"] is None


def test_killed_after_staging_leaves_old_artifact_with_old_vectors_and_next_export_cleans_up(
    published, tmp_path, monkeypatch
):
    folder, before = published

    monkeypatch.setattr(ExportFolder, "publish", dead)
    monkeypatch.setattr(ExportFolder, "fail", dead)
    with pytest.raises(Killed):
        export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    assert snapshot(folder) == before
    (staging,) = [tmp_path / name for name in stale(tmp_path)]
    assert {"LayoutClassifier.mlmodel", "parity_vectors.json", "manifest.json"} <= {
        p.name for p in staging.iterdir()
    }

    monkeypatch.undo()
    export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    assert stale(tmp_path) == []
    after = snapshot(folder)
    assert after["LayoutClassifier.mlmodel"] != before["LayoutClassifier.mlmodel"]
    assert json.loads(after["parity_vectors.json"]) != json.loads(before["parity_vectors.json"])
    assert verify_manifest(folder / "LayoutClassifier.mlmodel", json.loads(after["manifest.json"])) == []


def test_killed_between_the_two_renames_keeps_old_files_together_and_is_recovered(
    published, tmp_path, monkeypatch
):
    folder, before = published
    monkeypatch.setattr(publish, "_exchange", no_exchange)
    real_replace = publish._rename
    calls = []

    def replace_then_die(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) > 1:
            raise Killed  # the kill lands after the old folder was moved aside
        real_replace(src, dst)

    monkeypatch.setattr(publish, "_rename", replace_then_die)
    monkeypatch.setattr(ExportFolder, "fail", dead)
    with pytest.raises(Killed):
        export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    monkeypatch.undo()
    assert not folder.exists()  # the name is empty, never new artifact beside old vectors
    (previous,) = [tmp_path / n for n in stale(tmp_path) if ".previous-" in n]
    assert snapshot(previous) == before

    done = ExportFolder(folder).recover()
    assert snapshot(folder) == before and stale(tmp_path) == []
    assert any("restored" in line for line in done) and any("stale" in line for line in done)


def test_failed_second_rename_rolls_back_to_the_old_export(published, tmp_path, monkeypatch):
    folder, before = published
    monkeypatch.setattr(publish, "_exchange", no_exchange)
    real_replace = publish._rename
    calls = []

    def second_rename_fails(src, dst):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(publish, "_rename", second_rename_fails)
    with pytest.raises(OSError):
        export_model(model(1), SETTINGS, folder, ModelInfo(run_id="new"))
    monkeypatch.undo()
    kept = {k: v for k, v in snapshot(folder).items() if not k.startswith("failed/")}
    assert kept == before
    assert any(k.startswith("failed/") and k.endswith("reason.txt") for k in snapshot(folder))


def test_failed_export_keeps_the_staged_files_and_reason(published, monkeypatch):
    folder, before = published
    monkeypatch.setattr(
        pipeline, "write_manifest", lambda *a: (_ for _ in ()).throw(ExportError("disk full"))
    )
    with pytest.raises(ExportFailure, match="disk full") as info:
        export_model(model(1), SETTINGS, folder, ModelInfo())
    failed = Path(info.value.result.failed_dir)
    assert failed.parent == folder / "failed" and "disk full" in (failed / "reason.txt").read_text()
    assert (failed / "LayoutClassifier.mlmodel").exists()
    assert {k: v for k, v in snapshot(folder).items() if not k.startswith("failed/")} == before


def test_replacing_an_export_keeps_failed_attempts_and_drops_evaluations_of_the_old_artifact(published):
    folder, _ = published
    (folder / "failed" / "attempt").mkdir(parents=True)
    (folder / "failed" / "attempt" / "reason.txt").write_text("old failure")
    (folder / "LayoutClassifier.eval.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    export_model(model(1), dataclasses.replace(SETTINGS, format="mlprogram"), folder, ModelInfo())
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "LayoutClassifier.mlpackage",
        "parity_vectors.json",
        "manifest.json",
        "failed",
        "notes.txt",
    }
    assert (folder / "failed" / "attempt" / "reason.txt").read_text() == "old failure"


def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "desktop").mkdir()
    (tmp_path / "desktop" / "holiday.jpg").write_text("x")
    with pytest.raises(ExportFailure, match="not a layoutnet export"):
        export_model(model(0), SETTINGS, tmp_path / "desktop", ModelInfo())
    assert [p.name for p in (tmp_path / "desktop").iterdir()] == ["holiday.jpg"]


def test_manifest_check_names_a_changed_file(published):
    folder, _ = published
    manifest = json.loads((folder / "manifest.json").read_text())
    with open(folder / "LayoutClassifier.mlmodel", "ab") as handle:
        handle.write(b"\0")
    assert verify_manifest(folder / "LayoutClassifier.mlmodel", manifest) == [
        "LayoutClassifier.mlmodel: checksum differs from the manifest"
    ]
