"""The mtlrec command line: help, one-line errors, exit codes."""

import subprocess
import sys

import pytest

from mtlrec.cli import main


def test_help_documents_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "generate", "import", "validate", "preprocess", "train"):
        assert command in out


def test_help_of_run_documents_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for option in ("--config", "--set", "--data", "--workdir", "--split-ts", "--force", "--from"):
        assert option in out


def test_bad_config_is_one_line_and_exit_2(capsys):
    assert main(["run", "--set", "model.sharing=moe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mtlrec: config error: model.sharing:")


def test_missing_raw_dir_is_one_line_and_exit_1(tmp_path, capsys):
    code = main(["run", "--data", str(tmp_path / "absent"), "--workdir", str(tmp_path / "w")])
    assert code == 1
    err = capsys.readouterr().err
    assert err == f"mtlrec: error: data.raw_dir: no such directory: {tmp_path / 'absent'}\n"


def test_config_show_prints_overrides(capsys):
    assert main(["config", "show", "--set", "training.mode=alternating"]) == 0
    assert "mode: alternating" in capsys.readouterr().out


def test_unknown_option_of_a_non_beam_command_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["config", "show", "--runner=DataflowRunner"])
    assert e.value.code == 2


def test_python_dash_m_pipeline_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "mtlrec", "config", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "model.sharing:" in result.stdout
    assert "tensorflow" not in result.stderr.lower()
