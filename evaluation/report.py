"""The evaluation report: one self-contained `report.html` and a short `report.md` (SPEC §9).

Everything the HTML shows is embedded: plots are PNG data URIs and the style is inline, so
the file opens offline, from an e-mail attachment or a CI artifact, and loads nothing.
The report is rendered from files of the run directory (metrics.json, curves.json,
train/history.json, step counts), so the bless step renders it again with its decision
in the headline box (`mtlrec.evaluation.report_headline`).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from mtlrec.evaluation import report_plots
from mtlrec.evaluation.report_headline import headline_html, headline_markdown
from mtlrec.evaluation.report_tables import (
    build_markdown,
    delta,
    fmt,
    fmt_time,
    headline_rows,
    ordered,
    task_names,
)
from mtlrec.evaluation.slices import COLD_BELOW, HEAD_SHARE, HEAVY_FROM, TORSO_SHARE

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child,td.name{text-align:left}th{background:#f2f2f2}
.good{color:#11701d}.bad{color:#b3141c}.blessed{background:#e3f6e5;padding:.6em}
.rejected{background:#fbe4e4;padding:.6em}
.headline{border:2px solid #888;padding:0 1em .4em;margin:1em 0}img{max-width:100%;border:1px solid #eee}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{margin:0}
"""


def _read_json(path: pathlib.Path, empty: Any = None) -> Any:
    return json.loads(path.read_text()) if path.exists() else ({} if empty is None else empty)


def _read_yaml(path: pathlib.Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _config_summary(config: dict[str, Any]) -> dict[str, Any]:
    if not config:
        return {}
    model, training = config.get("model", {}), config.get("training", {})
    return {
        "sharing": model.get("sharing"),
        "loss weighting": model.get("weighting"),
        "training mode": training.get("mode"),
        "epochs (max)": training.get("epochs"),
    }


def _training_summary(summary: dict[str, Any]) -> dict[str, Any]:
    keys = {
        "steps": "training steps",
        "epochs": "epochs run",
        "best_epoch": "best epoch (kept weights)",
        "stopped_early": "stopped early",
        "examples_per_s": "training examples/s",
    }
    return {label: summary[key] for key, label in keys.items() if key in summary}


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _td(text: str, css: str = "") -> str:
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def _metrics_section(metrics: dict[str, Any]) -> str:
    baselines = list(metrics.get("baselines", {}))
    header = ["task", "metric", "model"]
    for b in baselines:
        header += [b, f"Δ vs {b}"]
    rows = []
    for row in headline_rows(metrics):
        cells = [_td(html.escape(row["task"])), _td(html.escape(row["metric"]), "name")]
        cells.append(_td(fmt(row["model"])))
        for b in baselines:
            text, css = delta(row["model"], row[b], row["metric"])
            cells += [_td(fmt(row[b])), _td(text, css)]
        rows.append(cells)
    note = (
        "<p>Δ = model − baseline; green where the multi-task model is better (higher AUC, "
        "recall, NDCG, hit rate; lower log loss, ECE, RMSE, MAE), red where it is worse "
        "(for single_task: negative transfer).</p>"
    )
    return "<h2>Metrics on the test split</h2>" + note + _table(header, rows)


def _validation_section(validation: dict[str, Any]) -> str:
    """The kept weights on the validation split, the one early stopping and best-epoch
    restore read (Keras metrics: regression in the transformed label space)."""
    rows = [
        [_td(html.escape(task)), _td(html.escape(name), "name"), _td(fmt(value))]
        for task, values in validation.items()
        for name, value in values.items()
    ]
    if not rows:
        return ""
    note = (
        "<p>Training selected its weights on this split; the test figures above come from "
        "rows no training step read.</p>"
    )
    return (
        "<h2>Validation split (model selection)</h2>"
        + note
        + _table(["task", "metric", "model"], rows)
    )


def _blessing_section(blessing: dict[str, Any] | None) -> str:
    """The checks behind the decision the headline box states."""
    if blessing is None:
        return ""
    rows = [
        [
            _td(html.escape(c["metric"])),
            _td(c["kind"]),
            _td(fmt(c["value"])),
            _td(fmt(c["threshold"])),
            _td(fmt(c["baseline"])),
            _td("passed" if c["passed"] else "FAILED", "good" if c["passed"] else "bad"),
        ]
        for c in blessing["checks"]
    ]
    if not rows:
        return "<h2>Blessing checks</h2><p>No checks are configured.</p>"
    note = (
        "<p>baseline: popularity's figure for a popularity check, the last blessed model's "
        "for a regression check.</p>"
    )
    return (
        "<h2>Blessing checks</h2>"
        + note
        + _table(["metric", "check", "value", "threshold", "baseline", "outcome"], rows)
    )


def _counts_section(counts: dict[str, Any], eval_counts: dict[str, Any]) -> str:
    def flatten(prefix: str, node: dict[str, Any]) -> list[list[str]]:
        rows = []
        for key, value in node.items():
            if isinstance(value, dict):
                rows += flatten(f"{prefix}{key}.", value)
            else:
                shown = fmt_time(value) if key.endswith("_ts") else fmt(value)
                rows.append([_td(html.escape(prefix + key)), _td(shown)])
        return rows

    rejected = counts.get("rejected", {})
    steps = {k: v for k, v in counts.items() if k != "rejected"}
    out = "<h2>Data</h2>" + _table(["count", "value"], flatten("", steps))
    out += "<h3>Evaluation</h3>" + _table(["count", "value"], flatten("", eval_counts))
    if rejected:
        rows = [[_td(html.escape(k)), _td(fmt(v))] for k, v in rejected.items()]
        out += "<h3>Rejected rows by reason</h3>" + _table(["reason", "rows"], rows)
    return out


def _slices_section(slices: dict[str, Any]) -> str:
    if not slices:
        return ""
    out = (
        "<h2>Slices</h2><p>Training-span impressions decide the tiers. user_activity: "
        f"cold &lt; {COLD_BELOW} ≤ warm &lt; {HEAVY_FROM} ≤ heavy. item_popularity: head items "
        f"carry the first {HEAD_SHARE:.0%} of the impression volume, torso the next "
        f"{TORSO_SHARE:.0%}, tail the rest (and items unseen in training).</p>"
    )
    for slice_name, values in slices.items():
        out += f"<h3>{html.escape(slice_name)}</h3>"
        tasks = dict.fromkeys(
            t for groups in values.values() for t, m in groups.items() if isinstance(m, dict)
        )
        for task in tasks:
            columns = list(dict.fromkeys(m for g in values.values() for m in g.get(task, {})))
            # Retrieval is measured per user query, ranking tasks per impression.
            size = "queries" if any("@" in c for c in columns) else "rows"
            rows = [
                [_td(html.escape(str(value))), _td(fmt(groups.get(size)))]
                + [_td(fmt(groups.get(task, {}).get(metric))) for metric in columns]
                for value, groups in values.items()
            ]
            out += _table([f"{slice_name} ({task})", size, *columns], rows)
    return out


def _img(name: str, png: bytes | None, plots_dir: pathlib.Path) -> str:
    if png is None:
        return ""
    (plots_dir / f"{name}.png").write_bytes(png)
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>'


def _plots_section(
    metrics: dict[str, Any], curves: dict[str, Any], history: list[dict], plots_dir: pathlib.Path
) -> str:
    plots_dir.mkdir(parents=True, exist_ok=True)
    aucs = {t: metrics.get(t, {}).get("auc") for t in curves}
    figures = [
        _img("roc", report_plots.roc_png(curves, aucs), plots_dir),
        _img("calibration", report_plots.calibration_png(curves), plots_dir),
    ]
    tasks = task_names(metrics)
    training = [
        _img(
            f"training_{task}", report_plots.series_png(f"{task}: loss", "loss", series), plots_dir
        )
        for task, series in report_plots.task_losses(history, tasks).items()
    ]
    weights = report_plots.loss_weights(history, tasks)
    training.append(
        _img("loss_weights", report_plots.series_png("Loss weights", "weight", weights), plots_dir)
    )
    out = '<h2>ROC and calibration</h2><div class="plots">' + "".join(figures) + "</div>"
    out += '<h2>Training</h2><div class="plots">' + "".join(training) + "</div>"
    if not history:
        out += "<p>No training history (train/history.json) was found.</p>"
    return out


def build_html(
    *,
    title: str,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    curves: dict[str, Any],
    history: list[dict],
    counts: dict[str, Any],
    primary: Mapping[str, str],
    blessing: dict[str, Any] | None,
    plots_dir: pathlib.Path,
) -> str:
    """The whole report as one HTML document; also writes each plot to `plots_dir`."""
    summary_rows = [[_td(html.escape(k)), _td(fmt(v))] for k, v in summary.items()]
    body = (
        f"<h1>{html.escape(title)}</h1>"
        + headline_html(metrics, primary, blessing)
        + _table(["run", ""], summary_rows)
        + _metrics_section(metrics)
        + _validation_section(metrics.get("validation", {}))
        + _blessing_section(blessing)
        + _plots_section(metrics, curves, history, plots_dir)
        + _slices_section(metrics.get("slices", {}))
        + _counts_section(counts, metrics.get("counts", {}))
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def render_report(
    run_dir: pathlib.Path,
    *,
    primary: Mapping[str, str],
    blessing: dict[str, Any] | None = None,
    task_order: Sequence[str] | None = None,
) -> dict[str, pathlib.Path]:
    """Writes evaluate/report.html, evaluate/report.md and evaluate/plots/ for a run.

    The headline box shows each task's `primary` metric (task -> metric) and the blessing
    decision (`blessing`: `mtlrec.evaluation.bless.decide`'s; None = not decided yet).
    Tasks appear in `task_order` (default: the run's config.yaml, else alphabetical).

    Reads evaluate/metrics.json (required), evaluate/curves.json, train/history.json,
    validate/counts.json and preprocess/counts.json (optional).
    """
    run_dir = pathlib.Path(run_dir)
    out_dir = run_dir / "evaluate"
    metrics_path = out_dir / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"report: {metrics_path} is missing; run the evaluate step first")
    config = _read_yaml(run_dir / "config.yaml")
    raw = json.loads(metrics_path.read_text())
    if task_order is None:
        task_order = [t["name"] for t in config.get("tasks", [])] or sorted(task_names(raw))
    metrics = ordered(raw, list(task_order))
    counts = {
        **_read_json(run_dir / "validate" / "counts.json"),
        **_read_json(run_dir / "preprocess" / "counts.json"),
    }
    title = f"mtlrec evaluation — {run_dir.name}"
    summary = {
        "run id": run_dir.name,
        "tasks": ", ".join(task_names(metrics)),
        "rendered": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **_config_summary(config),
        **_training_summary(_read_json(run_dir / "train" / "summary.json")),
    }
    page = build_html(
        title=title,
        summary=summary,
        metrics=metrics,
        curves=_read_json(out_dir / "curves.json"),
        history=_read_json(run_dir / "train" / "history.json", empty=[]),
        counts=counts,
        primary=primary,
        blessing=blessing,
        plots_dir=out_dir / "plots",
    )
    paths = {"html": out_dir / "report.html", "md": out_dir / "report.md"}
    paths["html"].write_text(page)
    headline = headline_markdown(metrics, primary, blessing)
    paths["md"].write_text(build_markdown(title, metrics, headline))
    return paths
