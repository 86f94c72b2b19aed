"""Baselines reported beside the model (SPEC §9).

- popularity: for a ranking task, the item's rate of the task's label in the training span
  (click-through rate for click, purchases per impression for purchase, mean label for a
  regression task), smoothed towards the global rate with the weight of
  `PRIOR_IMPRESSIONS` impressions so an item shown twice does not get a rate of 0 or 1;
  items unseen in training get the global rate. For retrieval, the catalogue ranked by
  training-span popularity (clicks, or every interaction when the task learns from all
  rows): the same list for every user.
- single_task: one model per task with the same architecture, features and training budget
  as the multi-task model but only that task (ESMM purchase becomes a plain purchase
  head, since its click parent is absent), trained into `evaluate/baselines/<task>/`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtlrec.evaluation.config import EvaluateConfig
from mtlrec.evaluation.slices import text_keys
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import kind_of
from mtlrec.models.train import train

PRIOR_IMPRESSIONS = 20.0


@dataclasses.dataclass(frozen=True)
class ItemRate:
    """Smoothed per-item mean of a label over the training span."""

    by_item: pd.Series
    global_value: float

    def predict(self, items: Sequence[object]) -> np.ndarray:
        """The item's smoothed rate per row; the global rate for items unseen in training."""
        rates = pd.Series(text_keys(items)).map(self.by_item).fillna(self.global_value)
        return rates.to_numpy(dtype=np.float64)


def item_rate(
    items: Sequence[object], values: Sequence[float], mask: Sequence[float] | None = None
) -> ItemRate:
    """(Σ label + m · global) / (n + m) per item, over rows where `mask` is 1.

    Raises:
      ValueError: no training row is left to learn a rate from.
    """
    keys = text_keys(items)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if mask is not None:
        keep = np.asarray(mask, dtype=np.float64).reshape(-1) > 0
        keys, y = keys[keep], y[keep]
    if y.size == 0:
        raise ValueError("popularity baseline: the training split has no row with this label")
    global_value = float(y.mean())
    frame = pd.DataFrame({"item": keys, "y": y}).groupby("item")["y"].agg(["sum", "count"])
    smoothed = (frame["sum"] + PRIOR_IMPRESSIONS * global_value) / (
        frame["count"] + PRIOR_IMPRESSIONS
    )
    return ItemRate(smoothed, global_value)


def popularity_ranking(
    catalogue_items: Sequence[object], train_items: Sequence[object], k: int
) -> np.ndarray:
    """Catalogue indices of the k items most frequent in `train_items` (ties: catalogue order)."""
    counts = pd.Series(text_keys(train_items)).value_counts()
    per_item = pd.Series(text_keys(catalogue_items)).map(counts).fillna(0).to_numpy()
    order = np.argsort(-per_item, kind="stable")
    return order[: min(k, order.size)]


def single_task_config(task: TaskConfig) -> TaskConfig:
    """The task as its kind trains it alone (an ESMM child loses its absent parent)."""
    return kind_of(task).alone(task)


def train_single_task(
    config: EvaluateConfig, task: TaskConfig, run_dir: pathlib.Path
) -> pathlib.Path:
    """Trains the one-task model of the same architecture and budget; returns its train dir."""
    step_dir = pathlib.Path(run_dir) / "evaluate" / "baselines" / task.name
    train(
        (single_task_config(task),),
        config.model,
        config.training,
        config.features,
        pathlib.Path(run_dir) / "preprocess",
        step_dir,
    )
    return step_dir
