"""Serving modules: the tf.Modules whose tf.functions become the exported signatures (SPEC §8).

Every signature takes raw columns (names and dtypes of `mtlrec.features.declarations.JOINED_COLUMNS`)
and runs the tf.Transform graph inside, so clients send what they log and never see
vocabulary indices. Position is a training-only bias: the serving graph feeds
`features.serving_position` instead of taking it as an input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.features.declarations import FeatureSet, Side
from mtlrec.features.preprocessing import raw_feature_spec
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import kind_of

SERVING_DEFAULT = "serving_default"
PREDICT_EXAMPLES = "predict_examples"
EXAMPLES = "examples"
SCORE = "score"
ITEM_IDS = "item_ids"
SCORES = "scores"
RETRIEVAL_SCORE = "retrieval_score"
POSITION = "position"
_QUERY = (Side.QUERY,)
_PAIR = (Side.QUERY, Side.CANDIDATE)


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """What `tf.saved_model.save` needs: the root module and its named signatures."""

    module: tf.Module
    signatures: dict[str, tf.types.experimental.ConcreteFunction]


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Every catalogue item: raw id, transformed item-side features, item-tower embedding."""

    item_ids: np.ndarray
    features: dict[str, tf.Tensor | tf.RaggedTensor]
    embeddings: tf.Tensor

    @property
    def size(self) -> int:
        return int(self.item_ids.shape[0])


def raw_columns(feature_set: FeatureSet, sides: Sequence[Side]) -> tuple[str, ...]:
    """Raw columns the enabled features of `sides` read: the inputs of a signature."""
    return tuple(dict.fromkeys(f.source for f in feature_set.features if f.side in sides))


def query_columns(feature_set: FeatureSet) -> tuple[str, ...]:
    return raw_columns(feature_set, _QUERY)


def pair_columns(feature_set: FeatureSet) -> tuple[str, ...]:
    return raw_columns(feature_set, _PAIR)


def task_output_names(tasks: Sequence[TaskConfig]) -> dict[str, str]:
    """Task name → output name as its kind serves it: `p_<task>` for binary, the label-space
    name for regression; retrieval is served by the retrieval signature, not here."""
    names = {task.name: kind_of(task).output_name(task) for task in tasks}
    return {name: output for name, output in names.items() if output is not None}


class Transform:
    """Raw columns → the model's transformed features, through the tf.Transform layer."""

    def __init__(self, tft_layer: tf.keras.Model, feature_set: FeatureSet) -> None:
        self.layer = tft_layer
        self.feature_set = feature_set

    def __call__(
        self, raw: Mapping[str, tf.Tensor], sides: Sequence[Side]
    ) -> dict[str, tf.Tensor | tf.RaggedTensor]:
        raw = dict(raw)
        wanted = [f.name for f in self.feature_set.features if f.side in sides]
        if Side.QUERY in sides and POSITION in self.feature_set.names:
            batch = tf.shape(next(iter(raw.values())))[0]
            position = self.feature_set.config.serving_position
            raw[POSITION] = tf.fill([batch], tf.constant(position, tf.int64))
            wanted.append(POSITION)
        transformed = self.layer(raw)
        missing = [name for name in wanted if name not in transformed]
        if missing:
            raise ValueError(
                f"the tf.Transform graph computes no {missing} from raw columns {sorted(raw)}; "
                "each transformed feature must depend on its own side's columns only "
                "(features/preprocessing.py)"
            )
        return {name: transformed[name] for name in wanted}


class Heads:
    """Multi-task predictions → named serving outputs in label space, plus the blended score."""

    def __init__(
        self, model: tf.keras.Model, tasks: Sequence[TaskConfig], score_weights: Mapping[str, float]
    ) -> None:
        unknown = sorted(set(score_weights) - {t.name for t in tasks})
        if unknown:
            raise ValueError(
                f"export.score_weights: unknown task(s) {unknown}; tasks: {[t.name for t in tasks]}"
            )
        self.model = model
        self.tasks = tuple(tasks)
        self.names = task_output_names(tasks)
        self.weights = dict(score_weights)

    def __call__(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        predictions = self.model.predict_tasks(dict(features))
        served = {}
        for task in self.tasks:
            if task.name not in predictions:
                raise ValueError(f"model.predict_tasks returned no output for task {task.name!r}")
            value = tf.cast(predictions[task.name], tf.float32)
            served[task.name] = kind_of(task).served(task, value)
        outputs = {self.names[name]: value for name, value in served.items() if name in self.names}
        score = tf.zeros_like(next(iter(served.values())))
        for name, weight in self.weights.items():
            score += weight * served[name]
        outputs[SCORE] = score
        return outputs


def raw_input_signature(columns: Sequence[str]) -> dict[str, tf.TensorSpec]:
    """One [batch] tensor per raw column, named as the column."""
    return {c: tf.TensorSpec([None], f.dtype, name=c) for c, f in raw_feature_spec(columns).items()}


def build_catalog(
    model: tf.keras.Model, transform: Transform, items: Mapping[str, np.ndarray], batch: int = 4096
) -> Catalog:
    """Transforms and embeds every catalogue item (raw item-side columns, one row per item)."""
    columns = raw_columns(transform.feature_set, (Side.CANDIDATE,))
    item_ids = np.asarray(items["item_id"])
    parts: list[dict] = []
    for start in range(0, len(item_ids), batch):
        raw = {c: tf.constant(items[c][start : start + batch]) for c in columns}
        parts.append(transform(raw, (Side.CANDIDATE,)))
    features = {name: tf.concat([p[name] for p in parts], axis=0) for name in parts[0]}
    embeddings = tf.concat(
        [model.candidate_embedding(p) for p in parts], axis=0, name="catalog_embeddings"
    )
    return Catalog(item_ids=item_ids, features=features, embeddings=embeddings)


def ranker(model: tf.keras.Model, transform: Transform, heads: Heads) -> ServingModel:
    """Raw (user, item, context) rows → every task's output and the score, per row."""
    columns = pair_columns(transform.feature_set)
    spec = raw_feature_spec(columns)

    def predict(raw):
        return heads(transform(raw, _PAIR))

    serve = tf.function(predict, input_signature=[raw_input_signature(columns)])
    examples = tf.function(
        lambda examples: predict(tf.io.parse_example(examples, spec)),
        input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)],
    )
    module = _module(model, transform.layer)
    module.serve, module.predict_examples = serve, examples
    return ServingModel(
        module,
        {
            SERVING_DEFAULT: serve.get_concrete_function(),
            PREDICT_EXAMPLES: examples.get_concrete_function(),
        },
    )


def retriever(
    model: tf.keras.Model, transform: Transform, catalog: Catalog, k: int
) -> ServingModel:
    """Raw query columns → ids and scores of the top `k` catalogue items (brute force)."""
    module = _module(model, transform.layer)
    module.index = _index(catalog, min(k, catalog.size))
    module.item_ids = tf.Variable(catalog.item_ids.astype(object), trainable=False, name="item_ids")

    @tf.function(input_signature=[raw_input_signature(query_columns(transform.feature_set))])
    def serve(raw):
        scores, rows = module.index(model.query_embedding(transform(raw, _QUERY)))
        return {ITEM_IDS: tf.gather(module.item_ids, rows), SCORES: scores}

    module.serve = serve
    return ServingModel(module, {SERVING_DEFAULT: serve.get_concrete_function()})


def recommender(
    model: tf.keras.Model,
    transform: Transform,
    heads: Heads,
    catalog: Catalog,
    retrieve_n: int,
    top_k: int,
) -> ServingModel:
    """Raw query columns → retrieve `retrieve_n`, rank them, return the best `top_k` by score."""
    n = min(retrieve_n, catalog.size)
    k = min(top_k, n)
    module = _module(model, transform.layer)
    module.index = _index(catalog, n)
    module.item_ids = tf.Variable(catalog.item_ids.astype(object), trainable=False, name="item_ids")
    module.item_features = _StoredFeatures(catalog.features)

    @tf.function(input_signature=[raw_input_signature(query_columns(transform.feature_set))])
    def serve(raw):
        query = transform(raw, _QUERY)
        retrieval_scores, rows = module.index(model.query_embedding(query))
        batch = tf.shape(rows)[0]
        # Rank every (user, candidate) pair in one batch: user b's features repeat n times.
        users = tf.repeat(tf.range(batch), n)
        pairs = {name: tf.gather(value, users) for name, value in query.items()}
        pairs.update(module.item_features.gather(tf.reshape(rows, [-1])))
        ranked = {name: tf.reshape(v, [batch, n]) for name, v in heads(pairs).items()}
        ranked[RETRIEVAL_SCORE] = retrieval_scores
        ranked[ITEM_IDS] = tf.gather(module.item_ids, rows)
        _, best = tf.math.top_k(ranked[SCORE], k=k)
        return {name: tf.gather(value, best, batch_dims=1) for name, value in ranked.items()}

    module.serve = serve
    return ServingModel(module, {SERVING_DEFAULT: serve.get_concrete_function()})


class _StoredFeatures(tf.Module):
    """Transformed catalogue features kept as variables (not graph constants: no 2 GB limit)."""

    def __init__(self, features: Mapping[str, tf.Tensor | tf.RaggedTensor]) -> None:
        super().__init__(name="catalog_features")
        self.dense = {}
        self.ragged_values = {}
        self.ragged_splits = {}
        for name, value in features.items():
            if isinstance(value, tf.RaggedTensor):
                self.ragged_values[name] = tf.Variable(value.flat_values, trainable=False)
                self.ragged_splits[name] = tf.Variable(value.row_splits, trainable=False)
            else:
                self.dense[name] = tf.Variable(value, trainable=False)

    def gather(self, rows: tf.Tensor) -> dict[str, tf.Tensor | tf.RaggedTensor]:
        out = {name: tf.gather(var, rows) for name, var in self.dense.items()}
        for name, values in self.ragged_values.items():
            ragged = tf.RaggedTensor.from_row_splits(values, self.ragged_splits[name])
            out[name] = tf.gather(ragged, rows)
        return out


def _module(model: tf.keras.Model, tft_layer: tf.keras.Model) -> tf.Module:
    module = tf.Module()
    module.model = model
    # Tracking the layer saves the transform graph's assets (vocabularies) with the model.
    module.tft_layer = tft_layer
    return module


def _index(catalog: Catalog, k: int) -> tfrs.layers.factorized_top_k.BruteForce:
    index = tfrs.layers.factorized_top_k.BruteForce(k=k)
    index.index(catalog.embeddings)
    return index
