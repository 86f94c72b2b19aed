"""Atomic versioned writes: increasing versions, and a crash never leaves a partial version."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from mtlrec.deploy import versioning

# The child writes the version (or half of it), says where it stopped, then waits to be killed.
_CHILD = textwrap.dedent(
    """
    import pathlib, sys, time
    from mtlrec.deploy import versioning

    model_dir, stop_in = pathlib.Path(sys.argv[1]), sys.argv[2]

    def write(tmp):
        (tmp / "saved_model.pb").write_bytes(b"graph")
        if stop_in == "write":
            print("stopped", flush=True)
            time.sleep(600)
        (tmp / "variables").mkdir()
        (tmp / "variables" / "variables.index").write_bytes(b"index")

    def verify(tmp):
        print("stopped", flush=True)
        time.sleep(600)

    versioning.publish_version(model_dir, write, verify)
    """
)


def _write_complete(tmp: pathlib.Path) -> None:
    (tmp / "saved_model.pb").write_bytes(b"graph")
    (tmp / "variables").mkdir()
    (tmp / "variables" / "variables.index").write_bytes(b"index")


def _accept(tmp: pathlib.Path) -> None:
    assert (tmp / "saved_model.pb").read_bytes() == b"graph"


def _kill_child_in(model_dir: pathlib.Path, stop_in: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(model_dir), stop_in],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "stopped"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_versions_are_increasing_integers_and_complete(tmp_path):
    model_dir = tmp_path / "mtlrec_ranker"
    first = versioning.publish_version(model_dir, _write_complete, _accept)
    second = versioning.publish_version(model_dir, _write_complete, _accept)
    assert (first.name, second.name) == ("1", "2")
    assert versioning.list_versions(model_dir) == [1, 2]
    assert (second / "variables" / "variables.index").read_bytes() == b"index"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]


def test_version_follows_the_largest_existing_one(tmp_path):
    model_dir = tmp_path / "m"
    (model_dir / "7").mkdir(parents=True)
    (model_dir / "notes").mkdir()
    assert versioning.publish_version(model_dir, _write_complete, _accept).name == "8"


def test_failed_verification_publishes_nothing(tmp_path):
    model_dir = tmp_path / "m"

    def reject(tmp: pathlib.Path) -> None:
        raise ValueError("predictions differ")

    with pytest.raises(ValueError, match="predictions differ"):
        versioning.publish_version(model_dir, _write_complete, reject)
    assert list(model_dir.iterdir()) == []


@pytest.mark.parametrize("stop_in", ["write", "verify"])
def test_killed_export_leaves_no_partial_version(tmp_path, stop_in):
    model_dir = tmp_path / "mtlrec_ranker"
    versioning.publish_version(model_dir, _write_complete, _accept)

    _kill_child_in(model_dir, stop_in)

    assert versioning.list_versions(model_dir) == [1]
    leftovers = [p for p in model_dir.iterdir() if p.name != "1"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    # The next export removes the dead exporter's temporary and takes the next version.
    published = versioning.publish_version(model_dir, _write_complete, _accept)
    assert published.name == "2"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]


def test_temporary_of_a_live_exporter_is_kept(tmp_path):
    model_dir = tmp_path / "m"
    live = model_dir / f".tmp-{socket.gethostname()}-{os.getpid()}-abc"
    live.mkdir(parents=True)
    assert versioning.clean_stale_temporaries(model_dir) == []
    assert live.is_dir()
    assert versioning.next_version(model_dir) == 1
