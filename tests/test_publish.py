"""Atomic publishing: a failed artifact never replaces a good one and is kept with its reason."""

import pytest

from layoutnet.errors import ExportError
from layoutnet.export.publish import publish_validated


def write_dir(text):
    def write(path):
        path.mkdir()
        (path / "weights.bin").write_text(text)

    return write


def passes(_path):
    return None


def fails(_path):
    raise ExportError("parity failed: max |softmax difference| 0.2")


def test_publish_moves_validated_directory_into_place_and_replaces_old(tmp_path):
    target = tmp_path / "export" / "Model.mlpackage"
    publish_validated(target, write_dir("v1"), passes)
    assert (target / "weights.bin").read_text() == "v1"
    publish_validated(target, write_dir("v2"), passes)
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["Model.mlpackage"]


def test_failed_validation_keeps_good_artifact_and_records_failure(tmp_path):
    target = tmp_path / "Model.mlpackage"
    publish_validated(target, write_dir("good"), passes)
    with pytest.raises(ExportError):
        publish_validated(target, write_dir("bad"), fails)
    assert (target / "weights.bin").read_text() == "good"
    failed = list((tmp_path / "failed").iterdir())
    assert len(failed) == 1
    assert "parity failed" in (failed[0] / "reason.txt").read_text()
    assert (failed[0] / "Model.mlpackage" / "weights.bin").read_text() == "bad"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_write_of_single_file_leaves_target_untouched(tmp_path):
    target = tmp_path / "Model.mlmodel"
    publish_validated(target, lambda p: p.write_text("good"), passes)

    def broken_write(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        publish_validated(target, broken_write, passes)
    assert target.read_text() == "good"
    assert "disk full" in next((tmp_path / "failed").iterdir()).joinpath("reason.txt").read_text()
