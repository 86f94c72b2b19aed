"""The mtlrec command line: help, one-line errors, exit codes."""

import subprocess
import sys

import pytest

from mtlrec.cli import main
from mtlrec.features.schema import DATA_DESCRIPTION


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


def test_python_dash_m_mtlrec_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "mtlrec", "config", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "model.sharing:" in result.stdout
    assert "tensorflow" not in result.stderr.lower()


def test_a_data_directory_that_names_a_preset_gets_it_without_a_flag(tmp_path, capsys):
    (tmp_path / DATA_DESCRIPTION).write_text("preset: movielens\n")
    (tmp_path / "interactions.csv").write_text(
        "event_id,user_id,item_id,ts,rating,genres,gender,occupation,age_bucket,release_year\n"
    )
    assert main(["config", "show", "--data", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "- name: rating" in captured.out
    assert f"{tmp_path} names the preset 'movielens'" in captured.err
    # --preset wins over the directory's: the synthetic tasks need columns MovieLens lacks.
    assert main(["config", "show", "--data", str(tmp_path), "--preset", "synthetic"]) == 2
    captured = capsys.readouterr()
    assert "tasks.click.label: no column 'click' in the data" in captured.err
    assert "names the preset" not in captured.err


def test_the_console_drops_native_log_lines_of_the_process_and_its_children(tmp_path):
    kept = tmp_path / "native.log"
    child = (
        "import os, subprocess, sys\n"
        "from mtlrec.native_logs import quiet_native_logs\n"
        f"with quiet_native_logs({str(kept)!r}):\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called"
        " are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1796624003.954680    3540 port.cc:153] oneDNN on\\n')\n"
        "    print('[10:00:00] step validate: started', file=sys.stderr, flush=True)\n"
        "    subprocess.run([sys.executable, '-c', 'import os; os.write(2, b\"E0000 "
        '00:00:1796624015.461187    3573 cuda_platform.cc:52] failed call to cuInit\\\\n"); '
        'os.write(2, b"worker says hello\\\\n")\'], check=True)\n'
        "    os.write(2, b'F0000 00:00:1796624015.461187    3573 x.cc:1] fatal stays\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "[10:00:00] step validate: started",
        "worker says hello",
        "F0000 00:00:1796624015.461187    3573 x.cc:1] fatal stays",
    ]
    assert [line[:40] for line in kept.read_text().splitlines()] == [
        "WARNING: All log messages before absl::I",
        "I0000 00:00:1796624003.954680    3540 po",
        "E0000 00:00:1796624015.461187    3573 cu",
    ]
