"""The batch job: runs the steps in a run directory, skipping what is already done.

`run` is what `mtlrec run` and the single-step commands call. It holds the workdir lock
for its whole duration, records every step's status, seconds and fingerprint in the
run's manifest (copied to `<workdir>/manifest.json`), and leaves earlier steps' outputs
usable when a step fails, so the next run resumes from the failed step.

Crash safety: the manifest is rewritten atomically (`features.json_files.write_json`:
temp file, fsync, rename) when a step starts (`running`) and when it ends (`done`,
`failed`, `interrupted`), so a process killed at any point (kill -9, OOM) leaves a
manifest that never claims more than what is on disk. A step is skipped only when its
recorded fingerprint matches **and** its outputs prove it finished (`Step.completed`); a
step that starts marks every step downstream of it `stale`, so a killed `--force` redo
never leaves a later step looking done over outputs of the model it replaced. A killed
step with an unchanged fingerprint keeps its directory when it is resumable (train: it
goes on from its last checkpoint); other steps start from an empty directory.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

from mtlrec import fingerprint, log, manifest, termination
from mtlrec.config import Config, dump_yaml
from mtlrec.datasets.synthetic.generate import generate
from mtlrec.lock import workdir_lock
from mtlrec.steps import STEP_NAMES, STEPS, RunContext, Step, config_values

ONE_BEAM_JOB = ("validate", "preprocess")
"""Steps that run as one Beam job when both are due (`RunContext.validate_with_preprocess`)."""
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A run id is a plain directory name: it can never leave `<workdir>/runs/`."""
FINISHED = ("done", "skipped")


class StepFailedError(RuntimeError):
    """A step raised; the message names the step and the run directory."""


def check_run_id(run_id: str) -> str:
    """`run_id` if it is a plain name (letters, digits, `-_.`, not starting with `.`).

    Raises:
      ValueError: names the run id and the rule.
    """
    if not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise ValueError(
            f"--run-id {run_id!r}: a run id is a plain name of letters, digits and -_. "
            "(starting with a letter or digit), so the run stays inside <workdir>/runs/"
        )
    return run_id


def resolve_raw_dir(config: Config, workdir: pathlib.Path) -> pathlib.Path:
    """The raw logs: data.raw_dir, or the embedded synthetic data set generated on demand."""
    if config.data.raw_dir is not None:
        raw_dir = pathlib.Path(config.data.raw_dir)
        if not raw_dir.is_dir():
            raise FileNotFoundError(f"data.raw_dir: no such directory: {raw_dir}")
        return raw_dir
    return _ensure_generated(config, workdir / "data")


def _ensure_generated(config: Config, out_dir: pathlib.Path) -> pathlib.Path:
    params = config.data.generate.model_dump()
    truth_path = out_dir / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if truth.get("params", {}) | {"seed": truth.get("seed")} == params:
            return out_dir

    log.event("generating the synthetic data set", out=str(out_dir), **params)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    g = config.data.generate
    generate(
        out_dir, users=g.users, items=g.items, days=g.days, seed=g.seed, world=g.world(),
        progress=True,
    )  # fmt: skip
    return out_dir


def _run_id(config: Config, raw_dir: pathlib.Path) -> tuple[str, str]:
    dates = config.data.partition_window()
    input_fp = fingerprint.of_files(raw_dir, dates=dates)
    return "run-" + fingerprint.of_values(input_fp, dates)[:12], input_fp


def run(
    config: Config,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    from_step: str | None = None,
    run_id: str | None = None,
    force_push: bool = False,
    lock_wait_s: float = 0.0,
) -> dict[str, Any]:
    """Runs the job (or the steps in `only`) and returns the manifest.

    Raises:
      StepFailedError: a step failed; its status is `failed` in the manifest.
    """
    if run_id is not None:
        check_run_id(run_id)
    workdir = pathlib.Path(config.runner.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lock(workdir, wait_s=lock_wait_s):
        raw_dir = resolve_raw_dir(config, workdir)
        derived_id, input_fp = _run_id(config, raw_dir)
        run_dir = workdir / "runs" / (run_id or derived_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_yaml(config))
        doc = manifest.read(run_dir / manifest.MANIFEST)
        # The run's wall clock, read once here and kept for the run's reruns, so a resumed
        # run validates against the same time-sanity window (`data.max_ts` default).
        doc.setdefault("wall_clock_ms", int(time.time() * 1000))
        doc.update(
            run_id=run_dir.name,
            config_sha256=config.sha256(),
            input={
                "raw_dir": str(raw_dir),
                "sha256": input_fp,
                "dates": config.data.partition_window(),
            },
        )
        doc.setdefault("steps", {})
        ctx = RunContext(
            config,
            workdir,
            run_dir,
            raw_dir,
            results={},
            force_push=force_push,
            now_ms=doc["wall_clock_ms"],
            input_sha256=input_fp,
        )
        redo = _steps_to_redo(force, from_step)
        selected = set(only) if only else set(STEP_NAMES)
        ctx.validate_with_preprocess = _one_beam_job(ctx, doc, selected, redo, input_fp)

        def save() -> None:
            _summarise(doc, ctx)
            manifest.write_json(run_dir / manifest.MANIFEST, doc)
            manifest.write_json(workdir / manifest.MANIFEST, doc)

        try:
            for step in STEPS:
                if step.name in selected:
                    _run_step(step, ctx, doc, redo=step.name in redo, input_fp=input_fp, save=save)
                else:
                    _load_result(step, ctx, doc)
        finally:
            save()
        return doc


def train_worker(config: Config, *, run_id: str | None = None) -> dict[str, Any]:
    """The train step on a worker other than the chief of a multi-worker run (TF_CONFIG).

    It trains in lockstep with the chief on the run's preprocess output but takes no lock and
    writes nothing in the workdir (`mtlrec.models.distribute`): the chief's `run` records
    the step. The run directory is found as the chief finds it (`--run-id` or the input's
    fingerprint); the data is never generated here.

    Raises:
      ValueError: the run's preprocess step has not finished.
    """
    workdir = pathlib.Path(config.runner.workdir)
    raw_dir = pathlib.Path(config.data.raw_dir) if config.data.raw_dir else workdir / "data"
    name = check_run_id(run_id) if run_id is not None else _run_id(config, raw_dir)[0]
    run_dir = workdir / "runs" / name
    doc = manifest.read(run_dir / manifest.MANIFEST)
    if doc.get("steps", {}).get("preprocess", {}).get("status") not in FINISHED:
        raise ValueError(
            f"{run_dir}: the preprocess step has not finished; run it once (mtlrec preprocess) "
            "before starting the train workers"
        )
    ctx = RunContext(config, workdir, run_dir, raw_dir, results={})
    log.event("step train: started (a worker: the chief records the step)", step="train")
    train_step = next(s for s in STEPS if s.name == "train")
    result = train_step.action(ctx)
    losses = {f"{task}_loss": round(v, 6) for task, v in result["eval_losses"].items()}
    log.event("step train: done (a worker)", step="train", steps=result["steps"], **losses)
    return result


def _steps_to_redo(force: bool, from_step: str | None) -> set[str]:
    if force:
        return set(STEP_NAMES)
    if from_step is None:
        return set()
    if from_step not in STEP_NAMES:
        raise ValueError(f"--from {from_step!r}: unknown step; steps: {', '.join(STEP_NAMES)}")
    return set(STEP_NAMES[STEP_NAMES.index(from_step) :])


def _fingerprint(
    step: Step,
    ctx: RunContext,
    doc: dict[str, Any],
    input_fp: str,
    upstream_fps: dict[str, str] | None = None,
) -> str:
    """`upstream_fps` overrides the manifest's fingerprints of upstream steps about to rerun."""
    known = {u: doc["steps"].get(u, {}).get("fingerprint") for u in step.upstream}
    upstream = list((known | (upstream_fps or {})).values())
    extra = input_fp if not step.upstream else None
    return fingerprint.of_values(
        step.name, config_values(ctx.config, step.config_keys), upstream, extra
    )


def _is_done(previous: dict[str, Any], fp: str, redo: bool) -> bool:
    """Whether a step's earlier outcome stands: finished with the same fingerprint."""
    return not redo and previous.get("status") in FINISHED and previous.get("fingerprint") == fp


def _stands(step: Step, ctx: RunContext, previous: dict[str, Any], fp: str, redo: bool) -> bool:
    """`_is_done`, and the step's outputs on disk prove it finished."""
    return _is_done(previous, fp, redo) and step.completed(ctx, previous.get("result", {}))


def _downstream(name: str) -> list[str]:
    """The steps that read `name`'s outputs, directly or through other steps."""
    reached = {name}
    for s in STEPS:
        if set(s.upstream) & reached:
            reached.add(s.name)
    return [s.name for s in STEPS if s.name in reached and s.name != name]


def _one_beam_job(
    ctx: RunContext, doc: dict[str, Any], selected: set[str], redo: set[str], input_fp: str
) -> bool:
    """Validate and preprocess run as one Beam job when both are due on raw events: one job
    start-up instead of two, and no Parquet round trip between them."""
    if ctx.config.data.interactions is not None or not set(ONE_BEAM_JOB) <= selected:
        return False
    by_name = {s.name: s for s in STEPS}
    validate_fp = _fingerprint(by_name["validate"], ctx, doc, input_fp)
    preprocess_fp = _fingerprint(
        by_name["preprocess"], ctx, doc, input_fp, upstream_fps={"validate": validate_fp}
    )
    by_name = {s.name: s for s in STEPS}
    return not any(
        _stands(by_name[name], ctx, doc["steps"].get(name, {}), fp, name in redo)
        for name, fp in zip(ONE_BEAM_JOB, (validate_fp, preprocess_fp), strict=True)
    )


def _run_step(
    step: Step,
    ctx: RunContext,
    doc: dict[str, Any],
    *,
    redo: bool,
    input_fp: str,
    save: Callable[[], None],
) -> None:
    fp = _fingerprint(step, ctx, doc, input_fp)
    previous = doc["steps"].get(step.name, {})
    if _stands(step, ctx, previous, fp, redo):
        previous["status"] = "skipped"
        ctx.results[step.name] = previous.get("result", {})
        log.event(f"step {step.name}: skipped (inputs and config unchanged)", step=step.name)
        return
    if _is_done(previous, fp, redo):
        log.event(
            f"step {step.name}: recorded done but its outputs are missing; redoing it",
            step=step.name,
        )
    prepared = step.name in ctx.prepared
    resumes = step.resumable and previous.get("fingerprint") == fp and not redo
    if not prepared and not resumes:
        # A changed step must not resume from checkpoints written for other inputs, and a
        # step that cannot resume must not find half of an earlier attempt's outputs.
        shutil.rmtree(ctx.step_dir(step.name), ignore_errors=True)
    started = time.monotonic()
    entry: dict[str, Any] = {"fingerprint": fp, "started": _now(), "status": "running"}
    if ctx.validate_with_preprocess and step.name in ONE_BEAM_JOB:
        # Schedulers reading step timings: the first step's seconds cover the whole job.
        entry["beam_job"] = list(ONE_BEAM_JOB)
    doc["steps"][step.name] = entry
    for later in _downstream(step.name):
        if doc["steps"].get(later, {}).get("status") in FINISHED:
            doc["steps"][later]["status"] = "stale"
    save()
    log.event(f"step {step.name}: started", step=step.name)
    try:
        result = step.action(ctx)
    except BaseException as e:
        # After a SIGTERM, an error is the Terminated a library caught and wrapped.
        interrupted = isinstance(e, KeyboardInterrupt) or termination.received()
        status = "interrupted" if interrupted else "failed"
        entry.update(status=status, seconds=round(time.monotonic() - started, 3), error=str(e))
        if isinstance(e, KeyboardInterrupt):
            log.event(f"step {step.name}: interrupted", step=step.name)
            raise
        if interrupted:
            log.event(f"step {step.name}: interrupted", step=step.name)
            raise termination.Terminated from e
        raise StepFailedError(f"step {step.name} failed in {ctx.run_dir}: {e}") from e
    entry.update(status="done", seconds=round(time.monotonic() - started, 3), result=result)
    save()
    ctx.results[step.name] = result
    log.event(
        f"step {step.name}: done", step=step.name, seconds=entry["seconds"], **_readable(result)
    )


def _readable(result: dict[str, Any]) -> dict[str, Any]:
    """A step result's numbers and flags for its log line: floats to 4 significant digits,
    counts by reason (e.g. `rejected`) as their total with the non-zero reasons; times in ms
    and nested results left out (the manifest holds them all)."""
    fields: dict[str, Any] = {}
    for key, value in result.items():
        if key.endswith("_ts"):
            continue
        if isinstance(value, float):
            fields[key] = round(value) if abs(value) >= 1000 else float(f"{value:.4g}")
        elif isinstance(value, int):
            fields[key] = value
        elif isinstance(value, dict) and value and all(type(v) is int for v in value.values()):
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(value.items()) if v)
            total = sum(value.values())
            fields[key] = f"{total} ({reasons})" if reasons else total
    return fields


def _load_result(step: Step, ctx: RunContext, doc: dict[str, Any]) -> None:
    previous = doc["steps"].get(step.name, {})
    if previous.get("status") in FINISHED:
        ctx.results[step.name] = previous.get("result", {})


def _summarise(doc: dict[str, Any], ctx: RunContext) -> None:
    """Lifts step results to the stable top-level keys of SPEC §13."""
    counts: dict[str, Any] = {}
    for name in ("validate", "preprocess"):
        counts.update(ctx.results.get(name, {}))
    if counts:
        doc["counts"] = counts
    if "evaluate" in ctx.results:
        doc["metrics"] = ctx.results["evaluate"]
    if "bless" in ctx.results:
        doc["blessed"] = bool(ctx.results["bless"].get("blessed"))
        doc["blessing"] = ctx.results["bless"]
    if "push" in ctx.results:
        doc["models"] = ctx.results["push"].get("pushed", {})
    if "export" in ctx.results:
        doc["candidates"] = ctx.results["export"].get("candidates", {})
    doc["updated"] = _now()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
