"""The split check before training (SPEC §11): every split holds enough examples, and a
positive label of every labelled task, so training, early stopping and the test metrics all
have something to learn from and score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mtlrec.models.config import TaskConfig

SPLITS = {"train": "train", "validation": "validation", "test": "eval"}
"""Split name in messages -> its name in the preprocess counts ("eval" is the test split)."""


class SplitCheckError(ValueError):
    """A split is too small, or lacks any positive label of a task."""


def check_splits(tasks: Sequence[TaskConfig], min_examples: int, counts: dict[str, Any]) -> None:
    """Raises SplitCheckError naming the split, the task and the counts.

    Args:
      tasks: the configured tasks; those with a `label` need a positive one in every split.
      min_examples: `evaluation.min_examples`.
      counts: the preprocess step's counts (`<split>_examples`, `positives`); a split whose
        count is absent (an older preprocess output) is not checked.
    """
    positives = counts.get("positives")
    for split, name in SPLITS.items():
        key = f"{name}_examples"
        if key not in counts:
            continue
        rows = counts[key]
        if rows < min_examples:
            raise SplitCheckError(
                f"split {split}: {rows} examples, fewer than evaluation.min_examples="
                f"{min_examples}; add data or move data.split_ts / data.eval_fraction / "
                f"data.validation_fraction"
            )
        if positives is None:
            continue
        for task in tasks:
            if task.label is None:
                continue
            found = positives.get(name, {}).get(task.label, 0)
            if found == 0:
                raise SplitCheckError(
                    f"split {split}: task {task.name} has no positive {task.label!r} label "
                    f"(0 of {rows} examples); add data, move the split "
                    f"(data.split_ts / data.eval_fraction / data.validation_fraction) or "
                    f"turn the task off"
                )
