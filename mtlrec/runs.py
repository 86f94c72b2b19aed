"""`mtlrec runs` and `mtlrec report`: what the runs of a workdir did, read from their manifests.

Like `mlflow runs list`: one line per run with its input dates, how far it got, its headline
metric per task, whether it was blessed and which serving version it pushed.
"""

from __future__ import annotations

import pathlib
from typing import Any

from mtlrec.manifest import MANIFEST, STEP_NAMES, read

HEADLINE_METRICS = ("auc", "recall@100", "rmse", "rmse_s")
"""The first of these a task reports is its column in `mtlrec runs`."""
NON_TASK_KEYS = ("baselines", "slices", "counts", "validation", "split")
REPORT = pathlib.Path("evaluate") / "report.html"


def run_manifests(workdir: pathlib.Path) -> list[dict[str, Any]]:
    """The manifest of every run under `<workdir>/runs`, oldest update first."""
    manifests = [read(path) for path in sorted((workdir / "runs").glob(f"*/{MANIFEST}"))]
    return sorted((m for m in manifests if m), key=lambda m: m.get("updated", ""))


def status(manifest: dict[str, Any]) -> str:
    """`done`, or the first step that did not finish with its status (e.g. `train failed`)."""
    steps = manifest.get("steps", {})
    for name in STEP_NAMES:
        state = steps.get(name, {}).get("status")
        if state not in ("done", "skipped"):
            return f"{name} {state or 'not run'}"
    return "done"


def headline(metrics: dict[str, Any]) -> str:
    """`task metric=value` for each task, with the first headline metric it reports."""
    parts = []
    for task, values in metrics.items():
        if task in NON_TASK_KEYS or not isinstance(values, dict):
            continue
        key = next((k for k in HEADLINE_METRICS if isinstance(values.get(k), float)), None)
        if key is not None:
            parts.append(f"{task} {key}={values[key]:.4f}")
    return ", ".join(parts)


def pushed_version(manifest: dict[str, Any]) -> str:
    """The serving version this run pushed (the same for every model of one push), or -."""
    versions = sorted({pathlib.Path(path).name for path in manifest.get("models", {}).values()})
    return ",".join(versions) or "-"


def runs_table(workdir: pathlib.Path) -> list[str]:
    """Lines of `mtlrec runs`: a header, then one line per run."""
    rows = [("run", "updated", "dates", "status", "blessed", "pushed", "metrics")]
    for m in run_manifests(workdir):
        dates = (m.get("input") or {}).get("dates") or "all"
        rows.append(
            (
                m.get("run_id", "?"),
                m.get("updated", "")[:19],
                dates if isinstance(dates, str) else "..".join(map(str, dates)),
                status(m),
                "yes" if m.get("blessed") else "no",
                pushed_version(m),
                headline(m.get("metrics", {})),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def report_path(workdir: pathlib.Path, run_id: str | None) -> pathlib.Path:
    """The report of `run_id` (default: the latest run of the workdir).

    Raises:
      FileNotFoundError: no such run, or the run has no report yet (names the path).
    """
    if run_id is None:
        run_id = read(workdir / MANIFEST).get("run_id")
        if run_id is None:
            raise FileNotFoundError(f"{workdir / MANIFEST}: no run in this workdir yet")
    path = workdir / "runs" / run_id / REPORT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no report (has the evaluate step of {run_id} run?)")
    return path


def run_summary(manifest: dict[str, Any], run_dir: pathlib.Path) -> list[str]:
    """The lines `mtlrec run` ends with: each task's headline metric against its baselines,
    the blessing decision and its reasons, the pushed versions and the report's path."""
    metrics = manifest.get("metrics", {})
    baselines = metrics.get("baselines", {})
    lines = []
    for task, values in metrics.items():
        if task in NON_TASK_KEYS or not isinstance(values, dict):
            continue
        key = next((k for k in HEADLINE_METRICS if isinstance(values.get(k), float)), None)
        if key is None:
            continue
        against = [
            f"{name.replace('_', '-')} {baseline[task][key]:.4f}"
            for name, baseline in baselines.items()
            if isinstance(baseline.get(task, {}).get(key), float)
        ]
        beside = f" (vs {', '.join(against)})" if against else ""
        lines.append(f"{task}: {key} {values[key]:.4f}{beside}")
    blessing = manifest.get("blessing", {})
    if blessing:
        verdict = "blessed" if blessing.get("blessed") else "not blessed"
        reasons = blessing.get("reasons", [])
        lines.append(f"{verdict}" + (f": {'; '.join(reasons)}" if reasons else ""))
    pushed = manifest.get("models", {})
    if pushed:
        lines.append(
            "pushed: " + ", ".join(f"{n} v{pathlib.Path(p).name}" for n, p in pushed.items())
        )
    report = run_dir / REPORT
    if report.is_file():
        lines.append(f"report: {report}")
    return lines
