"""Airflow DAG for the daily mtlrec run: one task per step, each calling the CLI.

Every step is idempotent (a rerun with unchanged inputs is skipped, a killed one resumes), so
Airflow retries and catch-up runs are safe. Each run is named after its logical date and
reads the window ending on it (`--date`: `data.train_days` days of `dt=` partitions); with
`training.warm_start: last_blessed` in the config each day starts from the latest blessed
day before it. The DAG imports nothing from mtlrec: workers only need the `mtlrec` command
on their PATH.
"""

import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator

MTLREC = "mtlrec"
STEPS = ("validate", "preprocess", "train", "evaluate", "bless", "export", "push")

# Edit the paths for your deployment; {{ ds }} is the run's logical date (YYYY-MM-DD).
COMMON = (
    "--config /etc/mtlrec/config.yaml --data /data/logs --workdir /srv/mtlrec/work "
    "--date {{ ds }} --run-id {{ ds }} --log-format json --wait 3600"
)

with DAG(
    dag_id="mtlrec_daily",
    description="Logs -> Beam/tf.Transform -> TFRS multi-task model -> evaluation -> TF Serving",
    schedule="30 2 * * *",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=10)},
    tags=["mtlrec", "recommender"],
) as dag:
    previous = None
    for step in STEPS:
        task = BashOperator(task_id=step, bash_command=f"{MTLREC} {step} {COMMON}")
        if previous is not None:
            previous >> task
        previous = task
