"""The plots of the evaluation report, rendered offline to PNG bytes (matplotlib Agg).

Curve data (ROC points, calibration bins) is computed once by the evaluation and stored in
`evaluate/curves.json`, so the report can be re-rendered (e.g. after blessing) without the
model or the evaluation split.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mtlrec.models import offline_metrics as metrics

_MAX_ROC_POINTS = 400


def task_curves(labels: Sequence[float], probabilities: Sequence[float], bins: int) -> dict:
    """ROC points (thinned to at most 400) and calibration bins of one binary task."""
    curves: dict[str, Any] = {}
    roc = metrics.roc_curve(labels, probabilities)
    if roc is not None:
        fpr, tpr = roc
        keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, _MAX_ROC_POINTS)).astype(int))
        curves["roc"] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
    b = metrics.calibration_bins(labels, probabilities, bins)
    curves["calibration"] = {
        "mean_predicted": b.mean_predicted.tolist(),
        "observed_rate": b.observed_rate.tolist(),
        "count": b.count.tolist(),
    }
    return curves


def _figure(width: float = 5.2, height: float = 3.8):
    matplotlib.use("Agg")

    # A bare Figure (not pyplot) keeps no global state between reports.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    # No "Software" text chunk: the report carries no URL, not even inside an image.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def roc_png(curves: dict[str, dict], aucs: dict[str, float | None]) -> bytes | None:
    """One ROC panel with a line per binary task (None when no task has both classes)."""
    tasks = [t for t, c in curves.items() if "roc" in c]
    if not tasks:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for task in tasks:
        auc = aucs.get(task)
        label = task if auc is None else f"{task} (AUC {auc:.3f})"
        ax.plot(curves[task]["roc"]["fpr"], curves[task]["roc"]["tpr"], label=label)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, eval split")
    ax.legend(loc="lower right")
    return _png(fig)


def calibration_png(curves: dict[str, dict]) -> bytes | None:
    """Reliability diagram: observed rate against mean predicted probability per bin."""
    tasks = [t for t, c in curves.items() if c.get("calibration", {}).get("count")]
    if not tasks:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    top = max(
        max(curves[t]["calibration"]["mean_predicted"] + curves[t]["calibration"]["observed_rate"])
        for t in tasks
    )
    limit = min(1.0, top * 1.05) or 1.0
    ax.plot([0, limit], [0, limit], linestyle=":", color="grey", label="perfect")
    for task in tasks:
        c = curves[task]["calibration"]
        ax.plot(c["mean_predicted"], c["observed_rate"], marker="o", label=task)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed rate",
        title="Calibration (equal-width bins)",
        xlim=(0, limit),
        ylim=(0, limit),
    )
    ax.legend(loc="upper left")
    return _png(fig)


def series_png(title: str, ylabel: str, series: dict[str, Sequence[float]]) -> bytes | None:
    """Line plot of named per-epoch series (training curves, loss weights)."""
    series = {k: v for k, v in series.items() if len(v) > 0}
    if not series:
        return None
    fig = _figure(5.2, 3.2)
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


def _per_epoch(history: Sequence[dict], get) -> list[float]:
    values = []
    for record in history:
        try:
            values.append(float(get(record)))
        except (KeyError, TypeError):
            values.append(float("nan"))
    return values


def task_losses(history: Sequence[dict], tasks: Sequence[str]) -> dict[str, dict[str, list]]:
    """task -> {"train": per-epoch mean training loss, "eval": per-epoch eval loss}.

    `history` is train/history.json: one record per epoch with `train_loss` {task: loss}
    and `eval` {task: {"loss": ...}}.
    """
    out = {}
    for task in tasks:
        if not any(task in r.get("train_loss", {}) or task in r.get("eval", {}) for r in history):
            continue
        out[task] = {
            "train": _per_epoch(history, lambda r, t=task: r["train_loss"][t]),
            "eval": _per_epoch(history, lambda r, t=task: r["eval"][t]["loss"]),
        }
    return out


def loss_weights(history: Sequence[dict], tasks: Sequence[str]) -> dict[str, list[float]]:
    """task -> per-epoch effective loss weight (`weights` of each record; flat when fixed)."""
    return {
        task: _per_epoch(history, lambda r, t=task: r["weights"][t])
        for task in tasks
        if any(task in r.get("weights", {}) for r in history)
    }
