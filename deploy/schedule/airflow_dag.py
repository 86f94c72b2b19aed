"""Airflow DAG for the daily mtlrec run: one task per step, each calling the CLI.

Every step is idempotent (a rerun with unchanged inputs is skipped, a killed one resumes), so
Airflow retries and catch-up runs are safe: a retry of a killed `train` goes on from its
last checkpoint. Each run is named after its logical date and reads the window ending on it
(`--date`: `data.train_days` days of `dt=` partitions); with `training.warm_start:
last_blessed` in the config each day starts from the latest blessed day before it.

The DAG imports nothing from mtlrec: each task runs the `mtlrec` command of the project's
own virtual environment (a BashOperator subprocess), so Airflow, in its own environment,
never loads TensorFlow or Beam. Its settings are Airflow Variables, read when the file is
parsed, each with a default (`airflow variables set mtlrec_workdir /srv/mtlrec/work`, or
the environment variable AIRFLOW_VAR_MTLREC_WORKDIR):

| Variable | default | meaning |
| --- | --- | --- |
| mtlrec_bin | mtlrec | the CLI, e.g. /srv/mtlrec/.venv/bin/mtlrec |
| mtlrec_config | /etc/mtlrec/config.yaml | the configuration file (`--config`) |
| mtlrec_data | /data/logs | the raw log directory (`--data`) |
| mtlrec_workdir | /srv/mtlrec/work | the work directory (`--workdir`) |
| mtlrec_retries | 2 | retries of a failed or killed task |
| mtlrec_retry_delay_s | 600 | seconds before a retry |

Installing Airflow, and the commands the test runs against it: deploy/schedule/README.md.
"""

import datetime
import shlex

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator

STEPS = ("validate", "preprocess", "train", "evaluate", "bless", "export", "push")
DEFAULTS = {
    "bin": "mtlrec",
    "config": "/etc/mtlrec/config.yaml",
    "data": "/data/logs",
    "workdir": "/srv/mtlrec/work",
    "retries": "2",
    "retry_delay_s": "600",
}
# {{ ds }} is the run's logical date (YYYY-MM-DD). The wait queues a task behind another
# process holding the workdir (a person's run, a killed step's last children) instead of failing.
DAILY = "--date {{ ds }} --run-id {{ ds }} --log-format json --wait 3600"
SETTINGS = {
    name: Variable.get(f"mtlrec_{name}", default_var=value) for name, value in DEFAULTS.items()
}


def command(step: str) -> str:
    """The task's command line: `mtlrec STEP` on the configured paths for the logical date."""
    paths = " ".join(
        f"--{flag} {shlex.quote(SETTINGS[flag])}" for flag in ("config", "data", "workdir")
    )
    return f"{shlex.quote(SETTINGS['bin'])} {step} {paths} {DAILY}"


with DAG(
    dag_id="mtlrec_daily",
    description="Logs -> Beam/tf.Transform -> TFRS multi-task model -> evaluation -> TF Serving",
    schedule="30 2 * * *",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=True,
    max_active_runs=1,
    default_args={
        "retries": int(SETTINGS["retries"]),
        "retry_delay": datetime.timedelta(seconds=float(SETTINGS["retry_delay_s"])),
    },
    tags=["mtlrec", "recommender"],
) as dag:
    previous = None
    for step in STEPS:
        task = BashOperator(task_id=step, bash_command=command(step))
        if previous is not None:
            previous >> task
        previous = task
