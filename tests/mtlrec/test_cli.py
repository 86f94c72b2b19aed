"""The mtlrec command line: help, one-line errors, exit codes."""

import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

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
    assert err.startswith(f"mtlrec: error: data.raw_dir: no such directory: {tmp_path / 'absent'}")
    assert err.count("\n") == 1
    log_path = pathlib.Path(err.split("(traceback: ")[1].rstrip(")\n"))
    assert log_path.parent == tmp_path / "w" / "logs"
    assert "Traceback (most recent call last)" in log_path.read_text()


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


def test_a_bar_redrawn_in_place_reaches_the_console_before_its_line_ends():
    child = (
        "import os, time\n"
        "from mtlrec.native_logs import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    os.write(2, b'\\rreading: 1/2')\n"
        "    time.sleep(20)\n"
        "    os.write(2, b'\\n')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([process.stderr], [], [], 15)
        assert ready, "nothing reached the console within 15 s"
        assert os.read(process.stderr.fileno(), 100) == b"\rreading: 1/2"
    finally:
        process.kill()
        process.wait()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _tree(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("run_id", ["../x", "/abs/path", "..", ".", "a/b"])
def test_a_run_id_that_is_not_a_plain_name_is_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch, run_id
):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    code = main(["run", "--workdir", str(tmp_path / "w"), "--run-id", run_id])
    assert code == 2
    assert "a run id is a plain name" in _one_line(capsys)
    assert _tree(tmp_path) == before
    assert not pathlib.Path("/abs/path").exists()


def test_a_mistyped_option_names_the_closest_valid_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["run", "--worrkdir", str(tmp_path / "w")])
    assert e.value.code == 2
    assert (
        _one_line(capsys)
        == "mtlrec run: error: unknown option --worrkdir; did you mean --workdir?\n"
    )
    with pytest.raises(SystemExit):
        main(["run", "--froce"])
    assert "did you mean --force?" in _one_line(capsys)
    assert _tree(tmp_path) == set()


def test_a_step_command_rejects_the_options_it_does_not_take(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--from", "train"])
    assert e.value.code == 2
    assert _one_line(capsys).startswith("mtlrec train: error: unknown option --from")
    with pytest.raises(SystemExit):
        main(["train", "--force-push"])
    assert "unknown option --force-push" in _one_line(capsys)
    with pytest.raises(SystemExit):
        main(["generate", "--out", "x", "--", "--runner=DirectRunner"])
    assert "takes no Apache Beam options" in _one_line(capsys)


def test_beam_options_pass_only_after_dashes_or_in_beam_arg_and_are_checked(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--runner=DataflowRunner"])
    assert "Apache Beam options go after -- or in --beam-arg" in _one_line(capsys)
    assert main(["validate", "--", "--runer=DataflowRunner"]) == 2
    assert _one_line(capsys) == (
        "mtlrec: config error: unknown Apache Beam option --runer=DataflowRunner; "
        "did you mean --runner?\n"
    )
    assert main(["validate", "--beam-arg=--direct_num_workerz=2"]) == 2
    assert "did you mean --direct_num_workers?" in _one_line(capsys)


def test_a_runner_given_by_class_path_brings_its_own_options(tmp_path, monkeypatch, capsys):
    # Beam imports such a runner's module only when the job starts; its options (Dask's
    # --dask_client_address, say) must not be refused before that.
    (tmp_path / "fancy_runner.py").write_text(
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "from apache_beam.runners.runner import PipelineRunner\n"
        "class FancyOptions(PipelineOptions):\n"
        "    @classmethod\n"
        "    def _add_argparse_args(cls, parser):\n"
        "        parser.add_argument('--fancy_master')\n"
        "class FancyRunner(PipelineRunner):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from mtlrec import cli

    cli._check_beam_args(["--runner=fancy_runner.FancyRunner", "--fancy_master=host:1"])
    with pytest.raises(cli.ConfigError, match="unknown Apache Beam option --fancy_mastr"):
        cli._check_beam_args(["--runner=fancy_runner.FancyRunner", "--fancy_mastr=host:1"])
    assert main(["validate", "--", "--runner=no_such_module.Runner"]) == 2
    assert _one_line(capsys).startswith(
        "mtlrec: config error: --runner=no_such_module.Runner: cannot import no_such_module: "
    )


def test_beam_options_after_dashes_reach_the_config(monkeypatch):
    from mtlrec import cli

    seen = {}

    def fake_run(args, beam_args):
        seen["config"] = cli._config(args, beam_args)
        return 0

    monkeypatch.setattr(cli, "_cmd_run", fake_run)
    assert main(["run", "--beam-arg=--direct_num_workers=3", "--", "--project=p"]) == 0
    assert seen["config"].runner.beam_args[-2:] == ("--direct_num_workers=3", "--project=p")


def _read_only_command(workdir: pathlib.Path, command: list[str]) -> list[str]:
    """`command` with `workdir` read-only: a read-only bind mount in a private mount
    namespace when running as root (root ignores permission bits), else chmod 555."""
    if os.geteuid() != 0:
        os.chmod(workdir, 0o555)
        return command
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {workdir} {workdir}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("root without mount namespaces: cannot make a read-only workdir")
    mount = f"mount --bind {workdir} {workdir} && mount -o remount,ro,bind {workdir} {workdir}"
    return ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *command]


def test_a_read_only_workdir_is_one_line_naming_the_path_and_cause(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    command = [sys.executable, "-m", "mtlrec", "validate", "--workdir", str(workdir)]
    try:
        result = subprocess.run(
            _read_only_command(workdir, command),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        os.chmod(workdir, 0o755)
    assert result.returncode == 1, result.stderr
    # TensorFlow's native start-up notices (absl, oneDNN) may precede mtlrec's own output.
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mtlrec")]
    assert len(lines) == 1, result.stderr
    assert result.stderr.rstrip().endswith(lines[0])
    assert lines[0].startswith(f"mtlrec: error: {workdir}/"), lines[0]
    assert ("Read-only file system" in lines[0]) or ("Permission denied" in lines[0])
    assert "(traceback not saved: " in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
    assert list(workdir.iterdir()) == []


def test_the_cli_and_the_run_share_the_run_id_rule():
    from mtlrec import cli, run

    assert cli.RUN_ID.pattern == run.RUN_ID.pattern


def test_disk_full_under_a_step_is_one_line_naming_the_path_and_the_log(
    tmp_path, capsys, monkeypatch
):
    from mtlrec import cli

    def full(args, beam_args):
        try:
            raise OSError(28, "No space left on device", str(tmp_path / "w" / "runs" / "r" / "x"))
        except OSError as e:
            raise RuntimeError(f"step train failed in {tmp_path / 'w' / 'runs' / 'r'}: {e}") from e

    monkeypatch.setattr(cli, "_cmd_run", full)
    assert main(["run", "--workdir", str(tmp_path / "w")]) == 1
    err = _one_line(capsys)
    assert err.startswith(
        f"mtlrec: error: step train failed in {tmp_path / 'w' / 'runs' / 'r'}: "
        f"{tmp_path / 'w' / 'runs' / 'r' / 'x'}: No space left on device (traceback: "
        f"{tmp_path / 'w' / 'logs' / 'error-'}"
    )
    log_file = pathlib.Path(err.split("(traceback: ")[1].rstrip(")\n"))
    assert "OSError: [Errno 28] No space left on device" in log_file.read_text()


def test_a_sigterm_a_library_turned_into_its_own_error_still_exits_143(
    tmp_path, capsys, monkeypatch
):
    from mtlrec import cli, termination

    def wrapped(args, beam_args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt as e:
            raise RuntimeError("UnknownError: a library's own error") from e
        raise AssertionError("SIGTERM did not arrive")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "_cmd_run", wrapped)
    assert main(["run", "--workdir", str(tmp_path / "w")]) == 143
    assert _one_line(capsys) == "mtlrec: terminated (SIGTERM)\n"
    assert signal.getsignal(signal.SIGTERM) is before
    assert not termination.received()


def _bad_input_dir(raw: pathlib.Path) -> None:
    """20 good CSV impressions with one ragged row, a 0-byte Parquet file, 5 good JSON clicks
    with two garbage lines."""
    jan2 = 1_704_153_600_000
    (raw / "events").mkdir(parents=True)
    lines = ["event_id,ts,user_id,item_id,event_type,request_id,position"]
    lines += [
        f"e{i},{jan2 + i * 1000},u{i % 4},i{i % 5},impression,r{i},{i % 3}" for i in range(20)
    ]
    lines.insert(5, "bad,row,only")
    (raw / "events" / "part-0.csv").write_text("\n".join(lines) + "\n")
    (raw / "events" / "part-1.parquet").write_bytes(b"")
    clicks = [
        f'{{"event_id": "j{i}", "ts": {jan2 + i}, "user_id": "u1", "item_id": "i1", '
        f'"event_type": "click", "request_id": "r{i}"}}'
        for i in range(5)
    ]
    clicks.insert(2, "garbage {{{")
    clicks.insert(4, '"just a string"')
    (raw / "events" / "part-2.jsonl").write_text("\n".join(clicks) + "\n")


def test_validate_goes_past_a_ragged_row_an_empty_file_and_garbage_json(tmp_path, capsys):
    raw, workdir = tmp_path / "raw", tmp_path / "w"
    _bad_input_dir(raw)
    code = main(
        [
            "validate",
            "--data",
            str(raw),
            "--workdir",
            str(workdir),
            "--set",
            "data.max_bad_fraction=0.2",
        ]
    )
    assert code == 0
    empty = str(raw / "events" / "part-1.parquet")
    err = capsys.readouterr().err
    assert f"skipped bad events file {empty}: empty file (0 bytes)" in err
    (done,) = [line for line in err.splitlines() if "step validate: done" in line]
    assert done.endswith(
        "events_read=28  duplicates=0  rejected=3 (malformed_row 3)  "
        "accepted=25 (click 5, impression 20)  bad_files=1"
    )
    counts = json.loads((workdir / "manifest.json").read_text())["counts"]
    assert counts["events_read"] == 28
    assert counts["accepted"] == {"impression": 20, "click": 5, "purchase": 0}
    assert counts["rejected"]["malformed_row"] == 3
    assert sum(counts["rejected"].values()) == 3
    assert (counts["bad_files"], counts["bad_file_reasons"]) == (1, {empty: "empty file (0 bytes)"})
    dead = sorted(
        (r["_file"].rsplit("/", 1)[1], r["_line"], r["_raw"], r["detail"])
        for f in pathlib.Path(counts["dead_letter"]).glob("events*.jsonl")
        for r in map(json.loads, f.read_text().splitlines())
    )
    assert dead == [
        ("part-0.csv", 6, "bad,row,only", "has 3 fields, the header has 7"),
        ("part-2.jsonl", 3, "garbage {{{", "not valid JSON: Expecting value"),
        ("part-2.jsonl", 5, '"just a string"', "a JSON str, not an object"),
    ]


def test_a_split_without_a_positive_label_stops_before_training_in_one_line(tmp_path, capsys):
    # Ten days, two impressions a day, the first clicked; purchases on days 0-5 only, so the
    # validation split (day 7: the latest 10 % before the test split at day 8) has none.
    t0, day, minute = 1_704_067_200_000, 86_400_000, 60_000
    lines = ["event_id,ts,user_id,item_id,event_type,request_id,position,dwell_s"]
    for d in range(10):
        ts, user = t0 + d * day, f"u{d % 3}"
        lines += [f"i{d}-{s},{ts},{user},i{(d + s) % 4},impression,r{d},{s}," for s in (0, 1)]
        lines.append(f"c{d},{ts + minute},{user},i{d % 4},click,r{d},,{10 + d}")
        if d < 6:
            lines.append(f"p{d},{ts + 2 * minute},{user},i{d % 4},purchase,,,")
    raw, workdir = tmp_path / "raw", tmp_path / "w"
    raw.mkdir()
    (raw / "events.csv").write_text("\n".join(lines) + "\n")
    split = str(t0 + 8 * day)
    code = main(["run", "--data", str(raw), "--workdir", str(workdir), "--split-ts", split])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("mtlrec: error: ")
    assert (
        "split validation: task purchase has no positive 'purchase' label (0 of 2 examples)" in last
    )
    log_file = pathlib.Path(last.split("(traceback: ")[1].rstrip(")"))
    assert "SplitCheckError" in log_file.read_text()
