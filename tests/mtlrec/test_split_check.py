"""The split check before training: exact one-line messages naming split, task and counts."""

import pytest

from mtlrec.models.config import DEFAULT_TASKS
from mtlrec.split_check import SplitCheckError, check_splits

LABELS = {"click": 3, "purchase": 1, "dwell": 2}
COUNTS = {
    "train_examples": 40,
    "validation_examples": 5,
    "eval_examples": 10,
    "positives": {"train": LABELS, "validation": LABELS, "eval": LABELS},
}


def test_splits_with_examples_and_positives_pass():
    check_splits(DEFAULT_TASKS, 5, COUNTS)


def test_a_split_below_min_examples_names_it_and_the_counts():
    with pytest.raises(SplitCheckError) as error:
        check_splits(DEFAULT_TASKS, 6, COUNTS)
    assert str(error.value) == (
        "split validation: 5 examples, fewer than evaluation.min_examples=6; add data or move "
        "data.split_ts / data.eval_fraction / data.validation_fraction"
    )


def test_a_split_without_a_positive_label_names_the_split_task_and_counts():
    counts = {**COUNTS, "positives": {**COUNTS["positives"], "eval": {"click": 2, "dwell": 1}}}
    with pytest.raises(SplitCheckError) as error:
        check_splits(DEFAULT_TASKS, 1, counts)
    assert str(error.value) == (
        "split test: task purchase has no positive 'purchase' label (0 of 10 examples); add "
        "data, move the split (data.split_ts / data.eval_fraction / data.validation_fraction) "
        "or turn the task off"
    )


def test_retrieval_needs_no_label_and_older_counts_check_only_sizes():
    retrieval = tuple(t for t in DEFAULT_TASKS if t.label is None)
    empty = {"train": {}, "validation": {}, "eval": {}}
    check_splits(retrieval, 1, {**COUNTS, "positives": empty})
    check_splits(DEFAULT_TASKS, 1, {k: v for k, v in COUNTS.items() if k != "positives"})
    with pytest.raises(SplitCheckError, match="^split test: 0 examples"):
        check_splits(DEFAULT_TASKS, 1, {"train_examples": 3, "eval_examples": 0})
