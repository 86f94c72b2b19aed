"""The steps of a run, what each depends on, and how each is called.

A step's fingerprint hashes its name, the configuration keys it reads and its upstream
steps' fingerprints (validate also hashes the raw input files), so a rerun with unchanged
inputs and configuration skips it, and a change reruns exactly the steps it reaches.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from mtlrec.config import Config
from mtlrec.deploy.export import export_all
from mtlrec.evaluation.bless import decide, push, record_blessed
from mtlrec.evaluation.evaluate import run_evaluate
from mtlrec.manifest import STEP_NAMES
from mtlrec.models.model import load_model
from mtlrec.models.train import train
from mtlrec.pipeline.preprocess import run_preprocess, run_validate, run_validate_and_preprocess
from mtlrec.pipeline.step_counts import check_preprocessed


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

    def step_dir(self, name: str) -> pathlib.Path:
        return self.run_dir / name

    @property
    def serving_root(self) -> pathlib.Path:
        root = self.config.export.export_root
        return pathlib.Path(root) if root else self.workdir / "serving"


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    config_keys: tuple[str, ...]
    upstream: tuple[str, ...]
    action: Callable[[RunContext], dict[str, Any]]


def _validate(ctx: RunContext) -> dict[str, Any]:
    if not ctx.validate_with_preprocess:
        return run_validate(ctx.config.job_config(), ctx.raw_dir, ctx.step_dir("validate"))
    validated, ctx.prepared["preprocess"] = run_validate_and_preprocess(
        ctx.config.job_config(), ctx.raw_dir, ctx.step_dir("validate"), ctx.step_dir("preprocess")
    )
    return validated


def _preprocess(ctx: RunContext) -> dict[str, Any]:
    validate_dir = ctx.step_dir("validate")
    if "preprocess" not in ctx.prepared:
        return run_preprocess(ctx.config.job_config(), validate_dir, ctx.step_dir("preprocess"))
    counts = ctx.prepared.pop("preprocess")
    check_preprocessed(ctx.config.data, ctx.results["validate"], counts, validate_dir)
    return counts


def _train(ctx: RunContext) -> dict[str, Any]:
    c = ctx.config
    return train(
        c.tasks, c.model, c.training, c.features, ctx.step_dir("preprocess"), ctx.step_dir("train")
    )


def _evaluate(ctx: RunContext) -> dict[str, Any]:
    return run_evaluate(ctx.config.evaluate_config(), ctx.run_dir)


def _bless(ctx: RunContext) -> dict[str, Any]:
    return decide(ctx.config.evaluation, ctx.workdir, ctx.results["evaluate"])


def _export(ctx: RunContext) -> dict[str, Any]:
    preprocess_dir = ctx.step_dir("preprocess")
    tft_dir = preprocess_dir / "transform_fn"
    model = load_model(ctx.step_dir("train") / "model", tft_dir)
    c = ctx.config
    versions = export_all(
        model,
        tft_dir,
        pq.read_table(preprocess_dir / "catalog.parquet"),
        pq.read_table(preprocess_dir / "eval_sample.parquet"),
        c.export,
        c.features,
        c.tasks,
        ctx.step_dir("export"),
    )
    return {"candidates": versions}


def _push(ctx: RunContext) -> dict[str, Any]:
    blessed = bool(ctx.results["bless"]["blessed"])
    candidates = {k: pathlib.Path(v) for k, v in ctx.results["export"]["candidates"].items()}
    pushed = push(candidates, ctx.serving_root, blessed=blessed, force=ctx.force_push)
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
        ("data.start", "data.end", "data.max_bad_fraction", "data.interactions"),
        (),
        _validate,
    ),
    Step("preprocess", _PREPROCESS_KEYS, ("validate",), _preprocess),
    Step("train", ("features", "tasks", "model", "training"), ("preprocess",), _train),
    Step("evaluate", ("evaluation", "tasks"), ("train",), _evaluate),
    Step("bless", ("evaluation",), ("evaluate",), _bless),
    Step("export", ("export", "features", "tasks"), ("train",), _export),
    Step("push", ("export",), ("bless", "export"), _push),
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
