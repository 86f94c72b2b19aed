"""The Airflow DAG in a real Airflow: it loads, backfills two days, and a killed train resumes.

Airflow lives in its own virtual environment (`make airflow`; its pins conflict with
TensorFlow's), named by MTLREC_AIRFLOW_VENV; without it the test skips, unless
MTLREC_AIRFLOW_REQUIRED=1 (CI), when it fails. Airflow runs from AIRFLOW_HOME in tmp_path on
a sqlite database, its settings are Airflow Variables pointing the DAG at tiny generated data
and a small config, and `airflow dags backfill` runs the two days with the DAG's retries.
During day 2's train task a watcher SIGKILLs the train process once its first checkpoint is
on disk; Airflow retries the task, the retry resumes from that checkpoint, and day 2 still
reports its warm start from day 1.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
import yaml

from mtlrec.manifest import STEP_NAMES

pytestmark = pytest.mark.slow

DAG_FILE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "schedule" / "airflow_dag.py"
DAYS = ("2026-01-30", "2026-01-31")
# Logical dates of the DAG's "30 2 * * *" runs whose {{ ds }} are DAYS.
FIRST, LAST = "2026-01-30T02:30:00+00:00", "2026-01-31T02:30:00+00:00"
STEPS_PER_EPOCH = 40
CONFIG = {
    "data": {"train_days": 5, "test_days": 1},
    "training": {
        "epochs": 1,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "steps_per_execution": 1,
        "checkpoint_every_steps": 5,
        "early_stopping_patience": None,
        "batch_size": 128,
        "warm_start": "last_blessed",
    },
    "evaluation": {
        "baselines": ["popularity"],
        "min_metrics": {},
        "beat_popularity": False,
        "max_regression": 1.0,
    },
    "export": {"warmup_requests": 1},
    "runner": {
        "beam_args": [
            "--runner=FnApiRunner",
            "--direct_running_mode=in_memory",
            "--direct_num_workers=1",
        ]
    },
}
# Loads the DAG as the scheduler does and prints what it made of the Variables.
DAGBAG = """
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
dag = bag.dags.get("mtlrec_daily")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "tasks": [t.task_id for t in dag.topological_sort()] if dag else [],
    "train": dag.get_task("train").bash_command if dag else None,
    "retries": dag.default_args["retries"] if dag else None,
    "retry_delay_s": dag.default_args["retry_delay"].total_seconds() if dag else None,
}))
"""
TIMEOUT_S = 900


def _airflow_venv() -> pathlib.Path:
    venv = os.environ.get("MTLREC_AIRFLOW_VENV")
    if venv and (pathlib.Path(venv) / "bin" / "airflow").is_file():
        return pathlib.Path(venv)
    reason = f"no Airflow venv (MTLREC_AIRFLOW_VENV={venv!r}): make airflow installs one"
    if os.environ.get("MTLREC_AIRFLOW_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class TrainKiller(threading.Thread):
    """SIGKILLs the process running a run's train step once its first checkpoint is saved."""

    def __init__(self, workdir: pathlib.Path, run_id: str):
        super().__init__(daemon=True)
        # The manager writes the `checkpoint` state file last: a resume can read it then.
        self.marker = workdir / "runs" / run_id / "train" / "checkpoints" / "latest" / "checkpoint"
        self.lock = workdir / ".lock"
        self.stop = threading.Event()
        self.killed: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(0.05):
            if self.marker.exists():
                # The workdir lock's holder writes its pid there: the train step's process.
                pid = int(self.lock.read_text().strip())
                self.killed = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                os.kill(pid, signal.SIGKILL)
                return


def _task_instances(home: pathlib.Path) -> dict[tuple[str, str], tuple[str, int]]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT run_id, task_id, state, try_number FROM task_instance")
        return {(run_id, task): (state, tries) for run_id, task, state, tries in rows}


def test_the_dag_backfills_two_days_and_a_killed_train_resumes_on_retry(tmp_path):
    venv = _airflow_venv()
    mtlrec = pathlib.Path(sys.executable).with_name("mtlrec")
    home, dags, workdir = tmp_path / "airflow", tmp_path / "dags", tmp_path / "work"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    data = tmp_path / "data"
    generated = subprocess.run(
        [str(mtlrec), "generate", "--out", str(data), "--users", "300", "--items", "150",
         "--days", "6"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",  # executors call `airflow`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    variables = {
        "mtlrec_bin": str(mtlrec),
        "mtlrec_config": str(config),
        "mtlrec_data": str(data),
        "mtlrec_workdir": str(workdir),
        "mtlrec_retries": "1",
        "mtlrec_retry_delay_s": "1",
    }
    (tmp_path / "variables.json").write_text(json.dumps(variables))

    def airflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv / "bin" / "airflow"), *args],
            env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip

    for args in (("db", "migrate"), ("variables", "import", str(tmp_path / "variables.json"))):
        done = airflow(*args)
        assert done.returncode == 0, done.stderr[-3000:]

    loaded = subprocess.run(
        [str(venv / "bin" / "python"), "-c", DAGBAG, str(dags)],
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    bag = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["tasks"] == list(STEP_NAMES)
    assert bag["train"].startswith(f"{mtlrec} train --config {config} --data {data} ")
    assert (bag["retries"], bag["retry_delay_s"]) == (1, 1.0)

    killer = TrainKiller(workdir, DAYS[1])
    killer.start()
    try:
        backfill = airflow("dags", "backfill", "mtlrec_daily", "-s", FIRST, "-e", LAST)
    finally:
        killer.stop.set()
    assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]

    # The watcher killed day 2's train, and Airflow's retry of it succeeded.
    assert b"train" in killer.killed and DAYS[1].encode() in killer.killed, killer.killed
    states = _task_instances(home)
    runs = {DAYS[0]: f"backfill__{FIRST}", DAYS[1]: f"backfill__{LAST}"}
    assert {state for state, _ in states.values()} == {"success"} and len(states) == 14
    assert {key: tries for key, (_, tries) in states.items() if tries != 1} == {
        (runs[DAYS[1]], "train"): 2
    }

    manifests = {d: json.loads((workdir / "runs" / d / "manifest.json").read_text()) for d in DAYS}
    assert all(manifests[d]["blessed"] for d in DAYS)
    first, second = (manifests[d]["steps"]["train"]["result"] for d in DAYS)
    assert first["warm_start"]["source"] is None and first["resumed_from_step"] is None
    # The retry went on from the killed attempt's checkpoint instead of starting over...
    assert 5 <= second["resumed_from_step"] < STEPS_PER_EPOCH
    assert second["steps"] == STEPS_PER_EPOCH
    log = home / "logs" / "dag_id=mtlrec_daily" / f"run_id={runs[DAYS[1]]}" / "task_id=train"
    resumed = f"resuming from step {second['resumed_from_step']} "
    assert resumed not in (log / "attempt=1.log").read_text()
    assert resumed in (log / "attempt=2.log").read_text()
    # ...from the weights day 1 warm-started it with, which it still reports and exports.
    day1_model = str(workdir / "runs" / DAYS[0] / "train" / "model")
    assert second["warm_start"]["source"] == day1_model
    lineage = manifests[DAYS[1]]["steps"]["export"]["result"]["lineage"]
    assert (lineage["parent"], lineage["parent_run_id"]) == (day1_model, DAYS[0])
