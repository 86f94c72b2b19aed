"""The steps of a run, what each depends on, and how each is called.

A step's fingerprint hashes its name, the configuration keys it reads and its upstream
steps' fingerprints (validate also hashes the raw input files), so a rerun with unchanged
inputs and configuration skips it, and a change reruns exactly the steps it reaches.
Each step also names the outputs that prove it finished (`Step.completed`: the file it
writes last), so a manifest entry alone never makes a step look done.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from mtlrec import fingerprint
from mtlrec.config import Config
from mtlrec.deploy.export import export_all
from mtlrec.deploy.lineage import Lineage
from mtlrec.deploy.versioning import list_versions
from mtlrec.evaluation.bless import push, record_blessed
from mtlrec.evaluation.bless_step import run_bless
from mtlrec.evaluation.evaluate import run_evaluate
from mtlrec.manifest import STEP_NAMES
from mtlrec.models.model import load_model
from mtlrec.models.train import train
from mtlrec.models.warm_start import Source
from mtlrec.pipeline.preprocess import run_preprocess, run_validate, run_validate_and_preprocess
from mtlrec.pipeline.step_counts import check_preprocessed
from mtlrec.runs import run_manifests
from mtlrec.split_check import check_splits

LAST_BLESSED = "last_blessed"


@dataclasses.dataclass
class RunContext:
    """What every step may read: the configuration, the places, and earlier results."""

    config: Config
    workdir: pathlib.Path
    run_dir: pathlib.Path
    raw_dir: pathlib.Path
    results: dict[str, dict[str, Any]]
    force_push: bool = False
    validate_with_preprocess: bool = False
    """Run validate and preprocess as one Beam job (both are due, and the data is events)."""
    prepared: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Results of steps an earlier step's job already computed, by step name."""
    now_ms: int | None = None
    """The run's wall clock (ms), read once by the driver (time sanity in validate)."""
    input_sha256: str | None = None
    """Fingerprint of the raw input files the run reads (its lineage)."""

    def step_dir(self, name: str) -> pathlib.Path:
        return self.run_dir / name

    @property
    def serving_root(self) -> pathlib.Path:
        root = self.config.export.export_root
        return pathlib.Path(root) if root else self.workdir / "serving"


def _always(ctx: RunContext, result: dict[str, Any]) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    config_keys: tuple[str, ...]
    upstream: tuple[str, ...]
    action: Callable[[RunContext], dict[str, Any]]
    completed: Callable[[RunContext, dict[str, Any]], bool] = _always
    """Whether the outputs of a finished attempt (its recorded `result`) are on disk."""
    resumable: bool = False
    """A killed attempt's directory is kept for the next one (train: its checkpoints)."""


def _files_exist(*relative: str) -> Callable[[RunContext, dict[str, Any]], bool]:
    def completed(ctx: RunContext, result: dict[str, Any]) -> bool:
        return all((ctx.run_dir / r).is_file() for r in relative)

    return completed


def _dirs_exist(key: str) -> Callable[[RunContext, dict[str, Any]], bool]:
    """Every directory the result lists under `key` (model name -> path) exists, non-empty."""

    def completed(ctx: RunContext, result: dict[str, Any]) -> bool:
        dirs = [pathlib.Path(p) for p in result.get(key, {}).values()]
        return all(d.is_dir() and any(d.iterdir()) for d in dirs)

    return completed


def _validate(ctx: RunContext) -> dict[str, Any]:
    if not ctx.validate_with_preprocess:
        return run_validate(
            ctx.config.job_config(ctx.now_ms), ctx.raw_dir, ctx.step_dir("validate")
        )
    validated, ctx.prepared["preprocess"] = run_validate_and_preprocess(
        ctx.config.job_config(ctx.now_ms),
        ctx.raw_dir,
        ctx.step_dir("validate"),
        ctx.step_dir("preprocess"),
    )
    return validated


def _preprocess(ctx: RunContext) -> dict[str, Any]:
    validate_dir = ctx.step_dir("validate")
    if "preprocess" not in ctx.prepared:
        return run_preprocess(
            ctx.config.job_config(ctx.now_ms), validate_dir, ctx.step_dir("preprocess")
        )
    counts = ctx.prepared.pop("preprocess")
    check_preprocessed(ctx.config.data, ctx.results["validate"], counts, validate_dir)
    return counts


def _train(ctx: RunContext) -> dict[str, Any]:
    c = ctx.config
    check_splits(c.tasks, c.evaluation.min_examples, ctx.results.get("preprocess", {}))
    source = warm_start_source(ctx)
    summary = train(
        c.tasks,
        c.model,
        c.training,
        c.features,
        ctx.step_dir("preprocess"),
        ctx.step_dir("train"),
        warm_start_from=source,
    )
    if c.training.warm_start is not None and source is None:
        summary["warm_start"] = {"source": None, "note": "no blessed run yet: a cold start"}
    return summary


def last_blessed_run(workdir: pathlib.Path, current: str, end: str | None) -> str | None:
    """The blessed run (other than `current`) a run warm-starts from: with a dated window
    ending on `end`, the one whose window ends latest before it (a backfill's previous day,
    whatever ran last); otherwise the latest updated."""
    blessed = [m for m in run_manifests(workdir) if m.get("blessed") and m.get("run_id") != current]
    if end is not None:

        def window_end(manifest: dict[str, Any]) -> str:
            return ((manifest.get("input") or {}).get("dates") or ["", ""])[1]

        earlier = [m for m in blessed if "" < window_end(m) < end]
        return max(earlier, key=window_end)["run_id"] if earlier else None
    return blessed[-1]["run_id"] if blessed else None


def warm_start_source(ctx: RunContext) -> Source | None:
    """The model `training.warm_start` names: the latest blessed other run's, or a run
    directory's; None for a cold start (or no blessed run yet).

    Raises:
      ValueError: a named run directory without a trained model.
    """
    setting = ctx.config.training.warm_start
    if setting is None:
        return None
    if setting == LAST_BLESSED:
        run_id = last_blessed_run(ctx.workdir, ctx.run_dir.name, ctx.config.data.end)
        if run_id is None:
            return None
        run_dir = ctx.workdir / "runs" / run_id
    else:
        run_dir = pathlib.Path(setting)
    model_dir = run_dir / "train" / "model"
    if not (model_dir / "model_spec.json").exists():
        raise ValueError(f"training.warm_start: {run_dir} holds no trained model ({model_dir})")
    return Source(model_dir, run_dir / "preprocess" / "transform_fn")


def _evaluate(ctx: RunContext) -> dict[str, Any]:
    return run_evaluate(ctx.config.evaluate_config(), ctx.run_dir)


def _bless(ctx: RunContext) -> dict[str, Any]:
    return run_bless(ctx.config.bless_config(), ctx.run_dir, ctx.results["evaluate"])


def _export(ctx: RunContext) -> dict[str, Any]:
    preprocess_dir = ctx.step_dir("preprocess")
    tft_dir = preprocess_dir / "transform_fn"
    model = load_model(ctx.step_dir("train") / "model", tft_dir)
    c = ctx.config
    lineage = Lineage.of_run(
        ctx.run_dir,
        ctx.results.get("train", {}).get("warm_start"),
        c.data.partition_window(),
        ctx.results.get("preprocess", {}).get("split_ts"),
        c.sha256(),
        ctx.input_sha256,
    )
    versions = export_all(
        model,
        tft_dir,
        pq.read_table(preprocess_dir / "catalog.parquet"),
        pq.read_table(preprocess_dir / "eval_sample.parquet"),
        c.export,
        c.features,
        c.tasks,
        ctx.step_dir("export"),
        lineage,
    )
    return {"candidates": versions, "lineage": lineage.as_dict()}


def already_served(candidate: pathlib.Path, model_dir: pathlib.Path) -> pathlib.Path | None:
    """The served version of `model_dir` with `candidate`'s exact files, if it is the latest.

    A push killed after publishing (before the manifest said done) is not repeated: the rerun
    finds its version and records it instead of publishing the same model again.
    """
    versions = list_versions(model_dir)
    if not versions:
        return None
    latest = model_dir / str(versions[-1])
    return latest if fingerprint.of_files(latest) == fingerprint.of_files(candidate) else None


def _push(ctx: RunContext) -> dict[str, Any]:
    blessed = bool(ctx.results["bless"]["blessed"])
    candidates = {k: pathlib.Path(v) for k, v in ctx.results["export"]["candidates"].items()}
    served = {}
    if blessed or ctx.force_push:
        for name, src in candidates.items():
            found = already_served(src, ctx.serving_root / name)
            if found is not None:
                served[name] = str(found)
    due = {name: src for name, src in candidates.items() if name not in served}
    pushed = served | push(due, ctx.serving_root, blessed=blessed, force=ctx.force_push)
    if blessed:
        record_blessed(ctx.workdir, ctx.results["evaluate"], ctx.run_dir.name)
    return {"pushed": pushed, "blessed": blessed, "forced": ctx.force_push and not blessed}


_PREPROCESS_KEYS = (
    "data.split_ts",
    "data.eval_fraction",
    "data.validation_fraction",
    "data.click_window_s",
    "data.attribution_window_s",
    "data.orphan_clicks_to_retrieval",
    "data.interactions",
    "features",
    "tasks",
)

STEPS: tuple[Step, ...] = (
    Step(
        "validate",
        (
            "data.start",
            "data.end",
            "data.min_ts",
            "data.max_ts",
            "data.future_tolerance_s",
            "data.partition_tolerance_s",
            "data.max_bad_fraction",
            "data.max_bad_files_fraction",
            "data.max_value_chars",
            "data.interactions",
        ),
        (),
        _validate,
        completed=_files_exist("validate/counts.json"),
    ),
    Step(
        "preprocess",
        _PREPROCESS_KEYS,
        ("validate",),
        _preprocess,
        completed=_files_exist("preprocess/counts.json"),
    ),
    Step(
        "train",
        ("features", "tasks", "model", "training"),
        ("preprocess",),
        _train,
        completed=_files_exist("train/model/model_spec.json", "train/summary.json"),
        resumable=True,
    ),
    Step(
        "evaluate",
        ("evaluation", "tasks"),
        ("train",),
        _evaluate,
        completed=_files_exist("evaluate/metrics.json"),
    ),
    Step("bless", ("evaluation", "tasks"), ("evaluate",), _bless),
    Step(
        "export",
        ("export", "features", "tasks"),
        ("train",),
        _export,
        completed=_dirs_exist("candidates"),
    ),
    Step("push", ("export",), ("bless", "export"), _push, completed=_dirs_exist("pushed")),
)


def step(name: str) -> Step:
    for s in STEPS:
        if s.name == name:
            return s
    raise ValueError(f"unknown step {name!r}; steps: {', '.join(STEP_NAMES)}")


def config_values(config: Config, keys: tuple[str, ...]) -> dict[str, Any]:
    """The configuration values a step reads, by dotted key."""
    document = config.model_dump(mode="json")
    values: dict[str, Any] = {}
    for key in keys:
        node: Any = document
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return values
