"""The blessing gate and the push to the serving directory (SPEC §9).

A model is blessed when every gated metric passes its configured threshold
(`evaluation.min_metrics` / `evaluation.max_metrics`), it beats the popularity baseline on
each task's primary metric (`evaluation.beat_popularity`), and none of the gated or primary
metrics regresses by more than `evaluation.max_regression` (relative) against the last
blessed model of the same workdir (`<workdir>/blessed.json` names it). That model is
re-scored on the candidate's own test split (`mtlrec.evaluation.rescore`), so both are
measured on the same rows; only when its files are gone or do not fit does the gate fall
back to the figures stored when it was blessed, and says so. Only a blessed model, or one a
human force-pushes, is copied into the serving root, one version directory at a time,
atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import pathlib
import shutil
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mtlrec.deploy.versioning import next_version, publish_version
from mtlrec.evaluation.config import EvaluationConfig
from mtlrec.features.json_files import read, write_json
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import kind_of, metric_direction

BLESSED = "blessed.json"


@dataclasses.dataclass(frozen=True)
class LastBlessed:
    """The last blessed model's figures the candidate must not regress against.

    Attributes:
      run_id: its run.
      metrics: its per-task metrics (metrics.json shape; only task objects are read).
      source: "rescored" on the candidate's test split, or "stored" in blessed.json when it
        was blessed (on its own test split) because it could not be re-scored.
      reason: one line saying where the figures come from, and why when they are stored.
    """

    run_id: str
    metrics: dict[str, Any]
    source: Literal["rescored", "stored"]
    reason: str


_SOURCES = {"rescored": "re-scored on this test split", "stored": "as stored in blessed.json"}


def read_blessed(workdir: pathlib.Path) -> dict[str, Any]:
    """`<workdir>/blessed.json` ({"run_id", "blessed_at", "metrics"}), {} before any blessing."""
    return read(pathlib.Path(workdir) / BLESSED)


def metric_value(metrics: dict[str, Any], key: str) -> float | None:
    """metrics['task']['metric'] for key 'task.metric'; None when absent or not finite."""
    task, _, metric = key.partition(".")
    value = metrics.get(task, {}).get(metric) if isinstance(metrics.get(task), dict) else None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _threshold_check(key: str, kind: str, value: float | None, threshold: float) -> dict:
    passed = value is not None and (value >= threshold if kind == "min" else value <= threshold)
    return {
        "metric": key,
        "kind": kind,
        "value": value,
        "threshold": threshold,
        "baseline": None,
        "passed": passed,
    }


def _regression_check(
    key: str, value: float | None, previous: float, higher: bool, tolerance: float, source: str
) -> dict:
    slack = tolerance * abs(previous)
    bound = previous - slack if higher else previous + slack
    passed = value is not None and (value >= bound if higher else value <= bound)
    return {
        "metric": key,
        "kind": "regression",
        "value": value,
        "threshold": bound,
        "baseline": previous,
        "source": source,
        "passed": passed,
    }


def primary_metrics(tasks: Sequence[TaskConfig], evaluation: EvaluationConfig) -> dict[str, str]:
    """task -> the metric the gate holds against popularity (config override, else kind)."""
    return {
        t.name: evaluation.primary_metrics.get(t.name)
        or kind_of(t).primary_metric(t, evaluation.ks)
        for t in tasks
    }


def _popularity_check(key: str, value: float | None, popularity: float) -> dict:
    higher = metric_direction(key.partition(".")[2]) is not False
    passed = value is not None and (value > popularity if higher else value < popularity)
    return {
        "metric": key,
        "kind": "popularity",
        "value": value,
        "threshold": popularity,
        "baseline": popularity,
        "passed": passed,
    }


def _reason(check: dict) -> str:
    value = "missing" if check["value"] is None else f"{check['value']:.4g}"
    if check["kind"] == "popularity":
        op = "<" if metric_direction(check["metric"].partition(".")[2]) is False else ">"
        need = f"{op} popularity {check['baseline']:.4g}"
    elif check["kind"] == "regression":
        op = ">=" if check["threshold"] <= check["baseline"] else "<="
        need = (
            f"{op} {check['threshold']:.4g} (last blessed {check['baseline']:.4g} "
            f"{_SOURCES[check['source']]}, within evaluation.max_regression)"
        )
    else:
        need = f"{'>=' if check['kind'] == 'min' else '<='} {check['threshold']:.4g}"
    verdict = "passed" if check["passed"] else "FAILED"
    return f"{check['metric']} = {value}, needs {need}: {verdict}"


def decide(
    evaluation: EvaluationConfig,
    metrics: dict[str, Any],
    last_blessed: LastBlessed | None = None,
    primary: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Blesses the model whose `metrics` (metrics.json content) are given, or not.

    `last_blessed` is None before any model was blessed; `primary` maps each task to the
    metric held against popularity and the last blessed model (`primary_metrics`).

    Returns:
      {"blessed": bool, "checks": [{metric, kind, value, threshold, baseline, passed}],
       "reasons": the last blessed model's line, then one line per check,
       "previous_run_id": the last blessed run or None,
       "last_blessed": {run_id, metrics, source, reason} or None}.
    """
    checks = [
        _threshold_check(key, "min", metric_value(metrics, key), threshold)
        for key, threshold in evaluation.min_metrics.items()
    ]
    checks += [
        _threshold_check(key, "max", metric_value(metrics, key), threshold)
        for key, threshold in evaluation.max_metrics.items()
    ]
    primary_keys = [f"{task}.{metric}" for task, metric in (primary or {}).items()]
    popularity = metrics.get("baselines", {}).get("popularity", {})
    if evaluation.beat_popularity and popularity:
        for key in primary_keys:
            baseline = metric_value(popularity, key)
            if baseline is not None:
                checks.append(_popularity_check(key, metric_value(metrics, key), baseline))
    if last_blessed is not None:
        checks += _regression_checks(evaluation, metrics, last_blessed, primary_keys)
    lines = [] if last_blessed is None else [last_blessed.reason]
    return {
        "blessed": all(c["passed"] for c in checks),
        "checks": checks,
        "reasons": lines + [_reason(c) for c in checks],
        "previous_run_id": None if last_blessed is None else last_blessed.run_id,
        "last_blessed": None if last_blessed is None else dataclasses.asdict(last_blessed),
    }


def _regression_checks(
    evaluation: EvaluationConfig,
    metrics: dict[str, Any],
    last_blessed: LastBlessed,
    primary_keys: Sequence[str],
) -> list[dict]:
    """Each gated and primary metric the last blessed model has, within `max_regression`."""
    # A metric's direction comes from its name; otherwise from the kind of its threshold.
    gated = dict.fromkeys(evaluation.min_metrics, True) | dict.fromkeys(
        evaluation.max_metrics, False
    )
    for key in primary_keys:
        gated.setdefault(key, True)
    checks = []
    for key, default_higher in gated.items():
        before = metric_value(last_blessed.metrics, key)
        if before is None:
            continue
        direction = metric_direction(key.partition(".")[2])
        higher = default_higher if direction is None else direction
        checks.append(
            _regression_check(
                key,
                metric_value(metrics, key),
                before,
                higher,
                evaluation.max_regression,
                last_blessed.source,
            )
        )
    return checks


def record_blessed(workdir: pathlib.Path, metrics: dict[str, Any], run_id: str) -> pathlib.Path:
    """Stores the metrics of the newly blessed model: the reference for the next decision."""
    path = pathlib.Path(workdir) / BLESSED
    write_json(
        path,
        {
            "run_id": run_id,
            "blessed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "metrics": metrics,
        },
    )
    return path


def push(
    export_dirs: dict[str, pathlib.Path],
    serving_root: pathlib.Path,
    *,
    blessed: bool,
    force: bool = False,
) -> dict[str, str]:
    """Publishes each model's exported version as the next version under `<serving_root>/<model>/`.

    Nothing is copied unless `blessed` or `force`. Every run exports its own version 1, so
    the serving version is assigned here, as one more than the largest one served of any of
    the models, so the models of one push share a version even after a push died halfway; the copy
    is written to a temporary sibling, checked file by file and renamed into place
    (`mtlrec.deploy.versioning.publish_version`), so TF Serving never sees half a model and an
    existing version is never overwritten.

    Returns:
      model name -> pushed version directory.

    Raises:
      ValueError: a source is not a `<model>/<integer version>` directory.
    """
    if not (blessed or force) or not export_dirs:
        return {}
    sources = {name: pathlib.Path(src) for name, src in export_dirs.items()}
    for name, src in sources.items():
        if not src.is_dir() or not src.name.isdigit():
            raise ValueError(
                f"push: model {name!r}: {src} is not an exported <model>/<integer version> "
                "directory; run the export step first"
            )
    roots = {name: pathlib.Path(serving_root) / name for name in sources}
    version = max(next_version(root) for root in roots.values())
    pushed = {}
    for name, src in sources.items():
        target = publish_version(
            roots[name],
            write=functools.partial(shutil.copytree, src, dirs_exist_ok=True),
            verify=functools.partial(_check_same_files, src),
            min_version=version,
        )
        pushed[name] = str(target)
    return pushed


def _check_same_files(src: pathlib.Path, copy: pathlib.Path) -> None:
    def listing(root: pathlib.Path) -> dict[str, int]:
        return {
            p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
        }

    if listing(src) != listing(copy):
        raise RuntimeError(f"push: the copy of {src} differs from its source; nothing pushed")
