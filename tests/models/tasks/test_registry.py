"""The task-kind registry: which kind serves a task, the task rules, metric directions."""

import subprocess
import sys

import pytest

from mtlrec.config import ConfigError, load_config
from mtlrec.models.config import DEFAULT_TASKS, TaskConfig
from mtlrec.models.tasks import kind_of, metric_direction, validate_tasks

CLICK = TaskConfig(name="click", kind="binary", label="click")
PURCHASE = TaskConfig(name="purchase", kind="binary", label="purchase", esmm_parent="click")


def test_each_default_task_is_served_by_its_kind():
    kinds = {t.name: kind_of(t).name for t in DEFAULT_TASKS}
    assert kinds == {
        "retrieval": "retrieval",
        "click": "binary",
        "purchase": "esmm",
        "dwell": "regression",
    }
    assert [kind_of(t).has_head for t in DEFAULT_TASKS] == [False, True, True, True]
    # Only the parentless click head learns the position bias.
    assert [kind_of(t).position_bias for t in DEFAULT_TASKS] == [False, True, False, False]


def test_an_esmm_parent_must_be_a_binary_task_without_a_parent():
    nested = TaskConfig(name="repeat", kind="binary", label="purchase", esmm_parent="purchase")
    with pytest.raises(ValueError, match=r"esmm_parent: 'purchase'.*valid: \['click'\]"):
        validate_tasks((CLICK, PURCHASE, nested))
    dwell_parent = PURCHASE.model_copy(update={"esmm_parent": "dwell"})
    dwell = TaskConfig(name="dwell", kind="regression", label="dwell")
    with pytest.raises(ValueError, match=r"'dwell' is not a binary task without a parent"):
        validate_tasks((CLICK, dwell_parent, dwell))


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (TaskConfig(name="r", kind="retrieval", label="click"), "retrieval takes no label"),
        (TaskConfig(name="d", kind="regression"), "kind regression needs a 'label'"),
        (
            TaskConfig(name="d", kind="regression", label="dwell", esmm_parent="click"),
            "esmm_parent applies to binary tasks only",
        ),
    ],
)
def test_a_kind_rejects_a_task_that_breaks_its_rules(task, message):
    with pytest.raises(ValueError, match=message):
        validate_tasks((CLICK, task))


def test_one_retrieval_task_at_most():
    first = TaskConfig(name="a", kind="retrieval")
    with pytest.raises(ValueError, match="at most one retrieval task"):
        validate_tasks((first, first.model_copy(update={"name": "b"})))


def test_the_config_reports_the_kind_rules_as_one_line():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["tasks.purchase.esmm_parent=dwell"])
    assert str(e.value) == (
        "config error: tasks.purchase.esmm_parent: 'dwell' is not a binary task without a "
        "parent; valid: ['click']"
    )


def test_metric_directions_come_from_the_kinds():
    assert metric_direction("recall@100") is True
    assert metric_direction("auc_on_clicks") is True
    assert metric_direction("logloss") is False
    assert metric_direction("rmse_s") is False
    assert metric_direction("calibration_ratio") is None


def test_reading_the_task_rules_does_not_import_tensorflow():
    code = (
        "import sys; from mtlrec.models.config import TaskConfig; "
        "import mtlrec.models.tasks; "
        "TaskConfig(name='c', kind='binary', label='click'); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
