"""`mtlrec tune`: an Optuna search over training and model keys, selected on validation.

The run's validate and preprocess steps run (or are reused) once; every trial trains on
that one preprocess output in `<run>/tune/trial-NNNN/` and is scored on the validation
split (the train step's summary), never the test split. The study lives in an SQLite file
(`<run>/tune/study.db`), so a killed tune goes on where it stopped: completed trials count,
a trial that was running when the process died is marked failed and tried anew. Only the
best trial's directory is kept. Outputs: `trials.csv` (every trial, its values, objective
and state), `best.yaml` (the run's configuration with the best values: `mtlrec run --config
best.yaml` trains it) and `best.json`.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Any

import optuna

from mtlrec import log
from mtlrec.config import dump_yaml, validate, with_overrides
from mtlrec.lock import workdir_lock
from mtlrec.models.train import train
from mtlrec.run import run
from mtlrec.search_space import SearchSpace, suggest, trial_overrides

TUNE_DIR = "tune"
STUDY_NAME = "mtlrec"


def tune(document: dict[str, Any], space: SearchSpace, *, run_id: str | None = None) -> dict:
    """Runs the study to `space.trials` completed trials; returns best.json's content."""
    config = validate(document)
    doc = run(config, only=["validate", "preprocess"], run_id=run_id)
    workdir = pathlib.Path(config.runner.workdir)
    run_dir = workdir / "runs" / doc["run_id"]
    out = run_dir / TUNE_DIR
    out.mkdir(exist_ok=True)
    with workdir_lock(workdir):
        study = _study(out, space)
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        objective = _Objective(document, space, run_dir / "preprocess", out)
        if done < space.trials:
            study.optimize(objective, n_trials=space.trials - done)
        return _write_results(study, document, space, out)


def _study(out: pathlib.Path, space: SearchSpace) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction="maximize" if space.maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=space.seed),
        load_if_exists=True,
    )
    for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        # Its process died (this one holds the workdir lock): try its values anew.
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        log.event(f"tune: trial {trial.number} was interrupted; marked failed")
    return study


class _Objective:
    """One trial: the values, a train step in its own directory, the validation metric."""

    def __init__(
        self,
        document: dict[str, Any],
        space: SearchSpace,
        preprocess_dir: pathlib.Path,
        out: pathlib.Path,
    ):
        self._document = document
        self._space = space
        self._preprocess_dir = preprocess_dir
        self._out = out

    def __call__(self, trial: optuna.Trial) -> float:
        values = suggest(trial, self._space)
        config = validate(with_overrides(self._document, trial_overrides(values)))
        trial_dir = self._out / f"trial-{trial.number:04d}"
        shutil.rmtree(trial_dir, ignore_errors=True)
        started = time.monotonic()
        c = config
        summary = train(c.tasks, c.model, c.training, c.features, self._preprocess_dir, trial_dir)
        value = _metric(summary["eval"], self._space)
        trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        log.event(
            f"tune: trial {trial.number}: {self._space.objective}={value:.4f}",
            **{k.rsplit(".", 1)[-1]: v for k, v in values.items()},
        )
        self._keep_best(trial, value)
        return value

    def _keep_best(self, trial: optuna.Trial, value: float) -> None:
        """Deletes every trial directory but the best one's (models can be large)."""
        completed = [
            t
            for t in trial.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None
        ]
        values = [(t.value, t.number) for t in completed] + [(value, trial.number)]
        best = (max if self._space.maximize else min)(values, key=lambda v: v[0])[1]
        for path in self._out.glob("trial-*"):
            if path.name != f"trial-{best:04d}":
                shutil.rmtree(path, ignore_errors=True)


def _metric(evaluation: dict[str, dict[str, float]], space: SearchSpace) -> float:
    """The objective from the train step's validation metrics.

    Raises:
      ValueError: the task has no such metric; names the ones it has.
    """
    metrics = evaluation.get(space.task, {})
    if space.metric not in metrics:
        raise ValueError(
            f"tune: objective {space.objective!r}: task {space.task!r} reports "
            f"{sorted(metrics)} on the validation split"
        )
    return float(metrics[space.metric])


def _write_results(
    study: optuna.Study, document: dict[str, Any], space: SearchSpace, out: pathlib.Path
) -> dict:
    table = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    table = table.rename(columns={"value": space.objective})
    table.to_csv(out / "trials.csv", index=False)
    log.event("tune: trials\n" + table.to_string(index=False))
    best = study.best_trial
    result = {
        "objective": space.objective,
        "split": "validation",
        "value": best.value,
        "trial": best.number,
        "params": best.params,
        "trial_dir": str(out / f"trial-{best.number:04d}"),
        "completed": sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials),
    }
    best_config = validate(with_overrides(document, trial_overrides(best.params)))
    (out / "best.yaml").write_text(dump_yaml(best_config))
    (out / "best.json").write_text(json.dumps(result, indent=2) + "\n")
    log.event(
        f"tune: best trial {best.number}: {space.objective}={best.value:.4f}",
        config=str(out / "best.yaml"),
    )
    return result
