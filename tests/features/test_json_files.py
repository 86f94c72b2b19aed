"""Atomic JSON documents: a failed write (disk full) keeps the old file and leaves no temporary."""

import errno
import json
import os

import pytest

from mtlrec.features import json_files


def test_a_write_replaces_the_document_whole(tmp_path):
    path = tmp_path / "manifest.json"
    json_files.write_json(path, {"a": 1})
    json_files.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_disk_full_keeps_the_previous_document_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    json_files.write_json(path, {"steps": {"train": {"status": "running"}}})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(json_files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device"):
        json_files.write_json(path, {"steps": {"train": {"status": "done"}}})
    assert json.loads(path.read_text()) == {"steps": {"train": {"status": "running"}}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
