"""tf.data input: transformed TFRecords -> batches of feature dicts, and the item catalogue."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from mtlrec.features.declarations import PASSTHROUGH, FeatureSet, Side

_AUTOTUNE = tf.data.AUTOTUNE
_RECORD_BLOCK = 256


def vocab_sizes_from_tft(tft_output_dir: str | pathlib.Path, fs: FeatureSet) -> dict[str, int]:
    """Vocabulary size of every enabled vocabulary feature, read from the tf.Transform output."""
    output = tft.TFTransformOutput(str(tft_output_dir))
    return {
        f.vocab_name: int(output.vocabulary_size_by_name(f.vocab_name))
        for f in fs.features
        if f.vocab_name is not None
    }


def _files(file_pattern: str | pathlib.Path) -> list[str]:
    files = sorted(tf.io.gfile.glob(str(file_pattern)))
    if not files:
        raise ValueError(f"no TFRecord file matches {file_pattern}: run the preprocess step first")
    return files


def _parser(feature_spec: dict):
    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, feature_spec)
        out = {}
        for name, value in parsed.items():
            if isinstance(value, tf.SparseTensor):
                # Multivalent features: the towers average ragged lists.
                out[name] = tf.RaggedTensor.from_sparse(value)
            elif isinstance(value, tf.RaggedTensor) or value.shape.rank != 2:
                out[name] = value
            else:
                out[name] = tf.reshape(value, [-1])  # FixedLenFeature([1]) -> [B]
        return out

    return parse


def make_dataset(
    file_pattern: str | pathlib.Path,
    tft_output_dir: str | pathlib.Path,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    repeat: bool = False,
    shuffle_buffer: int = 10_000,
    passthrough: bool = True,
) -> tf.data.Dataset:
    """Batches of transformed features (dicts of [B] tensors, ragged for multivalent ones).

    `passthrough=False` leaves out the raw keys kept for evaluation (PASSTHROUGH), which
    training never reads: parsing them costs input time on every step.

    Files are read in parallel (deterministic interleave), examples shuffled with `seed`
    (so a seeded run sees the same batches), parsed in parallel per batch, prefetched.
    """
    files = _files(file_pattern)
    spec = tft.TFTransformOutput(str(tft_output_dir)).transformed_feature_spec()
    if not passthrough:
        spec = {k: v for k, v in spec.items() if k not in PASSTHROUGH}
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    # Files hand over blocks of records, not single records: a parallel interleave that
    # passes one record at a time between threads reads ~8x slower than a sequential read.
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP").batch(_RECORD_BLOCK),
        cycle_length=min(4, len(files)),
        num_parallel_calls=_AUTOTUNE,
        deterministic=True,
    ).unbatch()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size).map(_parser(spec), num_parallel_calls=_AUTOTUNE, deterministic=True)
    return with_input_options(ds)


def with_input_options(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Batches sharded by element under multi-worker training, prefetched.

    Splits may have fewer files than workers (and held splits have none): tf.data's default
    sharding needs at least one file per worker.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(_AUTOTUNE)


def count_examples(file_pattern: str | pathlib.Path) -> int:
    """Number of records in the matching gzip TFRecord files."""
    ds = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def item_catalogue(batches: Iterable[dict[str, tf.Tensor]], fs: FeatureSet) -> dict[str, tf.Tensor]:
    """One row per distinct `item_id` index with its candidate-side features.

    Item features are properties of the item, so the first row seen of each item stands for
    it; this is the candidate set FactorizedTopK ranks against (the whole catalogue).
    """
    names = [f.name for f in fs.by_side(Side.CANDIDATE)]
    seen: set[int] = set()
    parts: list[dict[str, tf.Tensor]] = []
    for batch in batches:
        ids = batch["item_id"].numpy()
        _, first = np.unique(ids, return_index=True)
        keep = [int(i) for i in sorted(first) if int(ids[i]) not in seen]
        if not keep:
            continue
        seen.update(int(ids[i]) for i in keep)
        parts.append({n: tf.gather(batch[n], keep) for n in names})
    if not parts:
        raise ValueError("item catalogue: the dataset has no rows")
    return {n: tf.concat([p[n] for p in parts], axis=0) for n in names}
