"""`mtlrec tune` as a process: trials on one preprocess output, chosen on validation, resumed."""

import json
import pathlib
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

SMALL = [
    "--set", "data.generate.users=300",
    "--set", "data.generate.items=150",
    "--set", "data.generate.days=6",
    "--set", "training.epochs=1",
    "--", "--direct_running_mode=in_memory", "--direct_num_workers=1",
]  # fmt: skip
SPACE = """
objective: click.auc
trials: 3
seed: 4
space:
  training.learning_rate: {low: 0.001, high: 0.05, log: true}
  model.sharing: [shared_bottom, mmoe]
"""


def _tune(tmp_path: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    command = ["tune", "--workdir", "work", "--space", "space.yaml", "--run-id", "r1"]
    return subprocess.run(
        [sys.executable, "-m", "mtlrec", *command, *extra, *SMALL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_tune_selects_on_validation_keeps_the_best_and_resumes(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    first = _tune(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "work" / "runs" / "r1" / "tune"
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE"] * 3
    best = json.loads((out / "best.json").read_text())
    assert best["split"] == "validation" and best["completed"] == 3
    assert best["value"] == pytest.approx(trials["click.auc"].max())
    # Only the best trial's directory stays; its validation AUC is the objective.
    assert sorted(p.name for p in out.glob("trial-*")) == [f"trial-{best['trial']:04d}"]
    records = json.loads((out / f"trial-{best['trial']:04d}" / "history.json").read_text())
    assert records[-1]["eval"]["click"]["auc"] == pytest.approx(best["value"])
    # best.yaml is the run's configuration with the best values, runnable as written.
    chosen = yaml.safe_load((out / "best.yaml").read_text())
    assert chosen["model"]["sharing"] == best["params"]["model.sharing"]
    assert chosen["training"]["learning_rate"] == pytest.approx(
        best["params"]["training.learning_rate"]
    )
    assert chosen["data"]["generate"]["users"] == 300

    # A process killed inside a trial leaves it running in the study: the next tune marks
    # it failed and completes the remaining trials without redoing the finished ones.
    study = optuna.load_study(study_name="mtlrec", storage=f"sqlite:///{out / 'study.db'}")
    study.ask()
    second = _tune(tmp_path, "--trials", "4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "step preprocess: skipped" in second.stderr
    assert "trial 3 was interrupted" in second.stderr
    states = list(pd.read_csv(out / "trials.csv")["state"])
    assert states == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE"]


def test_a_key_outside_the_tunable_sections_stops_before_any_step(tmp_path):
    (tmp_path / "space.yaml").write_text("objective: click.auc\nspace: {features.enabled: [[]]}\n")
    result = _tune(tmp_path)
    assert result.returncode == 2
    assert "features.enabled: every trial trains on one preprocess output" in result.stderr
    assert not (tmp_path / "work" / "runs").exists()
