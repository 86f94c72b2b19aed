"""The tf.Transform `preprocessing_fn` (SPEC §6), driven by `mtlrec.features.declarations`.

Beam jobs pass `functools.partial(preprocessing_fn, feature_set=...)`. Every output depends
only on the inputs of its own side (item-side outputs read item-side columns only), so the
transform graph can embed a catalogue from item columns alone, or a query from user columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform import tf_utils

from mtlrec.features.declarations import (
    ITEM_LOG_Q,
    JOINED_COLUMNS,
    MULTIVALENT_SEPARATOR,
    PASSTHROUGH,
    RANKING_MASK,
    Dtype,
    Feature,
    FeatureSet,
    Kind,
    Label,
)

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
# 1970-01-01 was a Thursday: weekday index 3 when Monday is 0.
EPOCH_WEEKDAY = 3
# TIME features by bucket count: (bucket width in ms, bucket of the epoch).
_TIME_CYCLES: dict[int, tuple[int, int]] = {24: (MS_PER_HOUR, 0), 7: (MS_PER_DAY, EPOCH_WEEKDAY)}
# Separator of TFT's "count token" frequency files; masked inside ids so any id can be a key.
_FREQUENCY_FILE_DELIMITER = " "
_DELIMITER_MASK = "\x1f"

_NEUTRAL_DEFAULTS: dict[Dtype, object] = {Dtype.STRING: "", Dtype.INT: 0, Dtype.FLOAT: math.nan}


def input_columns(feature_set: FeatureSet, available: frozenset[str] | set[str]) -> tuple[str, ...]:
    """Joined-example columns the transform reads, in `JOINED_COLUMNS` order.

    Label and passthrough columns absent from `available` (e.g. MovieLens has no click) are
    left out; a missing feature source is an error.

    Raises:
      ValueError: an enabled feature reads a column the data does not have.
    """
    missing = [f.name for f in feature_set.features if f.source not in available]
    if missing:
        raise ValueError(
            f"features.enabled: {missing} need columns the data lacks; available columns: "
            f"{sorted(available)}; remove them from features.enabled"
        )
    wanted = set(feature_set.raw_sources)
    wanted.update(label.source for label in feature_set.labels)
    if any(label.mask for label in feature_set.labels):
        wanted.add("has_dwell")
    wanted.update(PASSTHROUGH.values())
    wanted.add("impression")
    return tuple(c for c in JOINED_COLUMNS if c in wanted and c in available)


def neutral_default(column: str) -> object:
    """Value that stands for "unknown" in a dense raw column (NaN for numbers, "" for strings)."""
    return _NEUTRAL_DEFAULTS[JOINED_COLUMNS[column]]


def raw_feature_spec(columns: tuple[str, ...]) -> dict:
    """Dense tf.io feature spec of the raw joined columns (the transform's input signature).

    Every value must be present: the join writes `neutral_default` where the data has none.
    """
    dtypes = {Dtype.STRING: tf.string, Dtype.INT: tf.int64, Dtype.FLOAT: tf.float32}
    return {c: tf.io.FixedLenFeature([], dtypes[JOINED_COLUMNS[c]]) for c in columns}


def fill_missing_inputs(raw: Mapping, columns: tuple[str, ...]) -> dict:
    """Adds neutral-default tensors for `columns` absent from `raw` (same batch size).

    For callers that transform one side only (catalogue items, queries) with a transform
    layer that insists on every input: the outputs of the other side are then meaningless,
    the outputs of the given side are exact.
    """
    spec = raw_feature_spec(columns)
    batch = tf.shape(next(iter(raw.values())))[0]
    filled = dict(raw)
    for name, feature in spec.items():
        if name not in filled:
            filled[name] = tf.fill([batch], tf.constant(neutral_default(name), feature.dtype))
    return filled


def preprocessing_fn(inputs: Mapping, *, feature_set: FeatureSet) -> dict:
    """Transforms raw joined columns into model features, labels and passthrough keys."""
    outputs: dict = {}
    # Deferred vocabulary files by name: a feature with `vocabulary` applies another's.
    vocabularies: dict[str, tf.Tensor] = {}
    for feature in feature_set.features:
        outputs[feature.name] = _transform_feature(
            inputs[feature.source], feature, feature_set, vocabularies
        )
    for label in feature_set.labels:
        if label.source in inputs:
            outputs.update(_transform_label(inputs, label))
    for key, source in PASSTHROUGH.items():
        if source in inputs:
            outputs[key] = inputs[source]
    if "impression" in inputs:
        outputs[RANKING_MASK] = _ranking_mask(inputs["impression"])
    outputs[ITEM_LOG_Q] = _item_log_q(inputs["item_id"])
    return outputs


def _ranking_mask(impression):
    return tf.cast(impression, tf.float32)


def _transform_feature(x, feature: Feature, feature_set: FeatureSet, vocabularies: dict):
    cfg = feature_set.config
    if feature.kind in (Kind.ID, Kind.CATEGORICAL):
        is_id = feature.kind is Kind.ID
        if feature.multivalent:
            x = tf.strings.split(x, MULTIVALENT_SEPARATOR)
        if feature.vocabulary is not None:
            # An empty history splits into one "" token: padding, not an OOV item.
            x = tf.ragged.boolean_mask(x, tf.not_equal(x, ""))
            if feature.vocabulary not in vocabularies:
                raise ValueError(
                    f"feature {feature.name!r} applies the {feature.vocabulary!r} vocabulary: "
                    f"enable {feature.vocabulary!r} in features.enabled"
                )
            vocabulary = vocabularies[feature.vocabulary]
        else:
            threshold = cfg.id_frequency_threshold if is_id else cfg.categorical_frequency_threshold
            vocabulary = vocabularies[feature.name] = tft.vocabulary(
                x,
                top_k=cfg.id_top_k if is_id else None,
                # A threshold of 1 keeps every token; TFT wants None for that.
                frequency_threshold=threshold if threshold > 1 else None,
                vocab_filename=feature.vocab_name,
            )
        return tft.apply_vocabulary(x, vocabulary, num_oov_buckets=feature_set.oov_buckets(feature))
    if feature.kind is Kind.NUMERIC:
        return _z_score_ignoring_missing(x, log1p=feature.log1p)
    if feature.kind is Kind.TIME:
        if feature.num_buckets not in _TIME_CYCLES:
            raise ValueError(
                f"feature {feature.name!r}: TIME features have 24 (hour of day) or 7 (weekday) "
                f"buckets, got {feature.num_buckets}; fix its declaration"
            )
        width_ms, epoch_bucket = _TIME_CYCLES[feature.num_buckets]
        return tf.math.floormod(tf.math.floordiv(x, width_ms) + epoch_bucket, feature.num_buckets)
    return tf.clip_by_value(x, 0, cfg.max_position - 1)


def _z_score_ignoring_missing(x, *, log1p: bool):
    """z-score over the present (non-NaN) values; missing values become 0, the mean."""
    x = tf.cast(x, tf.float32)
    present = tf.math.is_finite(x)
    values = tf.boolean_mask(x, present)
    if log1p:
        values = tf.math.log1p(values)
    sparse = tf.SparseTensor(
        indices=tf.where(present),
        values=values,
        dense_shape=tf.cast(tf.shape(x, out_type=tf.int64)[:1], tf.int64),
    )
    scaled = tft.scale_to_z_score(sparse, elementwise=False)
    return tf.sparse.to_dense(scaled, default_value=0.0)


def _transform_label(inputs: Mapping, label: Label) -> dict:
    value = tf.cast(inputs[label.source], tf.float32)
    if label.mask is None:
        return {label.name: tf.math.log1p(value) if label.log1p else value}
    mask = tf.cast(inputs["has_dwell"], tf.float32)
    defined = tf.where(mask > 0, value, tf.zeros_like(value))
    return {
        label.name: tf.math.log1p(defined) if label.log1p else defined,
        label.mask: mask,
    }


def _item_log_q(item_id):
    """log(training impressions of the item / all training impressions).

    Counts come from a frequency vocabulary over the training span; an item never seen there
    gets the smallest observed count (a rare item, not an impossible one).
    """
    key = tf.strings.regex_replace(item_id, _FREQUENCY_FILE_DELIMITER, _DELIMITER_MASK)
    path = tft.vocabulary(key, store_frequency=True, vocab_filename=ITEM_LOG_Q)
    total = tf.cast(tft.size(item_id), tf.float32)
    size = tft.experimental.get_vocabulary_size_by_name(ITEM_LOG_Q)

    def by_item(asset):
        return tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                asset,
                key_dtype=tf.string,
                key_index=1,
                value_dtype=tf.int64,
                value_index=0,
                delimiter=_FREQUENCY_FILE_DELIMITER,
            ),
            default_value=-1,
        )

    def by_line(asset):
        return tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                asset,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="1",
        )

    counts, _ = tf_utils.construct_and_lookup_table(by_item, path, key)
    # The vocabulary is sorted by descending count, so its last line holds the smallest one.
    last_line, _ = tf_utils.construct_and_lookup_table(
        by_line, path, tf.reshape(tf.cast(size, tf.int64) - 1, [1])
    )
    smallest = tf.strings.to_number(
        tf.strings.split(last_line, _FREQUENCY_FILE_DELIMITER, maxsplit=1).to_tensor()[0, 0],
        tf.int64,
    )
    counts = tf.where(counts < 0, smallest, counts)
    return tf.math.log(tf.cast(counts, tf.float32) / tf.maximum(total, 1.0))
