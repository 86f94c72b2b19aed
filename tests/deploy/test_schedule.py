"""The scheduler files: the Airflow DAG has one task per step in order; the cron line runs mtlrec."""

import ast
import pathlib
import re

from mtlrec.steps import STEP_NAMES

SCHEDULE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "schedule"


def _dag_module() -> ast.Module:
    return ast.parse((SCHEDULE / "airflow_dag.py").read_text())


def _constant(module: ast.Module, name: str):
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not a constant of the DAG file")


def test_dag_runs_every_step_in_pipeline_order():
    # Airflow itself is not a dependency: its pins conflict with TensorFlow's, so the DAG is
    # checked by parsing; it chains one BashOperator per entry of STEPS.
    module = _dag_module()
    assert _constant(module, "STEPS") == STEP_NAMES
    source = ast.unparse(module)
    assert "BashOperator(task_id=step" in source
    assert "previous >> task" in source


def test_dag_steps_are_real_cli_commands():
    from mtlrec.cli import build_parser

    # The paths come from Airflow Variables (tests/deploy/test_airflow_dag.py renders them
    # in a real Airflow); the dated part of every task's command is a constant.
    parser = build_parser()
    daily = _constant(_dag_module(), "DAILY").replace("{{ ds }}", "2026-01-01")
    paths = ["--config", "c.yaml", "--data", "logs", "--workdir", "work"]
    for step in STEP_NAMES:
        args, unknown = parser.parse_known_args([step, *paths, *daily.split()])
        assert args.command == step
        assert unknown == []
        assert args.date == args.run_id == "2026-01-01"


def test_dag_settings_are_airflow_variables_with_defaults():
    defaults = _constant(_dag_module(), "DEFAULTS")
    assert set(defaults) == {"bin", "config", "data", "workdir", "retries", "retry_delay_s"}
    assert int(defaults["retries"]) > 0
    assert "Variable.get(f'mtlrec_{name}', default_var=value)" in ast.unparse(_dag_module())


def test_cron_line_runs_mtlrec_daily_with_json_logs():
    lines = [
        line
        for line in (SCHEDULE / "mtlrec.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split()
    assert re.fullmatch(r"\d+", fields[0]) and re.fullmatch(r"\d+", fields[1])
    assert fields[2:5] == ["*", "*", "*"]
    assert "mtlrec run" in lines[0] and "--log-format json" in lines[0]
    assert '--date "$(date -u -d yesterday' in lines[0]


def test_dag_catches_up_missed_days():
    source = ast.unparse(_dag_module())
    assert "catchup=True" in source and "max_active_runs=1" in source
