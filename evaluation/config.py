"""The `evaluation` section: metrics, baselines, slices and the blessing gate (SPEC §9)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pydantic

from mtlrec.features.config import ConfigSection, FeaturesConfig
from mtlrec.models.config import ModelConfig, TaskConfig, TrainingConfig


class EvaluationConfig(ConfigSection):
    """Offline evaluation, baselines, slices and the blessing gate (SPEC §9)."""

    ks: tuple[int, ...] = (10, 50, 100)
    """Cut-offs for Recall@K, NDCG@K and HitRate@K."""
    baselines: tuple[Literal["popularity", "single_task"], ...] = ("popularity", "single_task")
    """Baselines computed in the same run and shown beside the model."""
    slices: tuple[Literal["user_activity", "item_popularity", "device"], ...] = (
        "user_activity",
        "item_popularity",
        "device",
    )
    """Slices of the evaluation split reported with their own metrics."""
    ece_bins: int = pydantic.Field(default=20, ge=2)
    """Bins of the expected calibration error."""
    min_metrics: dict[str, float] = {"click.auc": 0.55}
    """Blessing: 'task.metric' -> smallest acceptable value (higher is better)."""
    max_metrics: dict[str, float] = {}
    """Blessing: 'task.metric' -> largest acceptable value (lower is better, e.g. dwell.rmse_s)."""
    beat_popularity: bool = True
    """Blessing: the model must beat the popularity baseline on every task's primary metric
    (binary auc, regression rmse, retrieval recall at the largest K), when it is computed."""
    primary_metrics: dict[str, str] = {}
    """Blessing: task -> the metric held against popularity instead of its kind's default."""
    min_examples: int = pydantic.Field(default=1, ge=1)
    """Fewest examples each of train, validation and test must hold before training starts
    (together with a positive label of every labelled task in each)."""
    max_regression: float = pydantic.Field(default=0.01, ge=0.0)
    """Blessing: largest relative regression of a gated or primary metric against the last
    blessed model, re-scored on this run's test split."""


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """What the evaluate step reads: the tasks, its own section, and what a single-task
    baseline needs to be trained like the candidate."""

    tasks: tuple[TaskConfig, ...]
    evaluation: EvaluationConfig
    features: FeaturesConfig
    model: ModelConfig
    training: TrainingConfig


@dataclasses.dataclass(frozen=True)
class BlessConfig:
    """What the bless step reads: the tasks, the gate's section, and the workdir whose
    `blessed.json` names the last blessed run."""

    tasks: tuple[TaskConfig, ...]
    evaluation: EvaluationConfig
    workdir: str
