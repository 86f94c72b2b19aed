"""What the report shows, independent of HTML: metric order, headline rows, deltas,
number formatting, and the markdown headline table (report.md)."""

from __future__ import annotations

import datetime
import html
import math
from typing import Any

from mtlrec.evaluation.slices import TIER_ORDER
from mtlrec.models.tasks import metric_direction

NON_TASK_KEYS = ("baselines", "slices", "counts", "validation", "split")


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        return "–" if value is None else html.escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "–"
    # Rates and seconds in the thousands read better whole than to four decimals.
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"


def fmt_time(ms: Any) -> str:
    """An event time in ms as UTC ISO-8601 with the ms beside it; anything else as `fmt`."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        return fmt(ms)
    iso = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="seconds")
    return f"{iso} ({ms} ms)"


def delta(model: Any, other: Any, metric: str) -> tuple[str, str]:
    """Text and css class of model − baseline; the class says whether the model is better."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (model, other)):
        return "–", ""
    difference = model - other
    if abs(difference) < 0.5e-4:
        # Equal at the four decimals shown: neither "-0.0000" nor a colour.
        return "0.0000", ""
    if metric.startswith("calibration_ratio"):
        # Neither higher nor lower is better: closer to 1 (predicted = observed) is.
        gap = abs(model - 1.0) - abs(other - 1.0)
        better = None if gap == 0 else gap < 0
    else:
        higher = metric_direction(metric)
        better = None if higher is None or difference == 0 else (difference > 0) == higher
    css = "" if better is None else ("good" if better else "bad")
    return f"{difference:+.4f}", css


_METRIC_ORDER = (
    "auc",
    "gauc",
    "logloss",
    "ece",
    "calibration_ratio",
    "auc_on_clicks",
    "rmse",
    "rmse_s",
    "mae",
    "mae_s",
    "recall",
    "ndcg",
    "hitrate",
)


def _metric_key(metric: str) -> tuple[int, int, str]:
    name, _, k = metric.partition("@")
    rank = _METRIC_ORDER.index(name) if name in _METRIC_ORDER else len(_METRIC_ORDER)
    return rank, int(k) if k.isdigit() else 0, metric


def ordered(metrics: dict[str, Any], task_order: list[str]) -> dict[str, Any]:
    """metrics.json (written with sorted keys) in reading order: tasks as configured,
    metrics grouped (auc before gauc, recall@10 before recall@50), everywhere."""

    def tasks_first(node: dict[str, Any]) -> dict[str, Any]:
        keys = [t for t in task_order if t in node] + [k for k in node if k not in task_order]
        return {
            k: dict(sorted(node[k].items(), key=lambda kv: _metric_key(kv[0])))
            if k in task_order and isinstance(node[k], dict)
            else node[k]
            for k in keys
        }

    out = tasks_first(metrics)
    if "baselines" in out:
        out["baselines"] = {b: tasks_first(m) for b, m in out["baselines"].items()}
    if "slices" in out:
        out["slices"] = {
            s: {v: tasks_first(values[v]) for v in _slice_values(s, values)}
            for s, values in out["slices"].items()
        }
    return out


def _slice_values(slice_name: str, values: dict[str, Any]) -> list[str]:
    """Tiers in their natural order (cold, warm, heavy), other values as they come."""
    known = [v for v in TIER_ORDER.get(slice_name, ()) if v in values]
    return known + [v for v in values if v not in known]


def task_names(metrics: dict[str, Any]) -> list[str]:
    return [k for k, v in metrics.items() if k not in NON_TASK_KEYS and isinstance(v, dict)]


def headline_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, metric): model value and each baseline's value for the same key."""
    baselines = metrics.get("baselines", {})
    rows = []
    for task in task_names(metrics):
        for metric, value in metrics[task].items():
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "model": value,
                    **{b: baselines[b].get(task, {}).get(metric) for b in baselines},
                }
            )
    return rows


def build_markdown(title: str, metrics: dict[str, Any], headline: list[str]) -> str:
    """The headline box's lines, then the metrics table: task, metric, model, popularity,
    single-task and MTL delta."""
    lines = [
        f"# {title}",
        "",
        *headline,
        "",
        "## Metrics on the test split",
        "",
        "| task | metric | model | popularity | single-task | Δ vs single-task |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in headline_rows(metrics):
        text, css = delta(row["model"], row.get("single_task"), row["metric"])
        verdict = {"good": " (MTL gain)", "bad": " (negative transfer)"}.get(css, "")
        lines.append(
            f"| {row['task']} | {row['metric']} | {fmt(row['model'])} | "
            f"{fmt(row.get('popularity'))} | {fmt(row.get('single_task'))} | {text}{verdict} |"
        )
    return "\n".join(lines) + "\n"
