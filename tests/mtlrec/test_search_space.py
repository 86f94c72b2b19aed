"""The search space of `mtlrec tune`: what may vary, the objective, and Optuna's values."""

import optuna
import pytest

from mtlrec.config import ConfigError
from mtlrec.search_space import load_space, suggest, trial_overrides


def _space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_reads_ranges_choices_and_the_objective(tmp_path):
    path = _space(
        tmp_path,
        "objective: dwell.rmse\ntrials: 3\nspace:\n"
        "  training.learning_rate: {low: 0.0001, high: 0.01, log: true}\n"
        "  model.embedding_dim: {low: 16, high: 64, step: 16}\n"
        "  model.sharing: [shared_bottom, mmoe]\n",
    )
    space = load_space(path, {})
    assert (space.task, space.metric, space.trials) == ("dwell", "rmse", 3)
    assert space.maximize is False  # RMSE: lower is better
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values = suggest(trial, space)
    assert 0.0001 <= values["training.learning_rate"] <= 0.01
    assert values["model.embedding_dim"] in (16, 32, 48, 64)
    assert values["model.sharing"] in ("shared_bottom", "mmoe")
    assert trial_overrides({"model.sharing": "mmoe", "training.learning_rate": 0.5}) == [
        'model.sharing="mmoe"',
        "training.learning_rate=0.5",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "objective: click.auc\nspace: {data.split_ts: [1, 2]}\n",
            r"data.split_ts: every trial trains on one preprocess output, so only model\.\*",
        ),
        (
            "objective: click.auc\nspace: {model.sharing: [shared_bottom, moe]}\n",
            r"model.sharing",
        ),
        (
            "objective: clik.auc\nspace: {model.sharing: [mmoe]}\n",
            r"no task 'clik'; tasks: \['retrieval', 'click', 'purchase', 'dwell'\]",
        ),
        ("objective: click.bogus\nspace: {model.sharing: [mmoe]}\n", r"'bogus' has no known"),
        (
            "objective: click.auc\nspace: {training.learning_rate: {low: 1, high: 0.1}}\n",
            r"space.training.learning_rate.*low 1 is above high 0.1",
        ),
    ],
)
def test_a_bad_space_is_one_error_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_space(_space(tmp_path, text), {})
