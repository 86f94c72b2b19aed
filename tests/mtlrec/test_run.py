"""The orchestrator: skip unchanged steps, rerun what a change reaches, resume, lock.

The step graph is the real one (`mtlrec.steps.STEPS`); only the actions are replaced by
cheap recorders, so these tests pin down the orchestration itself in milliseconds. The
end-to-end behaviour with the real steps is in tests/test_end_to_end.py.
"""

import dataclasses
import json
import os
import signal
import time

import pytest

from mtlrec import run as run_module
from mtlrec import steps as steps_module
from mtlrec import termination
from mtlrec.config import load_config
from mtlrec.lock import LockedError, workdir_lock
from mtlrec.manifest import STEP_NAMES


@pytest.fixture
def recorded(monkeypatch):
    calls: list[str] = []
    failing: set[str] = set()
    interrupting.clear()
    sigterm_wrapping.clear()
    seen_manifests.clear()

    def recorder(name):
        def action(ctx):
            calls.append(name)
            ctx.step_dir(name).mkdir(parents=True, exist_ok=True)
            marker = ctx.step_dir(name) / "attempts"
            attempts = int(marker.read_text()) + 1 if marker.exists() else 1
            marker.write_text(str(attempts))
            seen_manifests.append(json.loads((ctx.run_dir / "manifest.json").read_text()))
            if name in failing:
                raise RuntimeError(f"injected failure in {name}")
            if name in interrupting:
                raise KeyboardInterrupt
            if name in sigterm_wrapping:
                _sigterm_wrapped_by_a_library()
            for proof in PROOFS.get(name, ()):
                (ctx.run_dir / proof).parent.mkdir(parents=True, exist_ok=True)
                (ctx.run_dir / proof).write_text("{}")
            results = {
                "validate": {"events_read": 10, "duplicates": 0, "rejected": {}},
                "evaluate": {"click": {"auc": 0.7}},
                "bless": {"blessed": True, "checks": []},
                "export": {"candidates": {}},
                "push": {"pushed": {}},
            }
            return results.get(name, {"attempts": attempts})

        return action

    patched = tuple(dataclasses.replace(s, action=recorder(s.name)) for s in steps_module.STEPS)
    monkeypatch.setattr(run_module, "STEPS", patched)
    return calls, failing


@pytest.fixture
def raw_dir(tmp_path):
    raw = tmp_path / "raw"
    (raw / "events").mkdir(parents=True)
    (raw / "events" / "part-0.csv").write_text("event_id\n1\n")
    return raw


def _sigterm_wrapped_by_a_library():
    """What tf.data does to an exception raised in a Python callback: its own error."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs here, at the next bytecode
    except KeyboardInterrupt as e:
        raise RuntimeError("UnknownError: a library's own error") from e
    raise AssertionError("SIGTERM did not arrive")


def _config(tmp_path, raw_dir, *overrides):
    return load_config(
        overrides=[f"data.raw_dir={raw_dir}", f"runner.workdir={tmp_path / 'w'}", *overrides]
    )


interrupting: set[str] = set()
"""Steps whose action raises KeyboardInterrupt (what SIGTERM and Ctrl-C raise)."""
sigterm_wrapping: set[str] = set()
"""Steps that send SIGTERM to themselves inside a library that wraps what it raises."""
seen_manifests: list[dict] = []
"""The run manifest on disk as each action started."""
PROOFS = {
    "validate": ["validate/counts.json"],
    "preprocess": ["preprocess/counts.json"],
    "train": ["train/model/model_spec.json", "train/summary.json"],
    "evaluate": ["evaluate/metrics.json"],
}
ALL = ["validate", "preprocess", "train", "evaluate", "bless", "export", "push"]


def test_second_run_skips_every_step(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    first = run_module.run(_config(tmp_path, raw_dir))
    assert calls == ALL
    assert {s["status"] for s in first["steps"].values()} == {"done"}
    calls.clear()
    second = run_module.run(_config(tmp_path, raw_dir))
    assert calls == []
    assert {s["status"] for s in second["steps"].values()} == {"skipped"}
    assert second["run_id"] == first["run_id"]
    assert second["metrics"] == {"click": {"auc": 0.7}}
    latest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert latest["steps"]["train"]["status"] == "skipped"


def test_a_config_change_reruns_only_the_steps_it_reaches(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    run_module.run(_config(tmp_path, raw_dir))
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir, "training.learning_rate=0.01"))
    assert calls == ["train", "evaluate", "bless", "export", "push"]
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir, "training.learning_rate=0.01", "export.top_k=5"))
    assert calls == ["export", "push"]


def test_changed_input_data_is_a_new_run(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    first = run_module.run(_config(tmp_path, raw_dir))
    (raw_dir / "events" / "part-0.csv").write_text("event_id\n2\n")
    calls.clear()
    second = run_module.run(_config(tmp_path, raw_dir))
    assert calls == ALL
    assert second["run_id"] != first["run_id"]


def test_failed_step_resumes_without_redoing_earlier_steps(tmp_path, raw_dir, recorded):
    calls, failing = recorded
    failing.add("train")
    with pytest.raises(run_module.StepFailedError, match="step train failed"):
        run_module.run(_config(tmp_path, raw_dir))
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["steps"]["train"]["status"] == "failed"
    assert manifest["steps"]["preprocess"]["status"] == "done"
    failing.clear()
    calls.clear()
    doc = run_module.run(_config(tmp_path, raw_dir))
    assert calls == ["train", "evaluate", "bless", "export", "push"]
    # The failed step's directory survives, so training resumes from its checkpoints.
    assert doc["steps"]["train"]["result"] == {"attempts": 2}


def test_force_and_from_redo_work(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    run_module.run(_config(tmp_path, raw_dir))
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir), from_step="evaluate")
    assert calls == ["evaluate", "bless", "export", "push"]
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir), force=True)
    assert calls == ALL


def test_single_step_command_runs_only_that_step(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    run_module.run(_config(tmp_path, raw_dir), only=["validate"])
    assert calls == ["validate"]


def test_a_second_run_on_a_locked_workdir_refuses(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    workdir = tmp_path / "w"
    workdir.mkdir()
    with workdir_lock(workdir), pytest.raises(LockedError, match="in use by another mtlrec run"):
        run_module.run(_config(tmp_path, raw_dir))
    assert calls == []
    run_module.run(_config(tmp_path, raw_dir))
    assert calls == ALL


def test_validate_and_preprocess_share_one_beam_job_only_when_both_are_due(
    tmp_path, raw_dir, recorded, monkeypatch
):
    calls, _ = recorded
    seen = []

    def watching(step):
        def action(ctx):
            seen.append((step.name, ctx.validate_with_preprocess))
            return step.action(ctx)

        return dataclasses.replace(step, action=action)

    watched = tuple(watching(s) for s in run_module.STEPS if s.name in run_module.ONE_BEAM_JOB)
    others = tuple(s for s in run_module.STEPS if s.name not in run_module.ONE_BEAM_JOB)
    monkeypatch.setattr(run_module, "STEPS", watched + others)

    def flags(**kwargs):
        seen.clear()
        doc = run_module.run(_config(tmp_path, raw_dir, *kwargs.pop("overrides", ())), **kwargs)
        return seen[:], {k: doc["steps"][k].get("beam_job") for k in run_module.ONE_BEAM_JOB}

    both = [("validate", True), ("preprocess", True)]
    assert flags() == (both, dict.fromkeys(run_module.ONE_BEAM_JOB, ["validate", "preprocess"]))
    assert flags(from_step="preprocess")[0] == [("preprocess", False)]
    assert flags(overrides=["data.click_window_s=60"])[0] == [("preprocess", False)]
    assert flags(only=["validate"], force=True)[0] == [("validate", False)]
    assert flags(force=True)[0] == both
    assert flags(overrides=["data.interactions.table=ratings"])[0] == [
        ("validate", False),
        ("preprocess", False),
    ]
    assert "train" in calls


def test_the_steps_run_in_the_order_the_manifest_records():
    assert tuple(s.name for s in steps_module.STEPS) == STEP_NAMES
    for position, s in enumerate(steps_module.STEPS):
        assert set(s.upstream) <= set(STEP_NAMES[:position]), s.name


def _on_disk(tmp_path):
    return json.loads((tmp_path / "w" / "manifest.json").read_text())


def test_the_manifest_on_disk_says_running_while_a_step_runs(tmp_path, raw_dir, recorded):
    run_module.run(_config(tmp_path, raw_dir))
    statuses = [
        {name: step.get("status") for name, step in m["steps"].items()} for m in seen_manifests
    ]
    assert statuses[2] == {"validate": "done", "preprocess": "done", "train": "running"}
    assert [m["steps"][name]["status"] for m, name in zip(seen_manifests, ALL, strict=True)] == [
        "running"
    ] * 7


def test_an_interrupted_step_is_recorded_and_resumes_in_its_own_directory(
    tmp_path, raw_dir, recorded
):
    calls, _ = recorded
    interrupting.add("train")
    with pytest.raises(KeyboardInterrupt):
        run_module.run(_config(tmp_path, raw_dir))
    steps = _on_disk(tmp_path)["steps"]
    assert {n: s["status"] for n, s in steps.items()} == {
        "validate": "done",
        "preprocess": "done",
        "train": "interrupted",
    }
    interrupting.clear()
    calls.clear()
    doc = run_module.run(_config(tmp_path, raw_dir))
    assert calls == ["train", "evaluate", "bless", "export", "push"]
    assert doc["steps"]["train"]["result"] == {"attempts": 2}  # the directory was kept
    assert doc["steps"]["validate"]["status"] == "skipped"


def test_an_error_a_library_made_of_a_sigterm_is_recorded_as_an_interruption(
    tmp_path, raw_dir, recorded
):
    calls, _ = recorded
    sigterm_wrapping.add("train")
    with termination.raise_on_sigterm(), pytest.raises(termination.Terminated):
        run_module.run(_config(tmp_path, raw_dir))
    assert _on_disk(tmp_path)["steps"]["train"]["status"] == "interrupted"
    assert not termination.received()
    sigterm_wrapping.clear()
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir))
    assert calls == ["train", "evaluate", "bless", "export", "push"]


def test_a_step_that_cannot_resume_starts_from_an_empty_directory(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    interrupting.add("validate")
    with pytest.raises(KeyboardInterrupt):
        run_module.run(_config(tmp_path, raw_dir))
    interrupting.clear()
    doc = run_module.run(_config(tmp_path, raw_dir))
    assert (
        json.loads((tmp_path / "w" / "runs" / doc["run_id"] / "validate" / "attempts").read_text())
        == 1
    )


def test_a_step_recorded_done_whose_outputs_are_gone_is_redone(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    first = run_module.run(_config(tmp_path, raw_dir))
    (tmp_path / "w" / "runs" / first["run_id"] / "train" / "model" / "model_spec.json").unlink()
    calls.clear()
    run_module.run(_config(tmp_path, raw_dir))
    assert calls == ["train", "evaluate", "bless", "export", "push"]


def test_a_killed_force_redo_leaves_no_later_step_looking_done(tmp_path, raw_dir, recorded):
    calls, _ = recorded
    run_module.run(_config(tmp_path, raw_dir))
    interrupting.add("train")
    with pytest.raises(KeyboardInterrupt):
        run_module.run(_config(tmp_path, raw_dir), force=True)
    steps = _on_disk(tmp_path)["steps"]
    assert {n: s["status"] for n, s in steps.items()} == {
        "validate": "done",
        "preprocess": "done",
        "train": "interrupted",
        "evaluate": "stale",
        "bless": "stale",
        "export": "stale",
        "push": "stale",
    }
    interrupting.clear()
    calls.clear()
    doc = run_module.run(_config(tmp_path, raw_dir))
    assert calls == ["train", "evaluate", "bless", "export", "push"]
    assert {s["status"] for s in doc["steps"].values()} == {"done", "skipped"}


@pytest.mark.parametrize("bad", ["../x", "/abs/path", ".", "..", ".hidden", "a/b", ""])
def test_a_run_id_must_be_a_plain_name(tmp_path, raw_dir, recorded, bad):
    calls, _ = recorded
    with pytest.raises(ValueError, match="a run id is a plain name"):
        run_module.run(_config(tmp_path, raw_dir), run_id=bad)
    assert calls == []
    assert not (tmp_path / "w").exists()


def test_a_run_id_may_use_letters_digits_and_dashes_dots_underscores(tmp_path, raw_dir, recorded):
    doc = run_module.run(_config(tmp_path, raw_dir), run_id="2026-12-07_nightly.1")
    assert (tmp_path / "w" / "runs" / "2026-12-07_nightly.1" / "manifest.json").is_file()
    assert doc["run_id"] == "2026-12-07_nightly.1"


def test_the_wall_clock_is_read_once_per_run_and_kept_for_its_reruns(tmp_path, raw_dir, recorded):
    first = run_module.run(_config(tmp_path, raw_dir))
    interrupting.add("train")
    with pytest.raises(KeyboardInterrupt):
        run_module.run(_config(tmp_path, raw_dir), from_step="train")
    interrupting.clear()
    again = run_module.run(_config(tmp_path, raw_dir))
    assert again["wall_clock_ms"] == first["wall_clock_ms"]


def test_a_push_killed_after_publishing_is_not_published_again(tmp_path):
    candidate = tmp_path / "export" / "ranker" / "1"
    candidate.mkdir(parents=True)
    (candidate / "saved_model.pb").write_bytes(b"model-a")
    served = tmp_path / "serving" / "ranker"
    assert steps_module.already_served(candidate, served) is None
    (served / "3").mkdir(parents=True)
    (served / "3" / "saved_model.pb").write_bytes(b"model-a")
    assert steps_module.already_served(candidate, served) == served / "3"
    (served / "4").mkdir()
    (served / "4" / "saved_model.pb").write_bytes(b"model-b")
    assert steps_module.already_served(candidate, served) is None


def test_a_step_log_line_rounds_and_names_the_reasons():
    from mtlrec.run import _readable

    result = {
        "events_read": 16083,
        "rejected": {"missing_field": 68, "bad_value": 0, "bad_timestamp": 47},
        "duplicates": {"events": 0},
        "examples_per_s": 4115.58727812871,
        "best_loss": 0.123456789,
        "stopped_early": False,
        "split_ts": 1769662096956,
        "eval": {"click": {"auc": 0.7}},
    }
    assert _readable(result) == {
        "events_read": 16083,
        "rejected": "115 (bad_timestamp 47, missing_field 68)",
        "duplicates": 0,
        "examples_per_s": 4116,
        "best_loss": 0.1235,
        "stopped_early": False,
    }
