"""Fault injection through the real CLI: kill -9 and SIGTERM mid-step, then rerun.

One small synthetic run in one workdir is killed again and again, each time further on:

1. kill -9 during validate (multi-process Beam): no SDK worker of the dead driver survives;
   the manifest says validate is `running`, never done.
2. SIGTERM during validate (validate and preprocess run as one Beam job, so this is also
   "during preprocess"): exit 143, validate recorded `interrupted`.
3. SIGTERM during train, after a checkpoint: exit 143, train `interrupted`, its
   checkpoints kept.
4. kill -9 during export: the rerun resumed training from the checkpoint before that.
5. The final rerun finishes: every finished step is `skipped`, training ran exactly the
   configured total of steps, and exactly one new model version is served per model.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from mtlrec.pipeline.worker_guard import _processes, descendants

pytestmark = pytest.mark.slow

EPOCHS, STEPS_PER_EPOCH = 3, 20
SMALL = [
    "--set", "data.generate.users=300",
    "--set", "data.generate.items=150",
    "--set", "data.generate.days=6",
    "--set", f"training.epochs={EPOCHS}",
    "--set", f"training.steps_per_epoch={STEPS_PER_EPOCH}",
    "--set", "training.steps_per_execution=1",
    "--set", "training.checkpoint_every_steps=5",
    "--set", "training.early_stopping_patience=null",
    "--set", "training.batch_size=128",
    "--set", "evaluation.baselines=[popularity]",
    "--set", "evaluation.min_metrics={}",
    "--set", "evaluation.beat_popularity=false",
]  # fmt: skip
IN_PROCESS = ["--", "--runner=FnApiRunner", "--direct_running_mode=in_memory"]
MULTI_PROCESS = [
    "--",
    "--runner=FnApiRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
]
TIMEOUT_S = 300


class Run:
    """`mtlrec run` as a subprocess whose stderr (the step log) is read while it runs."""

    def __init__(self, workdir: pathlib.Path, log: pathlib.Path, beam: list[str]):
        self.log = log
        self._err = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtlrec", "run", "--workdir", str(workdir), *SMALL, *beam],
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            cwd=workdir.parent,
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text():
            if self.proc.poll() is not None:
                pytest.fail(f"exited {self.proc.returncode} before {needle!r}:\n{self.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} after {timeout_s} s:\n{self.text()}")
            time.sleep(0.2)

    def reached(self, needle: str, timeout_s: float = TIMEOUT_S) -> bool:
        """Whether `needle` appears in the log before the run ends on its own."""
        deadline = time.monotonic() + timeout_s
        while needle not in self.text():
            if self.proc.poll() is not None:
                return needle in self.text()
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} after {timeout_s} s:\n{self.text()}")
            time.sleep(0.05)
        return True

    def kill(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=120)
        self._err.close()
        return code

    def finish(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT_S * 2)
        self._err.close()
        return code


def _wait_until(predicate, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _steps(workdir: pathlib.Path) -> dict[str, str]:
    doc = json.loads((workdir / "manifest.json").read_text())
    return {name: step["status"] for name, step in doc["steps"].items()}


def _beam_workers(pid: int) -> dict[int, int]:
    found = {}
    for p, start in descendants(pid).items():
        try:
            cmdline = pathlib.Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sdk_worker_main" in cmdline:
            found[p] = start
    return found


def _alive(recorded: dict[int, int]) -> list[int]:
    table = _processes()
    return [p for p, start in recorded.items() if p in table and table[p][1] == start]


def _checkpoint_steps(run_dir: pathlib.Path) -> list[int]:
    latest = run_dir / "train" / "checkpoints" / "latest"
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in latest.glob("ckpt-*.index"))


def test_killed_and_terminated_runs_resume_and_lose_nothing(tmp_path):
    workdir = tmp_path / "work"
    logs = tmp_path / "logs"
    logs.mkdir()

    # 1. kill -9 mid validate, on multi-process Beam.
    run = Run(workdir, logs / "1.log", MULTI_PROCESS)
    run.wait_for("step validate: started")
    workers: dict[int, int] = {}

    def have_workers() -> bool:
        workers.update(_beam_workers(run.proc.pid))
        return len(workers) >= 2

    _wait_until(have_workers)
    assert run.kill(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(2.0)
    assert _alive(workers) == [], "Beam SDK workers outlived their driver"
    assert _steps(workdir) == {"validate": "running"}

    # 2. SIGTERM mid validate (the one Beam job of validate + preprocess).
    run = Run(workdir, logs / "2.log", IN_PROCESS)
    run.wait_for("step validate: started")
    time.sleep(1.0)
    assert run.kill(signal.SIGTERM) == 143
    assert run.text().rstrip().endswith("mtlrec: terminated (SIGTERM)")
    assert _steps(workdir) == {"validate": "interrupted"}

    # 3. SIGTERM mid train, once a checkpoint exists.
    run = Run(workdir, logs / "3.log", IN_PROCESS)
    run.wait_for("step train: started")
    (run_dir,) = (workdir / "runs").iterdir()
    _wait_until(lambda: len(_checkpoint_steps(run_dir)) > 0, timeout_s=TIMEOUT_S)
    assert run.kill(signal.SIGTERM) == 143
    assert _steps(workdir) == {"validate": "done", "preprocess": "done", "train": "interrupted"}
    kept = _checkpoint_steps(run_dir)
    assert kept and kept[-1] < EPOCHS * STEPS_PER_EPOCH

    # 4. kill -9 mid export; the run resumed training from the kept checkpoint.
    run = Run(workdir, logs / "4.log", IN_PROCESS)
    run.wait_for("step export: started")
    time.sleep(1.0)
    assert run.kill(signal.SIGKILL) == -signal.SIGKILL
    text = run.text()
    assert "step validate: skipped" in text and "step preprocess: skipped" in text
    assert f"resuming from step {kept[-1]} " in text
    assert _steps(workdir) == {
        "validate": "skipped",
        "preprocess": "skipped",
        "train": "done",
        "evaluate": "done",
        "bless": "done",
        "export": "running",
    }

    # 5. The rerun finishes and repeats nothing that finished.
    run = Run(workdir, logs / "5.log", IN_PROCESS)
    assert run.finish() == 0, run.text()
    text = run.text()
    for name in ("validate", "preprocess", "train", "evaluate", "bless"):
        assert f"step {name}: skipped" in text, name
    assert "step export: started" in text and "step push: done" in text
    doc = json.loads((workdir / "manifest.json").read_text())
    assert {n: s["status"] for n, s in doc["steps"].items()} == {
        "validate": "skipped",
        "preprocess": "skipped",
        "train": "skipped",
        "evaluate": "skipped",
        "bless": "skipped",
        "export": "done",
        "push": "done",
    }
    summary = doc["steps"]["train"]["result"]
    assert summary["steps"] == EPOCHS * STEPS_PER_EPOCH
    assert summary["resumed_from_step"] == kept[-1]
    served = workdir / "serving"
    models = sorted(p.name for p in served.iterdir() if p.is_dir())
    assert models, "nothing was pushed"
    for model in models:
        assert sorted(p.name for p in (served / model).iterdir()) == ["1"], model
    # Nothing was written outside the workdir (the test's log files aside).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "work"]
    assert not (pathlib.Path(os.getcwd()) / "mtlrec-work").exists()


def test_kills_at_the_edges_of_steps_repeat_nothing_that_finished(tmp_path):
    """kill -9 / SIGTERM just after a step ends and just as one starts, for the steps the
    test above does not kill: preprocess (after the validate + preprocess job), train's end,
    evaluate's start and push's start."""
    workdir = tmp_path / "work"
    logs = tmp_path / "logs"
    logs.mkdir()
    kills = [
        ("step validate: done", signal.SIGKILL),
        ("step train: done", signal.SIGKILL),
        ("step evaluate: started", signal.SIGTERM),
        ("step push: started", signal.SIGKILL),
    ]
    texts, landed = [], []
    for i, (needle, sig) in enumerate(kills):
        run = Run(workdir, logs / f"{i}.log", IN_PROCESS)
        if run.reached(needle) and run.proc.poll() is None:
            landed.append(needle)
            assert run.kill(sig) in (-signal.SIGKILL, 143, 0), needle
        else:
            run.finish()
        texts.append(run.text())
    # The kills at the start of evaluate and push land (the steps before them take seconds).
    assert {"step validate: done", "step evaluate: started"} <= set(landed), landed
    run = Run(workdir, logs / "last.log", IN_PROCESS)
    assert run.finish() == 0, run.text()
    texts.append(run.text())
    every = "\n".join(texts)
    # Each step finished exactly once over the five processes (then it is only skipped).
    for name in ("validate", "train", "evaluate", "bless", "export", "push"):
        assert every.count(f"step {name}: done") == 1, (name, every[-3000:])
    assert every.count("step preprocess: done") <= 2  # done with validate, or on its own
    doc = json.loads((workdir / "manifest.json").read_text())
    assert all(s["status"] in ("done", "skipped") for s in doc["steps"].values()), doc["steps"]
    assert doc["steps"]["train"]["result"]["steps"] == EPOCHS * STEPS_PER_EPOCH
    served = workdir / "serving"
    for model in (p for p in served.iterdir() if p.is_dir()):
        assert sorted(p.name for p in model.iterdir()) == ["1"], model
