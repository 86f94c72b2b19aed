"""The last blessed model, re-scored on the current run's test split (SPEC §9, issue #22).

Its own figures were measured on its own, older test split: a candidate held against them
is held against another period. So the bless step measures the last blessed model again on
the candidate's test split. That model has its own vocabularies and normalisation, so it
cannot read the current run's transformed TFRecords: it reads the current run's raw test
rows (`eval_raw-*.parquet` of its preprocess step) through its own transform graph, embeds the current
catalogue through it too, and is measured by the same `Evaluation` as the candidate (the
same rows, retrieval queries and metric code).

When its files are gone or do not fit (other tasks, no transform graph, a column its
transform reads that the rows lack), the figures stored in `blessed.json` stand in, with a
one-line reason saying so.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
import tensorflow_transform as tft

from mtlrec.evaluation import stream as eval_stream
from mtlrec.evaluation import task_metrics
from mtlrec.evaluation.bless import LastBlessed, read_blessed
from mtlrec.evaluation.config import BlessConfig
from mtlrec.evaluation.evaluate import Evaluation
from mtlrec.evaluation.report_tables import task_names
from mtlrec.models.config import TaskConfig
from mtlrec.models.model import SPEC_FILE, load_model
from mtlrec.models.tasks import kind_of


def last_blessed(config: BlessConfig, run_dir: pathlib.Path) -> LastBlessed | None:
    """The last blessed model of `config.workdir`, re-scored on `run_dir`'s test split (or
    its stored figures, with the reason); None while no model was blessed."""
    record = read_blessed(pathlib.Path(config.workdir))
    if not record:
        return None
    run_id = str(record["run_id"])
    blessed_dir = pathlib.Path(config.workdir) / "runs" / run_id
    run_dir = pathlib.Path(run_dir)
    problem = unfit(config, blessed_dir, run_dir)
    if problem is None:
        try:
            metrics, rows = rescore(config, blessed_dir, run_dir)
        except ValueError as e:  # e.g. vocabularies that differ from its model's
            problem = f"re-scoring failed: {e}"
        else:
            reason = (
                f"last blessed run {run_id}: re-scored on this run's test split ({rows} rows) "
                "through its own model and transform graph"
            )
            return LastBlessed(run_id, metrics, "rescored", reason)
    stored = record.get("metrics", {})
    reason = (
        f"last blessed run {run_id}: {problem}; held against its figures stored in "
        "blessed.json (measured on its own test split)"
    )
    return LastBlessed(run_id, {t: stored[t] for t in task_names(stored)}, "stored", reason)


def unfit(config: BlessConfig, blessed_dir: pathlib.Path, run_dir: pathlib.Path) -> str | None:
    """Why the model of `blessed_dir` cannot be re-scored on `run_dir`'s test split; None
    when it can."""
    model_dir = blessed_dir / "train" / "model"
    transform_dir = blessed_dir / "preprocess" / eval_stream.TRANSFORM_DIR
    if not (model_dir / SPEC_FILE).is_file():
        return f"its trained model is gone ({model_dir})"
    if not transform_dir.is_dir():
        return f"its transform graph is gone ({transform_dir})"
    files = eval_stream.raw_eval_files(run_dir / "preprocess")
    if not files:
        return "this run's preprocess output holds no raw test rows (eval_raw-*.parquet)"
    spec = json.loads((model_dir / SPEC_FILE).read_text())
    theirs = sorted(
        (t.name, kind_of(t).name) for t in map(TaskConfig.model_validate, spec["tasks"])
    )
    ours = sorted((t.name, kind_of(t).name) for t in config.tasks)
    if theirs != ours:
        return f"its tasks {theirs} are not this run's {ours}"
    absent = sorted(set(transform_inputs(transform_dir)) - set(pq.read_schema(files[0]).names))
    if absent:
        return f"its transform reads columns {absent} this run's test rows do not have"
    return None


def rescore(
    config: BlessConfig, blessed_dir: pathlib.Path, run_dir: pathlib.Path
) -> tuple[dict, int]:
    """(per-task metrics, rows) of the model of `blessed_dir` on `run_dir`'s test split.

    Raises:
      ValueError: its model does not load with its own transform graph, or the transformed
        rows lack a label the tasks read.
    """
    transform_dir = blessed_dir / "preprocess" / eval_stream.TRANSFORM_DIR
    model = load_model(blessed_dir / "train" / "model", transform_dir)
    ev = Evaluation(config.tasks, config.evaluation, run_dir)
    rows = eval_stream.stream_batches(
        model,
        transformed(eval_stream.read_raw_eval(ev.preprocess_dir), transform_dir),
        ev.labels,
        with_queries=ev.retrieval is not None,
        query_label=ev.query_label,
        where=f"{ev.preprocess_dir} (raw, through {transform_dir})",
    )
    ev.adopt(rows)
    ranked = ev.ranked_by_model(model, rows, transform_dir) if ev.retrieval is not None else None
    metrics, _ = ev.metrics(config.tasks, rows.predictions, ranked)
    return task_metrics.clean(metrics), rows.size


def transformed(table: pa.Table, transform_dir: pathlib.Path) -> Iterator[dict[str, tf.Tensor]]:
    """Batches of `table`'s raw rows through the transform graph of `transform_dir`: the
    columns it was built on, nulls made neutral as the preprocess job makes them."""
    columns = transform_inputs(transform_dir)
    layer = tft.TFTransformOutput(str(transform_dir)).transform_features_layer()
    for start in range(0, table.num_rows, eval_stream.EVAL_BATCH):
        chunk = table.slice(start, eval_stream.EVAL_BATCH)
        raw = {c: tf.constant(eval_stream.filled(chunk.column(c).to_pandas(), c)) for c in columns}
        yield layer(raw)


def transform_inputs(transform_dir: pathlib.Path) -> list[str]:
    """The raw columns a transform graph was built on, from its input signature (the job
    writes no raw metadata, and the graph refuses any other input)."""
    saved = tf.saved_model.load(tft.TFTransformOutput(str(transform_dir)).transform_savedmodel_dir)
    (spec,), _ = saved.transform_fn.structured_input_signature
    return sorted(spec)
