"""A newcomer's first runs, as processes: a quiet console, and MovieLens with no flags."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
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


def _click_log(rows: int = 3000) -> pd.DataFrame:
    """A pre-joined click / watch-time log whose clicks depend on the item."""
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, rows), rng.integers(0, 40, rows)
    click = (rng.random(rows) < np.where(items < 10, 0.6, 0.1)).astype(int)  # by item
    dwell = np.where(click == 1, np.round(rng.exponential(30.0, rows), 1), np.nan)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(rows)],
            "uid": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "ts": 1_704_067_200_000 + np.sort(rng.integers(0, 14 * 86_400_000, rows)),
            "click": click,
            "dwell_s": dwell,
        }
    )


def test_the_config_inspect_proposes_runs_as_written(tmp_path):
    (tmp_path / "raw").mkdir()
    _click_log().to_csv(tmp_path / "raw" / "interactions.csv", index=False)
    mapping = "data.columns={user_id: uid}"
    inspected = _mtlrec(
        "inspect", "--data", "raw", "--set", mapping, "--out", "proposed.yaml", cwd=tmp_path
    )
    assert inspected.returncode == 0, inspected.stderr
    assert "interactions: 3000 rows in 1 file(s); would reject: none" in inspected.stdout

    result = _mtlrec("run", "--config", "proposed.yaml", "--workdir", "work", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "work" / "manifest.json").read_text())["metrics"]
    assert set(metrics) >= {"retrieval", "click", "dwell"}
    assert metrics["click"]["auc"] > 0.55  # the click signal is learnable


def test_a_foreign_tsv_log_runs_with_only_a_column_mapping(tmp_path):
    log = _click_log().rename(
        columns={"event_id": "id", "item_id": "video", "click": "is_click", "dwell_s": "watch_s"}
    )
    log["time_s"] = log.pop("ts") // 1000  # epoch seconds
    (tmp_path / "raw").mkdir()
    log.to_csv(tmp_path / "raw" / "interactions.tsv", sep="\t", index=False)
    mapping = (
        "data.columns={event_id: id, user_id: uid, item_id: video, ts: time_s, "
        "click: is_click, dwell_s: watch_s}"
    )
    result = _mtlrec("run", "--data", "raw", "--set", mapping, "--workdir", "work", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "timestamps look like seconds: data.ts_unit=s" in result.stderr
    manifest = json.loads((tmp_path / "work" / "manifest.json").read_text())
    assert sum(manifest["counts"]["rejected"].values()) == 0
    assert manifest["metrics"]["click"]["auc"] > 0.55
    # seconds timestamps read as ms would put every row in 1970 in one day: hour would be
    # constant; read right, the log spans its 14 days
    assert manifest["counts"]["split_ts"] > 1_704_067_200_000
    assert manifest["metrics"]["dwell"]["rmse_s"] > 0
