"""The evaluation report: self-contained HTML with embedded plots, tables and the markdown."""

import base64
import json
import re

import numpy as np
import pytest

from mtlrec.evaluation import report, report_plots, report_tables

METRICS = {
    "click": {"auc": 0.71, "gauc": 0.64, "logloss": 0.41, "ece": 0.012, "calibration_ratio": 1.02},
    "dwell": {"rmse_s": 31.5, "mae_s": 20.25},
    "retrieval": {"recall@10": 0.12, "ndcg@10": 0.07},
    "baselines": {
        "popularity": {
            "click": {"auc": 0.60, "gauc": 0.55, "logloss": 0.45, "ece": 0.02},
            "retrieval": {"recall@10": 0.05, "ndcg@10": 0.03},
        },
        "single_task": {"click": {"auc": 0.72, "logloss": 0.40}, "dwell": {"rmse_s": 33.0}},
    },
    "slices": {
        "device": {
            "ios": {
                "rows": 700,
                "queries": 40,
                "click": {"auc": 0.70},
                "retrieval": {"recall@10": 0.2},
            },
            "web": {"rows": 300, "click": {"auc": 0.73}},
        }
    },
    "counts": {"eval_rows": 1000},
}
HISTORY = [
    {
        "epoch": e,
        "step": 10 * (e + 1),
        "train_loss": {"click": tl, "dwell": 0.9 - 0.1 * e},
        "eval": {"click": {"loss": el, "auc": 0.6 + 0.02 * e}, "dwell": {"loss": 1.0 - 0.1 * e}},
        "eval_loss": el + 0.5,
        "weights": {"click": w, "dwell": 0.5},
    }
    for e, (tl, el, w) in enumerate([(0.55, 0.57, 1.0), (0.47, 0.50, 0.9), (0.43, 0.48, 0.8)])
]
BLESSING = {
    "blessed": False,
    "checks": [
        {
            "metric": "click.auc",
            "kind": "regression",
            "value": 0.71,
            "threshold": 0.7425,
            "baseline": 0.75,
            "passed": False,
        }
    ],
    "reasons": [
        "last blessed run run-previous: re-scored on this run's test split (1000 rows)",
        "click.auc = 0.71, needs >= 0.7425: FAILED",
    ],
    "previous_run_id": "run-previous",
    "last_blessed": {
        "run_id": "run-previous",
        "metrics": {"click": {"auc": 0.75}, "dwell": {"rmse_s": 30.0}},
        "source": "rescored",
        "reason": "last blessed run run-previous: re-scored on this run's test split (1000 rows)",
    },
}
PRIMARY = {"click": "auc", "dwell": "rmse_s", "retrieval": "recall@10"}


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probabilities = np.clip(0.25 + 0.4 * labels + rng.normal(0, 0.15, 400), 0.01, 0.99)
    evaluate = tmp_path / "run-1" / "evaluate"
    evaluate.mkdir(parents=True)
    (evaluate / "metrics.json").write_text(json.dumps(METRICS))
    curves = {"click": report_plots.task_curves(labels, probabilities, bins=20)}
    (evaluate / "curves.json").write_text(json.dumps(curves))
    (tmp_path / "run-1" / "train").mkdir()
    (tmp_path / "run-1" / "train" / "history.json").write_text(json.dumps(HISTORY))
    (tmp_path / "run-1" / "validate").mkdir()
    (tmp_path / "run-1" / "validate" / "counts.json").write_text(
        json.dumps({"events_read": 5000, "rejected": {"bad_timestamp": 7}})
    )
    return tmp_path / "run-1"


def test_html_is_self_contained_with_embedded_plots(run_dir):
    paths = report.render_report(run_dir, primary=PRIMARY, blessing=BLESSING)
    page = paths["html"].read_text()
    for forbidden in ("http://", "https://", 'src="//', "<link", "<script"):
        assert forbidden not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    # roc, calibration, the click and dwell training curves, the loss weights
    assert len(images) == 5
    for data in images:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"http" not in png  # not even in the PNG metadata
    assert sorted(p.name for p in (run_dir / "evaluate" / "plots").iterdir()) == [
        "calibration.png",
        "loss_weights.png",
        "roc.png",
        "training_click.png",
        "training_dwell.png",
    ]


def test_html_tables(run_dir):
    page = report.render_report(run_dir, primary=PRIMARY, blessing=BLESSING)["html"].read_text()
    # click AUC row: model, popularity and its delta (better), single-task and its delta (worse)
    assert (
        '<td>click</td><td class="name">auc</td><td>0.7100</td><td>0.6000</td>'
        '<td class="good">+0.1100</td><td>0.7200</td><td class="bad">-0.0100</td>'
    ) in page
    # lower-is-better: a smaller RMSE than the single-task model is a gain
    assert '<td>33.0000</td><td class="good">-1.5000</td>' in page
    assert "<td>ios</td><td>700</td><td>0.7000</td>" in page
    # retrieval slices count user queries, not impressions
    assert "<th>device (retrieval)</th><th>queries</th><th>recall@10</th>" in page
    assert "<td>ios</td><td>40</td><td>0.2000</td>" in page
    assert "<td>bad_timestamp</td><td>7</td>" in page
    assert "<td>click.auc</td><td>regression</td><td>0.7100</td><td>0.7425</td>" in page


def test_the_headline_box_comes_first_with_the_decision_and_the_last_blessed_model(run_dir):
    page = report.render_report(run_dir, primary=PRIMARY, blessing=BLESSING)["html"].read_text()
    body = page[page.index("</h1>") + len("</h1>") :]
    assert body.startswith('<div class="headline"><h2>Headline</h2>')
    box = body[: body.index("</div>")]
    assert (
        "<th>task</th><th>primary metric</th><th>model</th><th>popularity</th>"
        "<th>single-task</th><th>last blessed run-previous (re-scored on this test split)</th>"
    ) in box
    # click: model, popularity, single-task, last blessed re-scored
    assert "<tr><td>click</td><td>auc</td><td>0.7100</td><td>0.6000</td><td>0.7200</td>" in box
    assert "<td>0.7500</td></tr>" in box
    assert "<tr><td>dwell</td><td>rmse_s</td><td>31.5000</td><td>–</td><td>33.0000</td>" in box
    assert '<p class="rejected"><b>Blessing: NOT BLESSED</b></p>' in box
    assert "<li>click.auc = 0.71, needs &gt;= 0.7425: FAILED</li>" in box
    assert "<li>last blessed run run-previous: re-scored on this run" in box


def test_before_the_bless_step_the_box_says_not_decided(run_dir):
    md = report.render_report(run_dir, primary=PRIMARY)["md"].read_text().splitlines()
    assert md[2:8] == [
        "## Headline",
        "",
        "| task | primary metric | model | popularity | single-task |",
        "|---|---|---:|---:|---:|",
        "| click | auc | 0.7100 | 0.6000 | 0.7200 |",
        "| dwell | rmse_s | 31.5000 | – | 33.0000 |",
    ]
    assert "Blessing: **not decided yet (the bless step runs after evaluate)**" in md


def test_markdown_headline_table(run_dir):
    md = report.render_report(run_dir, primary=PRIMARY, blessing=BLESSING)["md"].read_text()
    assert "| click | auc | 0.7100 | 0.6000 | 0.7200 | -0.0100 (negative transfer) |" in md
    assert "| dwell | rmse_s | 31.5000 | – | 33.0000 | -1.5000 (MTL gain) |" in md
    assert "| retrieval | recall@10 | 0.1200 | 0.0500 | – | – |" in md
    assert "Blessing: **NOT BLESSED**" in md
    assert "- click.auc = 0.71, needs >= 0.7425: FAILED" in md
    header = (
        "| task | primary metric | model | popularity | single-task | last blessed run-previous"
    )
    assert md.index(header) < md.index("## Metrics on the test split")


def test_report_without_history_or_blessing(run_dir):
    (run_dir / "train" / "history.json").unlink()
    page = report.render_report(run_dir, primary=PRIMARY)["html"].read_text()
    assert "No training history" in page
    assert "Blessing: not decided yet" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == 2


def test_missing_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the evaluate step first"):
        report.render_report(tmp_path, primary=PRIMARY)


def test_history_series():
    losses = report_plots.task_losses(HISTORY, ["click", "dwell", "retrieval"])
    assert losses["click"] == {"train": [0.55, 0.47, 0.43], "eval": [0.57, 0.50, 0.48]}
    assert set(losses) == {"click", "dwell"}
    weights = report_plots.loss_weights(HISTORY, ["click", "dwell"])
    assert weights == {"click": [1.0, 0.9, 0.8], "dwell": [0.5, 0.5, 0.5]}


def test_metrics_in_reading_order():
    raw = {
        "retrieval": {"recall@50": 0.2, "ndcg@10": 0.1, "recall@10": 0.1, "recall@100": 0.3},
        "click": {"logloss": 0.4, "gauc": 0.6, "auc": 0.7},
        "baselines": {"popularity": {"click": {"gauc": 0.5, "auc": 0.6}}},
        "counts": {"eval_rows": 3},
        "slices": {"user_activity": {"heavy": {"rows": 1}, "cold": {"rows": 1}, "warm": {}}},
    }
    out = report_tables.ordered(raw, ["click", "retrieval"])
    assert list(out["slices"]["user_activity"]) == ["cold", "warm", "heavy"]
    assert list(out) == ["click", "retrieval", "baselines", "counts", "slices"]
    assert list(out["click"]) == ["auc", "gauc", "logloss"]
    assert list(out["retrieval"]) == ["recall@10", "recall@50", "recall@100", "ndcg@10"]
    assert list(out["baselines"]["popularity"]["click"]) == ["auc", "gauc"]


def test_calibration_ratio_delta_favours_the_ratio_closer_to_one():
    assert report_tables.delta(1.02, 1.10, "calibration_ratio") == ("-0.0800", "good")
    assert report_tables.delta(0.80, 1.05, "calibration_ratio") == ("-0.2500", "bad")
    assert report_tables.delta(0.5, 0.5, "auc") == ("0.0000", "")


def test_numbers_read_as_people_write_them():
    # A difference below the shown precision is no "-0.0000" in red.
    assert report_tables.delta(0.69812, 0.69814, "auc") == ("0.0000", "")
    assert report_tables.delta(0.6982, 0.6980, "auc") == ("+0.0002", "good")
    assert report_tables.fmt(14188.0934) == "14,188"
    assert report_tables.fmt(32.42421) == "32.4242"
    assert report_tables.fmt(True) == "yes"
    assert report_tables.fmt_time(1_704_067_200_000) == (
        "2024-01-01T00:00:00+00:00 (1704067200000 ms)"
    )
    assert report_tables.fmt_time(None) == "–"
