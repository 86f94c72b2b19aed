"""Clock-skewed rows through the CLI's default run: dead-lettered, and the split unmoved."""

import datetime
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

DAY_MS = 86_400_000


def _mtlrec(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "mtlrec", *args], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _steps(cwd: pathlib.Path, data: str, run_id: str) -> dict:
    common = ["--data", data, "--workdir", "work", "--run-id", run_id]
    _mtlrec("validate", *common, cwd=cwd)
    _mtlrec("preprocess", *common, cwd=cwd)
    manifest = json.loads((cwd / "work" / "runs" / run_id / "manifest.json").read_text())
    return {name: manifest["steps"][name]["result"] for name in ("validate", "preprocess")}


def test_rows_years_off_their_day_are_out_of_range_and_leave_every_split_as_it_was(tmp_path):
    _mtlrec(
        "generate", "--out", "clean", "--users", "150", "--items", "80", "--days", "6", cwd=tmp_path
    )
    shutil.copytree(tmp_path / "clean", tmp_path / "skewed")
    day = sorted((tmp_path / "skewed" / "events").glob("dt=*"))[-1]
    partition_ms = int(
        datetime.datetime.fromisoformat(day.name[3:] + "T00:00:00+00:00").timestamp() * 1000
    )
    skewed = {
        "ahead": partition_ms + 400 * DAY_MS,  # a device clock a year ahead
        "epoch": 1,  # ts=1: an unset clock
        "1913": -1_798_761_600_000,  # 1913-01-01
    }
    rows = [
        {
            "event_id": f"skew-{name}",
            "ts": ts,
            "user_id": "u1",
            "item_id": "i1",
            "event_type": "impression",
            "request_id": f"r-skew-{name}",
            "position": 0,
            "device": "mobile",
        }
        for name, ts in skewed.items()
    ]
    (day / "skew-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    clean = _steps(tmp_path, "clean", "clean")
    dirty = _steps(tmp_path, "skewed", "skewed")

    assert dirty["validate"]["events_read"] == clean["validate"]["events_read"] + 3
    assert dirty["validate"]["rejected"]["out_of_range"] == (
        clean["validate"]["rejected"]["out_of_range"] + 3
    )
    assert dirty["validate"]["accepted"] == clean["validate"]["accepted"]
    for key in ("train_examples", "validation_examples", "eval_examples", "split_ts"):
        assert dirty["preprocess"][key] == clean["preprocess"][key], key
    assert min(dirty["preprocess"][k] for k in ("train_examples", "eval_examples")) > 500
    dead = [
        json.loads(line)
        for f in (tmp_path / "work" / "runs" / "skewed" / "validate" / "dead_letter").glob(
            "events*.jsonl"
        )
        for line in f.read_text().splitlines()
    ]
    assert {d["event_id"]: d["reason"] for d in dead if d["event_id"].startswith("skew-")} == {
        f"skew-{name}": "out_of_range" for name in skewed
    }
