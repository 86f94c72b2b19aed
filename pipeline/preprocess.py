"""Entry points of the validate and preprocess steps (SPEC §4, §5, §6, §11, §13).

Each builds its Beam pipeline with one typed function (`mtlrec.pipeline.validate_job`,
`mtlrec.pipeline.preprocess_job`), runs it with the configured Beam options, and returns the
step's counts (also written to `<step_dir>/counts.json`).
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from mtlrec.features.declarations import feature_set
from mtlrec.pipeline import beam_io, progress, step_counts
from mtlrec.pipeline.config import JobConfig
from mtlrec.pipeline.keyed import buckets_for
from mtlrec.pipeline.preprocess_job import (
    RAW_EVAL,
    PreprocessSettings,
    build_preprocess_pipeline,
    read_validated,
)
from mtlrec.pipeline.staging import staged_args, workers_are_local
from mtlrec.pipeline.step_files import TEMP_DIR_PREFIX
from mtlrec.pipeline.table_sources import RAW_TABLES, table_sources
from mtlrec.pipeline.transform import SPLITS
from mtlrec.pipeline.validate import Window
from mtlrec.pipeline.validate_job import build_validate_pipeline

VALIDATE_OUTPUTS = (*RAW_TABLES, "dead_letter", "duplicates")
COUNTS_JSON = "counts.json"
_LOG = logging.getLogger(__name__)
# Bytes a raw row takes on disk, on the small side so rows are not underestimated: the
# generated events take 14 bytes a row in Parquet; text rows spell every value out.
BYTES_PER_ROW = {"parquet": 12, "csv": 64, "tsv": 64, "jsonl": 64}


def pipeline_options(config: JobConfig, beam_args: Sequence[str] | None = None):
    """Beam options from `config.beam_args` (or the `beam_args` override), with mtlrec staged
    for remote workers (`mtlrec.pipeline.staging`)."""
    return PipelineOptions(staged_args(config.beam_args if beam_args is None else beam_args))


def _fresh_dir(step_dir: pathlib.Path, outputs: Sequence[str]) -> None:
    """Removes this step's earlier outputs so shards of a previous run never mix in."""
    step_dir.mkdir(parents=True, exist_ok=True)
    # Shards of a run that failed before publishing its files.
    for temp_dir in step_dir.glob(f"{TEMP_DIR_PREFIX}*"):
        shutil.rmtree(temp_dir)
    for name in outputs:
        path = step_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _validate_buckets(sources: dict[str, Any]) -> int:
    """Shuffle buckets from the rows the input size suggests (dedupe; the join when the two
    steps run as one job and no row count is known yet)."""
    files = [f for source in sources.values() for f in source.files]
    matches = FileSystems.match([f.path for f in files])
    rows = sum(
        m.size_in_bytes // BYTES_PER_ROW[f.format]
        for f, r in zip(files, matches, strict=True)
        for m in r.metadata_list
    )
    return buckets_for(rows)


def _start_validate(
    config: JobConfig, raw_dir: pathlib.Path, step_dir: pathlib.Path
) -> tuple[dict[str, Any], str]:
    """The tables to validate and the primary one's name; clears earlier outputs."""
    sources = table_sources(config, raw_dir)
    primary = next(iter(sources))
    _fresh_dir(step_dir, (*VALIDATE_OUTPUTS, primary, COUNTS_JSON, beam_io.COUNTS_FILE))
    return sources, primary


def _finish_validate(
    config: JobConfig, step_dir: pathlib.Path, primary: str, sources: dict[str, Any]
) -> dict[str, Any]:
    """Writes `counts.json` from the job's totals, warns of each bad file, then stops when
    every file of the primary table is bad, or above `data.max_bad_files_fraction` of any
    table's files are, or above `data.max_bad_fraction` of its rows are rejected."""
    totals = beam_io.take_counts(step_dir)
    counts = step_counts.validate_counts(totals, primary, step_dir / "dead_letter")
    (step_dir / COUNTS_JSON).write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    files = {name: [f.path for f in source.files] for name, source in sources.items()}
    limit = config.data.max_bad_files_fraction
    for warning in step_counts.check_bad_files(totals, files, {primary}, limit):
        _LOG.warning(warning)
    step_counts.check_bad_fraction(counts, config.data.max_bad_fraction)
    return counts


def _reading_progress(label: str, sources: dict[str, Any], options: PipelineOptions):
    """The console's progress of reading the raw files (`mtlrec.pipeline.progress`)."""
    total = sum(len(source.files) for source in sources.values())
    return progress.watch(f"{label}: reading", total, enabled=workers_are_local(options))


def _window(config: JobConfig, sources: dict[str, Any]) -> Window:
    dates = [f.dt for source in sources.values() for f in source.files if f.dt is not None]
    return Window.for_run(config.data, config.now_ms, dates)


def run_validate(
    config: JobConfig,
    raw_dir: pathlib.Path,
    step_dir: pathlib.Path,
    beam_args: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Validates and dedupes the raw logs; writes typed Parquet, dead letters and counts.

    Raises:
      BadInputError: rejected / read events is above `data.max_bad_fraction` (raised after
        the outputs are written, so the dead-letter rows can be inspected).
      BadFilesError: every events (or pre-joined) file is empty or unreadable, or more than
        `data.max_bad_files_fraction` of a table's files are; a bad file among good ones is
        only counted (`bad_files`) and warned of.
      ValueError: no events files.
    """
    raw_dir, step_dir = pathlib.Path(raw_dir), pathlib.Path(step_dir)
    sources, primary = _start_validate(config, raw_dir, step_dir)
    options = pipeline_options(config, beam_args)
    with (
        _reading_progress("validate", sources, options) as progress_dir,
        beam.Pipeline(options=options) as p,
    ):
        build_validate_pipeline(
            p,
            sources,
            step_dir,
            _window(config, sources),
            _validate_buckets(sources),
            config.data.max_value_chars,
            progress_dir,
        )
    return _finish_validate(config, step_dir, primary, sources)


PREPROCESS_OUTPUTS = ("transform_fn", "catalog.parquet", "eval_sample.parquet", "tmp")


def _preprocess_settings(config: JobConfig, buckets: int, columns: Sequence[str] = ()):
    data = config.data
    return PreprocessSettings(
        feature_set=feature_set(config.features, config.labels),
        click_window_ms=data.click_window_s * 1000,
        attribution_window_ms=data.attribution_window_s * 1000,
        split_ts=data.split_ts,
        eval_fraction=data.eval_fraction,
        validation_fraction=data.validation_fraction,
        interactions_table=None if data.interactions is None else data.interactions.table,
        interactions_columns=tuple(columns),
        buckets=buckets,
        orphan_clicks_to_retrieval=data.orphan_clicks_to_retrieval,
    )


def _start_preprocess(step_dir: pathlib.Path) -> None:
    """Clears this step's earlier outputs, shards included."""
    _fresh_dir(step_dir, (*PREPROCESS_OUTPUTS, COUNTS_JSON, beam_io.COUNTS_FILE))
    for pattern in (*(f"{name}-*.tfrecord.gz" for name in SPLITS), f"{RAW_EVAL}-*.parquet"):
        for path in step_dir.glob(pattern):
            path.unlink()


def _finish_preprocess(step_dir: pathlib.Path) -> dict[str, Any]:
    """Writes `counts.json` from the job's totals."""
    shutil.rmtree(step_dir / "tmp", ignore_errors=True)
    totals = beam_io.take_counts(step_dir)
    counts = step_counts.preprocess_counts(totals)
    (step_dir / COUNTS_JSON).write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    return counts


def run_preprocess(
    config: JobConfig,
    validate_dir: pathlib.Path,
    step_dir: pathlib.Path,
    beam_args: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Joins, labels, splits and transforms the validated events into TFRecords.

    Raises:
      ValueError: the validate step has not run, accepted no impression, or the split leaves
        no training example.
    """
    validate_dir, step_dir = pathlib.Path(validate_dir), pathlib.Path(step_dir)
    counts_path = validate_dir / COUNTS_JSON
    if not counts_path.exists():
        raise ValueError(f"{counts_path} not found: run the validate step first")
    validated = json.loads(counts_path.read_text())
    step_counts.check_impressions(validated, validate_dir)
    buckets = buckets_for(sum(validated["accepted"].values()))
    settings = _preprocess_settings(config, buckets, validated.get("columns", ()))
    tables = (settings.interactions_table,) if settings.interactions_table else RAW_TABLES
    _start_preprocess(step_dir)
    with (
        tft_beam.Context(temp_dir=str(step_dir / "tmp")),
        beam.Pipeline(options=pipeline_options(config, beam_args)) as p,
    ):
        build_preprocess_pipeline(p, read_validated(p, validate_dir, tables), step_dir, settings)
    counts = _finish_preprocess(step_dir)
    step_counts.check_training_examples(counts, config.data)
    return counts


def _scoped(begin, build, *args):
    """`build(pipeline, *args)` applied inside this composite: its labels get a prefix, so two
    jobs' builders that name their steps alike fit in one pipeline."""
    return build(begin.pipeline, *args) or {}


def run_validate_and_preprocess(
    config: JobConfig,
    raw_dir: pathlib.Path,
    validate_dir: pathlib.Path,
    preprocess_dir: pathlib.Path,
    beam_args: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`run_validate` and `run_preprocess` as one Beam job: (validate counts, preprocess counts).

    What `mtlrec run` does when both steps are due: one job start-up instead of two, and the
    deduplicated rows go straight to the join instead of through Parquet. Both directories
    get the outputs the two steps write alone.

    Raises:
      BadInputError: as `run_validate` (the preprocess outputs are then not to be used).
      ValueError: pre-joined interactions (their preprocessing depends on which columns the
        validated data has: run the two steps), no events files, or an unreadable file.
    The preprocess step's own checks are left to the caller
    (`step_counts.check_preprocessed`).
    """
    _Scoped = beam.ptransform_fn(_scoped)  # noqa: N806 (a Beam transform)
    if config.data.interactions is not None:
        raise ValueError("pre-joined interactions: run run_validate, then run_preprocess")
    raw_dir, validate_dir = pathlib.Path(raw_dir), pathlib.Path(validate_dir)
    preprocess_dir = pathlib.Path(preprocess_dir)
    sources, primary = _start_validate(config, raw_dir, validate_dir)
    buckets = _validate_buckets(sources)
    _start_preprocess(preprocess_dir)
    options = pipeline_options(config, beam_args)
    with (
        _reading_progress("validate + preprocess", sources, options) as progress_dir,
        tft_beam.Context(temp_dir=str(preprocess_dir / "tmp")),
        beam.Pipeline(options=options) as p,
    ):
        validated = p | "Validate" >> _Scoped(
            build_validate_pipeline,
            sources,
            validate_dir,
            _window(config, sources),
            buckets,
            config.data.max_value_chars,
            progress_dir,
        )
        settings = _preprocess_settings(config, buckets)
        _ = p | "Preprocess" >> _Scoped(
            build_preprocess_pipeline,
            validated.tables,
            preprocess_dir,
            settings,
            validated.by_user,
        )
    counts = _finish_validate(config, validate_dir, primary, sources)
    return counts, _finish_preprocess(preprocess_dir)
