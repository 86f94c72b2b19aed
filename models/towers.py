"""The user (query) and item (candidate) towers, built from the feature declarations.

Each tower embeds its side's declared features (ID, CATEGORICAL and TIME through embedding
tables, multivalent categoricals and the user history as the mean of their embeddings —
the history through the item tower's item_id table —, NUMERIC as is),
concatenates them and maps them through an MLP to `embedding_dim`. Every task reads the
same two towers, so the id embedding tables are the same variables for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from mtlrec.features.declarations import Feature, FeatureSet, Kind, Side
from mtlrec.models.config import ModelConfig
from mtlrec.models.sharing.mlp import dense_regularizer, mlp


def embedding_input_dim(
    feature_set: FeatureSet, feature: Feature, vocab_sizes: dict[str, int]
) -> int:
    """Rows of the feature's embedding table: vocabulary + OOV buckets, or its bucket count."""
    if feature.kind is Kind.TIME:
        return int(feature.num_buckets)
    if feature.kind is Kind.POSITION:
        # Positions at or above max_position share the last bucket: 0..max_position.
        return feature_set.config.max_position + 1
    if feature.vocab_name not in vocab_sizes:
        raise ValueError(
            f"no vocabulary size for feature {feature.name!r}; vocab_sizes has "
            f"{sorted(vocab_sizes)} (read them with mtlrec.models.data.vocab_sizes_from_tft)"
        )
    return vocab_sizes[feature.vocab_name] + feature_set.oov_buckets(feature)


def _mean_embedding(table: tf.keras.layers.Embedding, values: tf.Tensor) -> tf.Tensor:
    """Mean of the embeddings of a ragged/sparse list per row; an empty list gives zeros."""
    if isinstance(values, tf.SparseTensor):
        values = tf.RaggedTensor.from_sparse(values)
    if not isinstance(values, tf.RaggedTensor):
        values = tf.RaggedTensor.from_tensor(values)
    if not table.built:
        table.build(None)  # the table is read directly, not through the layer's call
    vectors = tf.ragged.map_flat_values(tf.gather, table.embeddings, values)
    counts = tf.cast(tf.maximum(values.row_lengths(), 1), vectors.dtype)[:, None]
    return tf.reduce_sum(vectors, axis=1) / counts


class Tower(tf.keras.layers.Layer):
    """Embeds one side's features and maps them to an `embedding_dim` vector."""

    def __init__(
        self,
        feature_set: FeatureSet,
        side: Side,
        cfg: ModelConfig,
        vocab_sizes: dict[str, int],
        *,
        name: str,
        shared: Mapping[str, tf.keras.layers.Embedding] | None = None,
    ) -> None:
        """`shared`: another tower's tables by feature name, for the features that read
        that feature's vocabulary (`Feature.vocabulary`: the user history pools item_id's)."""
        super().__init__(name=name)
        self.features = feature_set.by_side(side)
        if not self.features:
            raise ValueError(f"features.enabled has no {side.value}-side feature for the {name}")
        self.embeddings: dict[str, tf.keras.layers.Embedding] = {}
        # Read, not owned: the owning tower lists them (regularisation, warm start).
        self.shared_embeddings: dict[str, tf.keras.layers.Embedding] = {}
        for feature in self.features:
            if feature.kind is Kind.NUMERIC:
                continue
            if feature.vocabulary is not None:
                if feature.vocabulary not in (shared or {}):
                    raise ValueError(
                        f"{name}: feature {feature.name!r} reads the {feature.vocabulary!r} "
                        f"embedding, which no tower passed; enable {feature.vocabulary!r}"
                    )
                self.shared_embeddings[feature.name] = shared[feature.vocabulary]
                continue
            width = cfg.embedding_dim if feature.kind is Kind.ID else cfg.side_embedding_dim
            self.embeddings[feature.name] = tf.keras.layers.Embedding(
                embedding_input_dim(feature_set, feature, vocab_sizes),
                width,
                name=f"{feature.name}_embedding",
            )
        # model.retrieval_item_bias: the item tower appends b_item, the user tower a 1.
        self.bias_id, self.bias_table = _item_score_bias(feature_set, side, cfg, vocab_sizes)
        self.bias_one = cfg.retrieval_item_bias and side is Side.QUERY
        self.hidden = mlp(cfg.tower_units, dropout=cfg.dropout, l2=cfg.l2_dense, name="hidden")
        self.projection = tf.keras.layers.Dense(
            cfg.embedding_dim, kernel_regularizer=dense_regularizer(cfg.l2_dense), name="projection"
        )

    @property
    def id_embedding_tables(self) -> list[tf.Variable]:
        """The id tables (user_id / item_id) of this tower: the L2-regularised variables."""
        return [self.embeddings[f.name].embeddings for f in self.features if f.name in self.ids]

    @property
    def ids(self) -> tuple[str, ...]:
        """The owned id features (their tables: `id_embedding_tables`)."""
        return tuple(
            f.name for f in self.features if f.kind is Kind.ID and f.name in self.embeddings
        )

    @property
    def vocabulary_tables(self) -> list[tuple[str, tf.Variable]]:
        """(vocabulary name, table) of the tables indexed by a vocabulary's rows."""
        tables = [
            (f.vocab_name, self.embeddings[f.name].embeddings)
            for f in self.features
            if f.vocab_name is not None and f.name in self.embeddings
        ]
        if self.bias_table is not None:
            tables.append((self.bias_id, self.bias_table.embeddings))
        return tables

    def _encode(self, feature: Feature, value: tf.Tensor) -> tf.Tensor:
        if feature.kind is Kind.NUMERIC:
            return tf.reshape(tf.cast(value, tf.float32), [-1, 1])
        table = self.embeddings.get(feature.name) or self.shared_embeddings[feature.name]
        if feature.multivalent:
            return _mean_embedding(table, value)
        return table(tf.reshape(value, [-1]))

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        missing = [f.name for f in self.features if f.name not in features]
        if missing:
            raise ValueError(
                f"{self.name}: input lacks feature(s) {missing}; got {sorted(features)}"
            )
        encoded = [self._encode(f, features[f.name]) for f in self.features]
        hidden = self.hidden(tf.concat(encoded, axis=1), training=training)
        output = self.projection(hidden)
        if self.bias_table is not None:
            bias = self.bias_table(tf.reshape(features[self.bias_id], [-1]))
            return tf.concat([output, bias], axis=1)
        if self.bias_one:
            return tf.concat([output, tf.ones_like(output[:, :1])], axis=1)
        return output


def _item_score_bias(
    feature_set: FeatureSet, side: Side, cfg: ModelConfig, vocab_sizes: dict[str, int]
) -> tuple[str | None, tf.keras.layers.Embedding | None]:
    """The item id feature and its width-1 score-bias table (candidate side, when
    `model.retrieval_item_bias` is on); (None, None) otherwise."""
    if not cfg.retrieval_item_bias or side is not Side.CANDIDATE:
        return None, None
    item = next((f for f in feature_set.by_side(side) if f.kind is Kind.ID), None)
    if item is None:
        raise ValueError("model.retrieval_item_bias needs the item_id feature in features.enabled")
    table = tf.keras.layers.Embedding(
        embedding_input_dim(feature_set, item, vocab_sizes),
        1,
        embeddings_initializer="zeros",
        name="score_bias",
    )
    return item.name, table


def dummy_features(fs: FeatureSet) -> dict[str, tf.Tensor]:
    """A two-row batch of every enabled feature (index 0 / value 0): builds the variables."""
    batch: dict[str, tf.Tensor] = {}
    for feature in fs.features:
        if feature.kind is Kind.NUMERIC:
            batch[feature.name] = tf.zeros([2], tf.float32)
        elif feature.multivalent:
            batch[feature.name] = tf.ragged.constant([[0], [0]], dtype=tf.int64)
        else:
            batch[feature.name] = tf.zeros([2], tf.int64)
    return batch
