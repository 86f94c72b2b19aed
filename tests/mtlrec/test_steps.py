"""The train step's warm-start source: the latest blessed other run, a named run, or none."""

import json
import pathlib

import pytest

from mtlrec.config import load_config
from mtlrec.models.warm_start import Source
from mtlrec.steps import RunContext, warm_start_source


def _run(workdir: pathlib.Path, run_id: str, updated: str, *, blessed: bool, model: bool = True):
    run_dir = workdir / "runs" / run_id
    (run_dir / "train" / "model").mkdir(parents=True)
    if model:
        (run_dir / "train" / "model" / "model_spec.json").write_text("{}")
    manifest = {"run_id": run_id, "updated": updated, "blessed": blessed}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def _context(workdir: pathlib.Path, setting: str | None, current: str = "today") -> RunContext:
    config = load_config(overrides=[f"training.warm_start={json.dumps(setting)}"])
    return RunContext(config, workdir, workdir / "runs" / current, workdir / "raw", results={})


def test_last_blessed_is_the_latest_blessed_run_but_this_one(tmp_path):
    older = _run(tmp_path, "day1", "2026-01-01T00:00:00+00:00", blessed=True)
    _run(tmp_path, "day2", "2026-01-02T00:00:00+00:00", blessed=False)
    _run(tmp_path, "today", "2026-01-03T00:00:00+00:00", blessed=True)
    assert warm_start_source(_context(tmp_path, "last_blessed")) == Source(
        older / "train" / "model", older / "preprocess" / "transform_fn"
    )
    assert warm_start_source(_context(tmp_path, None)) is None


def test_no_blessed_run_is_a_cold_start_and_a_named_run_needs_a_model(tmp_path):
    _run(tmp_path, "day1", "2026-01-01T00:00:00+00:00", blessed=False)
    assert warm_start_source(_context(tmp_path, "last_blessed")) is None
    empty = _run(tmp_path, "day2", "2026-01-02T00:00:00+00:00", blessed=True, model=False)
    with pytest.raises(ValueError, match=r"training.warm_start: .*day2 holds no trained model"):
        warm_start_source(_context(tmp_path, str(empty)))
