"""A newcomer's first runs, as processes: a quiet console, and MovieLens with no flags."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from mtlrec.native_logs import NATIVE_LINE

pytestmark = pytest.mark.slow

SMALL = [
    "--set", "data.generate.users=300",
    "--set", "data.generate.items=150",
    "--set", "data.generate.days=6",
    "--set", "training.epochs=1",
    "--set", "evaluation.baselines=[popularity]",
]  # fmt: skip


def _mtlrec(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mtlrec", *args], cwd=cwd, capture_output=True, text=True
    )


def test_the_console_of_a_default_run_has_no_native_log_line(tmp_path):
    # The default Beam runner: two worker processes, each loading TensorFlow.
    result = _mtlrec("run", "--workdir", str(tmp_path / "work"), *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    console = (result.stdout + result.stderr).splitlines()[:200]
    assert any("step validate: done" in line for line in console)
    # The run ends with its summary: the blessing decision and where the report is.
    assert "blessed" in console[-4] or "blessed" in console[-3]
    assert console[-2].endswith("evaluate/report.html")
    noisy = [
        line
        for line in console
        if NATIVE_LINE.match(line.encode()) or line.startswith("WARNING:tensorflow")
    ]
    assert noisy == []


def test_movielens_import_then_run_with_no_other_flag(movielens_100k, tmp_path):
    # A fifth of the ratings (u.data is in no particular order) keeps the run short.
    src = tmp_path / "ml"
    shutil.copytree(movielens_100k, src)
    lines = (src / "u.data").read_text().splitlines()[:20_000]
    (src / "u.data").write_text("\n".join(lines) + "\n")
    imported = _mtlrec("import", "movielens", "--src", str(src), "--out", "raw", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr

    result = _mtlrec("run", "--data", "raw", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "names the preset 'movielens'" in result.stderr
    manifest = json.loads((tmp_path / "mtlrec-work" / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert set(metrics) >= {"retrieval", "rating"}
    assert 0 < metrics["rating"]["rmse"] < 1.5
    assert metrics["retrieval"]["recall@100"] > 0
