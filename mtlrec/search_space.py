"""The search space of `mtlrec tune`: which config keys vary, over what, and the objective.

A YAML file::

    objective: click.auc          # <task>.<metric> of the validation split
    trials: 12
    seed: 0
    space:
      training.learning_rate: {low: 0.0003, high: 0.01, log: true}
      training.l2_embedding: {low: 0.0, high: 0.01}
      model.embedding_dim: {low: 16, high: 64, step: 16}   # ints when the bounds are ints
      model.sharing: [shared_bottom, mmoe, ple]            # a list is a categorical choice
      tasks.click.weight: {low: 0.5, high: 2.0}

Only keys that the preprocess output does not depend on may vary (`model.`, `training.`,
`tasks.`), so every trial trains on the same TFRecords.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pydantic
import yaml

from mtlrec.config import ConfigError, validate, with_overrides
from mtlrec.models.tasks import metric_direction

TUNABLE = ("model.", "training.", "tasks.")


class Range(pydantic.BaseModel, frozen=True, extra="forbid"):
    """A numeric range: floats unless both bounds are ints; `log` samples on a log scale."""

    low: float | int
    high: float | int
    log: bool = False
    step: float | int | None = None

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


class SearchSpace(pydantic.BaseModel, frozen=True, extra="forbid"):
    """What `mtlrec tune` searches (see the module docstring)."""

    objective: str
    """`<task>.<metric>` on the validation split, e.g. click.auc or dwell.rmse."""
    trials: int = pydantic.Field(default=10, ge=1)
    """Completed trials to reach (trials of an earlier, interrupted tune count)."""
    seed: int = 0
    """Seed of Optuna's TPE sampler."""
    space: dict[str, Range | list[Any]]
    """Config key → range or list of choices."""

    @property
    def task(self) -> str:
        return self.objective.split(".", 1)[0]

    @property
    def metric(self) -> str:
        return self.objective.split(".", 1)[1]

    @property
    def maximize(self) -> bool:
        return bool(metric_direction(self.metric))


def load_space(path: str | pathlib.Path, document: dict[str, Any]) -> SearchSpace:
    """Reads and checks the search space against the run's configuration `document`.

    Raises:
      ConfigError: unreadable file, bad field, a key outside the tunable sections, a value
        the configuration rejects, or an objective naming an unknown task or metric.
    """
    try:
        raw = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        space = SearchSpace.model_validate(raw)
    except OSError as e:
        raise ConfigError(f"search space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"search space {path}: not valid YAML ({e.problem})") from None
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"search space {path}: {where}: {first['msg']}") from None
    _check(space, path, document)
    return space


def _check(space: SearchSpace, path: str | pathlib.Path, document: dict[str, Any]) -> None:
    for key, values in space.space.items():
        if not key.startswith(TUNABLE):
            raise ConfigError(
                f"search space {path}: {key}: every trial trains on one preprocess output, so "
                f"only {', '.join(k + '*' for k in TUNABLE)} keys may vary"
            )
        for value in extremes(values):
            validate(with_overrides(document, trial_overrides({key: value})))
    if "." not in space.objective:
        raise ConfigError(
            f"search space {path}: objective {space.objective!r}: expected <task>.<metric>"
        )
    tasks = [t.name for t in validate(document).tasks]
    if space.task not in tasks:
        raise ConfigError(
            f"search space {path}: objective {space.objective!r}: no task {space.task!r}; "
            f"tasks: {tasks}"
        )
    if metric_direction(space.metric) is None:
        raise ConfigError(
            f"search space {path}: objective {space.objective!r}: {space.metric!r} has no "
            "known direction (e.g. loss, auc, rmse, recall@100)"
        )


def extremes(values: Range | list[Any]) -> list[Any]:
    """The values that bound a range, or every choice: each must be a valid config."""
    return [values.low, values.high] if isinstance(values, Range) else list(values)


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """One trial's values, asked of an Optuna trial."""
    chosen = {}
    for key, values in space.space.items():
        if isinstance(values, list):
            chosen[key] = trial.suggest_categorical(key, values)
        elif values.is_int:
            step = int(values.step or 1)
            chosen[key] = trial.suggest_int(key, values.low, values.high, step=step, log=values.log)
        else:
            chosen[key] = trial.suggest_float(
                key, values.low, values.high, step=values.step, log=values.log
            )
    return chosen


def trial_overrides(values: dict[str, Any]) -> list[str]:
    """`key=value` overrides as `--set` takes them (JSON is YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]
