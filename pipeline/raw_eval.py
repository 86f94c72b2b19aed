"""The test split's joined examples as they were before tf.Transform: `eval_raw-*.parquet`.

The bless step re-scores the last blessed model on this run's test split. That model has
its own vocabularies and statistics, so it cannot read this run's transformed TFRecords: it
reads these rows and transforms them with its own transform graph
(`mtlrec.evaluation.rescore`). The rows are every column of the joined examples (features,
labels, keys, `ts`), so a model trained on other enabled features still finds its inputs.
They are written by the preprocess job's one `WriteFiles`, beside the TFRecords.
"""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

from mtlrec.pipeline.step_files import FileOutput, ParquetShards

OUTPUT = "eval_raw"
PATTERN = f"{OUTPUT}-*.parquet"


def raw_eval_output(step_dir: pathlib.Path, examples_schema: pa.Schema) -> FileOutput:
    """Sharded Parquet of the test split's examples (one row group per batch)."""
    return FileOutput(str(pathlib.Path(step_dir) / OUTPUT), ParquetShards(examples_schema))


def raw_eval_files(preprocess_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(pathlib.Path(preprocess_dir).glob(PATTERN))


def read_raw_eval(preprocess_dir: pathlib.Path) -> pa.Table:
    """Every raw test row of a run, shards in name order.

    Raises:
      ValueError: the run's preprocess output has no raw test rows (written before they
        were, or the step has not run).
    """
    files = raw_eval_files(preprocess_dir)
    if not files:
        raise ValueError(
            f"{pathlib.Path(preprocess_dir) / PATTERN}: no raw test rows; "
            "re-run the preprocess step (mtlrec run --from preprocess)"
        )
    return pa.concat_tables(pq.read_table(f) for f in files)
