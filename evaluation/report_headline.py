"""The report's headline box: what a reader needs before any table (issue #22).

Per task, its primary metric on the test split beside popularity's, the single-task
model's (when computed) and the last blessed model's re-scored on the same rows (once the
bless step has run), then the blessing decision with its reasons. The evaluate step renders
it with "not decided yet"; the bless step renders the report again with its decision.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from mtlrec.evaluation.report_tables import fmt

UNDECIDED = "not decided yet (the bless step runs after evaluate)"
_SOURCES = {"rescored": "re-scored on this test split", "stored": "stored figures"}


def headline_rows(
    metrics: dict[str, Any], primary: Mapping[str, str], blessing: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One row per task in `metrics` order: task, metric, model, popularity, single_task and
    last_blessed (None where not computed)."""
    baselines = metrics.get("baselines", {})
    last = _last_blessed(blessing)
    rows = []
    for task, values in metrics.items():
        if task not in primary or not isinstance(values, dict):
            continue
        metric = primary[task]
        rows.append(
            {
                "task": task,
                "metric": metric,
                "model": values.get(metric),
                **{
                    name: baselines.get(name, {}).get(task, {}).get(metric)
                    for name in ("popularity", "single_task")
                },
                "last_blessed": (last or {}).get("metrics", {}).get(task, {}).get(metric),
            }
        )
    return rows


def _last_blessed(blessing: dict[str, Any] | None) -> dict[str, Any] | None:
    return (blessing or {}).get("last_blessed")


def _columns(metrics: dict[str, Any], blessing: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(row key, header) of the figures shown: single-task only when it was computed."""
    columns = [("model", "model"), ("popularity", "popularity")]
    if "single_task" in metrics.get("baselines", {}):
        columns.append(("single_task", "single-task"))
    last = _last_blessed(blessing)
    if last is not None:
        header = f"last blessed {last['run_id']} ({_SOURCES[last['source']]})"
        columns.append(("last_blessed", header))
    return columns


def verdict(blessing: dict[str, Any] | None) -> str:
    if blessing is None:
        return UNDECIDED
    return "BLESSED" if blessing["blessed"] else "NOT BLESSED"


def headline_html(
    metrics: dict[str, Any], primary: Mapping[str, str], blessing: dict[str, Any] | None
) -> str:
    """The box as an HTML fragment (classes of the report's style)."""
    columns = _columns(metrics, blessing)
    head = "".join(
        f"<th>{html.escape(h)}</th>" for h in ["task", "primary metric", *(c[1] for c in columns)]
    )
    body = ""
    for row in headline_rows(metrics, primary, blessing):
        cells = [html.escape(row["task"]), html.escape(row["metric"])]
        cells += [fmt(row[key]) for key, _ in columns]
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    css = "" if blessing is None else ("blessed" if blessing["blessed"] else "rejected")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in (blessing or {}).get("reasons", []))
    decision = f'<p class="{css}"><b>Blessing: {verdict(blessing)}</b></p>'
    return (
        '<div class="headline"><h2>Headline</h2>'
        f"<table><tr>{head}</tr>{body}</table>"
        + decision
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + "</div>"
    )


def headline_markdown(
    metrics: dict[str, Any], primary: Mapping[str, str], blessing: dict[str, Any] | None
) -> list[str]:
    """The box as markdown lines."""
    columns = _columns(metrics, blessing)
    lines = [
        "## Headline",
        "",
        "| task | primary metric | " + " | ".join(h for _, h in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for row in headline_rows(metrics, primary, blessing):
        figures = " | ".join(fmt(row[key]) for key, _ in columns)
        lines.append(f"| {row['task']} | {row['metric']} | {figures} |")
    lines += ["", f"Blessing: **{verdict(blessing)}**"]
    reasons = (blessing or {}).get("reasons", [])
    if reasons:
        lines += ["", *(f"- {r}" for r in reasons)]
    return lines
