"""`mtlrec runs` and `mtlrec report` on hand-written manifests."""

import json

import pytest

from mtlrec.cli import main
from mtlrec.manifest import STEP_NAMES
from mtlrec.runs import headline, report_path, run_summary, runs_table, status


def _manifest(workdir, run_id, updated, steps, **extra):
    document = {
        "run_id": run_id,
        "updated": updated,
        "steps": {name: {"status": state} for name, state in steps.items()},
        **extra,
    }
    path = workdir / "runs" / run_id / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    return document


def test_status_names_the_first_step_that_did_not_finish():
    def steps(**states):
        return {"steps": {name: {"status": state} for name, state in states.items()}}

    done = dict.fromkeys(STEP_NAMES, "done")
    assert status(steps(**done)) == "done"
    assert status(steps(**{**done, "train": "failed", "evaluate": "done"})) == "train failed"
    assert status(steps(validate="skipped")) == "preprocess not run"


def test_headline_takes_each_tasks_first_headline_metric():
    metrics = {
        "click": {"logloss": 0.3, "auc": 0.71234},
        "rating": {"rmse": 0.95, "mae": 0.7},
        "retrieval": {"recall@100": 0.4, "ndcg@100": 0.2},
        "baselines": {"popularity": {"click": {"auc": 0.6}}},
    }
    assert headline(metrics) == "click auc=0.7123, rating rmse=0.9500, retrieval recall@100=0.4000"


def test_runs_lists_every_run_oldest_first(tmp_path, capsys):
    _manifest(
        tmp_path,
        "run-b",
        "2026-12-07T06:00:00+00:00",
        dict.fromkeys(STEP_NAMES, "done"),
        blessed=True,
        models={"m": "/w/serving/m/3", "r": "/w/serving/r/3"},
        metrics={"click": {"auc": 0.7}},
        input={"dates": ["2026-01-01", "2026-01-07"]},
    )
    _manifest(tmp_path, "run-a", "2026-12-06T06:00:00+00:00", {"validate": "failed"})
    assert main(["runs", "--workdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:1] for line in lines] == [["run"], ["run-a"], ["run-b"]]
    assert lines[1].split()[2:5] == ["all", "validate", "failed"]
    assert lines[2].split()[2:] == [
        "2026-01-01..2026-01-07",
        "done",
        "yes",
        "3",
        "click",
        "auc=0.7000",
    ]
    assert runs_table(tmp_path / "empty")[0].split() == lines[0].split()


def test_report_is_the_latest_runs_unless_named(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "run-b"}))
    for run in ("run-a", "run-b"):
        report = tmp_path / "runs" / run / "evaluate" / "report.html"
        report.parent.mkdir(parents=True)
        report.write_text("<html></html>")
    assert report_path(tmp_path, None) == tmp_path / "runs" / "run-b" / "evaluate" / "report.html"
    assert main(["report", "run-a", "--workdir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("runs/run-a/evaluate/report.html")
    with pytest.raises(FileNotFoundError, match="no report"):
        report_path(tmp_path, "run-c")
    assert main(["report", "--workdir", str(tmp_path / "none")]) == 1
    assert "no run in this workdir yet" in capsys.readouterr().err


def test_the_run_summary_sets_each_task_against_its_baselines(tmp_path):
    report = tmp_path / "evaluate" / "report.html"
    report.parent.mkdir()
    report.write_text("<html></html>")
    manifest = {
        "metrics": {
            "click": {"auc": 0.71, "logloss": 0.3},
            "rating": {"rmse": 0.95},
            "baselines": {
                "popularity": {"click": {"auc": 0.62}, "rating": {"rmse": 1.03}},
                "single_task": {"click": {"auc": 0.7}},
            },
        },
        "blessing": {"blessed": False, "reasons": ["click.auc = 0.71, needs >= 0.8: FAILED"]},
        "models": {"mtlrec_ranker": "/w/serving/mtlrec_ranker/4"},
    }
    assert run_summary(manifest, tmp_path) == [
        "click: auc 0.7100 (vs popularity 0.6200, single-task 0.7000)",
        "rating: rmse 0.9500 (vs popularity 1.0300)",
        "not blessed: click.auc = 0.71, needs >= 0.8: FAILED",
        "pushed: mtlrec_ranker v4",
        f"report: {report}",
    ]
