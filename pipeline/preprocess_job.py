"""The preprocess Beam pipeline: join → label → split → transform → write (SPEC §5, §6).

Takes the validated tables (the validate step's Parquet, or the validate job's outputs when
both steps run as one job), joins labels and side tables with keyed CoGroupByKey stages,
splits by time, runs tf.Transform (analysers on the train split only) and writes `train-*` /
`eval-*` gzip tf.Examples, `transform_fn/`, `catalog.parquet`, `eval_sample.parquet`, the
test split's raw examples (`eval_raw-*.parquet`) and `_counts.json` into the step directory.

The raw test examples are the joined rows before tf.Transform, every column kept: the bless
step re-scores the last blessed model on them through that model's own transform graph
(`mtlrec.evaluation.rescore`), since its vocabularies are not this run's.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence

import apache_beam as beam
import pyarrow as pa

from mtlrec.features import schema
from mtlrec.features.declarations import JOINED_COLUMNS, FeatureSet, Side
from mtlrec.features.preprocessing import input_columns
from mtlrec.pipeline import beam_io, interactions, join, keyed
from mtlrec.pipeline.history import AddHistory, history_schema
from mtlrec.pipeline.join_beam import (
    BuildCatalogue,
    JoinLabels,
    JoinSideTable,
    LabelBuckets,
    catalogue_schema,
    with_side_columns,
)
from mtlrec.pipeline.split import (
    LatestShareTs,
    SampleRows,
    SplitByTime,
    split_ts,
    validation_boundary,
)
from mtlrec.pipeline.step_files import FileOutput, ParquetShards, WriteFiles
from mtlrec.pipeline.tfrecord_sink import TFRecordShards
from mtlrec.pipeline.transform import SPLITS, TransformSplits
from mtlrec.pipeline.user_buckets import UserBuckets


@dataclasses.dataclass(frozen=True)
class PreprocessSettings:
    """Everything the preprocess pipeline needs besides its input and output places."""

    feature_set: FeatureSet
    click_window_ms: int
    attribution_window_ms: int
    split_ts: str | int | None
    eval_fraction: float
    validation_fraction: float
    interactions_table: str | None = None
    """Name of the pre-joined interactions table; None = raw events."""
    interactions_columns: tuple[str, ...] = ()
    """Joined-example columns the interactions data has (from the validate counts)."""
    buckets: int = keyed.DEFAULT_BUCKETS
    eval_sample_size: int = 1000
    orphan_clicks_to_retrieval: bool = False


def catalogue_columns(feature_set: FeatureSet) -> list[str]:
    """Raw item-table columns the enabled item-side features read."""
    sources = [f.source for f in feature_set.by_side(Side.CANDIDATE)]
    return [c for c in dict.fromkeys(sources) if c != "item_id" and c in schema.ITEMS.column_names]


def read_validated(
    pipeline: beam.Pipeline, validate_dir: pathlib.Path, names: Sequence[str]
) -> dict[str, beam.PCollection]:
    """The validate step's Parquet tables as RecordBatch PCollections (empty when absent)."""
    tables = {}
    for name in names:
        if any((validate_dir / name).glob("*.parquet")):
            pattern = str(validate_dir / name / "*.parquet")
            tables[name] = pipeline | f"Read[{name}]" >> beam_io.ReadParquetBatches(pattern)
    return tables


def _table(pipeline: beam.Pipeline, tables: Mapping[str, beam.PCollection], name: str):
    if name in tables:
        return tables[name]
    return pipeline | f"No[{name}]" >> beam.Create([], reshuffle=False)


@dataclasses.dataclass(frozen=True)
class Examples:
    """Labelled examples before the split, and what the rest of the job needs beside them."""

    examples: beam.PCollection
    schema: pa.Schema
    counts: beam.PCollection
    catalogue: beam.PCollection
    catalogue_schema: pa.Schema
    events: beam.PCollection
    """Batches with the user_id and ts of every accepted event (or interaction): the test
    split's boundary is a quantile of their ts."""


RAW_EVAL = "eval_raw"
"""The raw test examples' shards: `eval_raw-*.parquet`."""


# Columns every `Examples.events` batch has (the sample of the split quantile hashes them).
EVENT_KEYS = ("user_id", "ts")


def _joined_events(
    pipeline: beam.Pipeline,
    tables: Mapping[str, beam.PCollection],
    settings: PreprocessSettings,
    by_user: UserBuckets | None,
) -> Examples:
    """Examples of raw events: the label join (with the users table), then the items table."""
    buckets = settings.buckets
    events = _table(pipeline, tables, "events")
    side = {t.name: _table(pipeline, tables, t.name) for t in (schema.ITEMS, schema.USERS)}
    windows = (settings.click_window_ms, settings.attribution_window_ms)
    orphans = settings.orphan_clicks_to_retrieval
    length = settings.feature_set.config.history_length
    if by_user is None:
        joined = events | "JoinLabels" >> JoinLabels(
            *windows,
            buckets,
            users=side["users"],
            orphan_clicks_to_retrieval=orphans,
            history_length=length,
        )
    else:
        joined = by_user.grouped | "JoinLabels" >> LabelBuckets(
            *windows, orphan_clicks_to_retrieval=orphans, history_length=length
        )
    examples_schema = with_side_columns(join.EXAMPLE_SCHEMA, schema.USERS)
    if length:
        examples_schema = history_schema(examples_schema)
    examples = joined["examples"] | "Join[items]" >> JoinSideTable(side["items"], schema.ITEMS)
    examples_schema = with_side_columns(examples_schema, schema.ITEMS)
    item_columns = catalogue_columns(settings.feature_set)
    catalogue = events | "Catalogue" >> BuildCatalogue(side["items"], item_columns, buckets)
    return Examples(
        examples,
        examples_schema,
        joined["counts"],
        catalogue,
        catalogue_schema(item_columns),
        events if by_user is None else by_user.event_keys,
    )


def _interactions(
    pipeline: beam.Pipeline, tables: Mapping[str, beam.PCollection], settings: PreprocessSettings
) -> Examples:
    """Examples of a pre-joined interactions table: every accepted row is one example."""
    rows = _table(pipeline, tables, settings.interactions_table)
    present = [c for c in JOINED_COLUMNS if c in settings.interactions_columns]
    if "dwell_s" in present and "has_dwell" not in present:
        present.append("has_dwell")
    examples_schema = interactions.examples_schema(present)
    examples = rows | "Examples" >> beam.Map(interactions.to_examples, examples_schema)
    length = settings.feature_set.config.history_length
    if length:
        examples = examples | "History" >> AddHistory(examples_schema, length, settings.buckets)
        examples_schema = history_schema(examples_schema)
    counts = examples | "ExampleCounts" >> beam.Map(interactions.example_counts)
    item_columns = [
        f.source
        for f in settings.feature_set.by_side(Side.CANDIDATE)
        if f.source != "item_id" and f.source in present
    ]
    item_columns = list(dict.fromkeys(item_columns))
    catalogue = rows | "Catalogue" >> interactions.FirstRowPerItem(item_columns, settings.buckets)
    return Examples(
        examples,
        examples_schema,
        counts,
        catalogue,
        interactions.catalogue_schema(examples_schema, item_columns),
        rows,
    )


def build_preprocess_pipeline(
    pipeline: beam.Pipeline,
    tables: Mapping[str, beam.PCollection],
    step_dir: pathlib.Path,
    settings: PreprocessSettings,
    by_user: UserBuckets | None = None,
) -> None:
    """Adds the whole preprocess job to `pipeline` (apply inside a `tft_beam.Context`).

    `tables` holds the validated rows by table name (`read_validated`, or the validate job's
    outputs when both run as one job); a missing side table is an empty one. `by_user` holds
    the validate job's events and users grouped by user bucket
    (`validate_job.Validated.by_user`): the label join then takes them as they are.
    """
    if settings.interactions_table is None:
        source = _joined_events(pipeline, tables, settings, by_user)
    else:
        source = _interactions(pipeline, tables, settings)
    examples, examples_schema = source.examples, source.schema
    boundary = (
        source.events
        | "LatestEventsTs"
        >> beam.CombineGlobally(LatestShareTs(settings.eval_fraction, key_columns=EVENT_KEYS))
        | "SplitTs" >> beam.Map(split_ts, settings.split_ts)
    )
    splits = examples | "SplitByTime" >> SplitByTime(beam.pvalue.AsSingleton(boundary))
    validation_ts = (
        splits.train
        | "ValidationTs" >> beam.CombineGlobally(LatestShareTs(settings.validation_fraction))
        | "ValidationBoundary" >> beam.Map(validation_boundary, beam.pvalue.AsSingleton(boundary))
    )
    training = splits.train | "SplitValidation" >> SplitByTime(
        beam.pvalue.AsSingleton(validation_ts)
    )
    available = set(examples_schema.names)
    if not settings.orphan_clicks_to_retrieval:
        # Every example is an impression: no ranking mask to carry or to weigh by.
        available.discard("impression")
    columns = input_columns(settings.feature_set, available)
    by_split = {"train": training.train, "validation": training.eval, "eval": splits.eval}
    boundaries = (beam.pvalue.AsSingleton(validation_ts), beam.pvalue.AsSingleton(boundary))
    transformed = by_split | "Transform" >> (
        TransformSplits(boundaries, settings.feature_set, columns, str(step_dir))
    )
    split_count = boundary | "SplitTsCount" >> beam.Map(lambda ts: {"split_ts": ts})
    validation_count = validation_ts | "ValidationTsCount" >> beam.Map(
        lambda ts: {"validation_ts": ts}
    )
    counts = (
        source.counts,
        *(transformed[f"{name}_examples"] for name in SPLITS),
        split_count,
        validation_count,
    )
    files = {
        **{name: transformed[name] for name in SPLITS},
        "eval_sample": splits.eval
        | "EvalSample"
        >> beam.CombineGlobally(SampleRows(settings.eval_sample_size, examples_schema)),
        "catalogue": source.catalogue,
        RAW_EVAL: splits.eval,
        beam_io.COUNTS_FILE: counts | "Counts" >> beam_io.TotalCounts(),
    }
    outputs = preprocess_outputs(step_dir, examples_schema, source.catalogue_schema)
    _ = files | "WriteFiles" >> WriteFiles(outputs, str(step_dir))


def preprocess_outputs(
    step_dir: pathlib.Path, examples_schema: pa.Schema, catalogue_schema: pa.Schema
) -> dict[str, FileOutput]:
    """The preprocess step's files by output name (`transform_fn/` is tf.Transform's own)."""
    return {
        **{name: FileOutput(str(step_dir / name), TFRecordShards()) for name in SPLITS},
        "eval_sample": FileOutput(
            str(step_dir / "eval_sample.parquet"), ParquetShards(examples_schema), single_file=True
        ),
        "catalogue": FileOutput(
            str(step_dir / "catalog.parquet"), ParquetShards(catalogue_schema), single_file=True
        ),
        RAW_EVAL: FileOutput(str(step_dir / RAW_EVAL), ParquetShards(examples_schema)),
        beam_io.COUNTS_FILE: beam_io.counts_output(str(step_dir)),
    }
