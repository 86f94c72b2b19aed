"""Towers: embedding sizes from vocabularies, multivalent means, the item catalogue."""

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.features.config import MOVIELENS_FEATURES, FeaturesConfig
from mtlrec.features.declarations import FEATURES, Side, feature_set
from mtlrec.models.config import ModelConfig
from mtlrec.models.data import item_catalogue
from mtlrec.models.towers import Tower, _mean_embedding, embedding_input_dim

MOVIELENS = feature_set(FeaturesConfig(enabled=MOVIELENS_FEATURES, id_oov_buckets=3), ("rating",))
VOCAB = {"user_id": 9, "item_id": 12, "gender": 2, "occupation": 5, "age_bucket": 4, "genres": 6}


def test_input_dims_are_vocabulary_plus_oov_buckets_or_bucket_counts():
    fs = MOVIELENS
    assert embedding_input_dim(fs, FEATURES["user_id"], VOCAB) == 9 + 3
    assert embedding_input_dim(fs, FEATURES["genres"], VOCAB) == 6 + 1
    assert embedding_input_dim(fs, FEATURES["hour"], VOCAB) == 24
    with pytest.raises(ValueError, match=r"no vocabulary size for feature 'genres'"):
        embedding_input_dim(fs, FEATURES["genres"], {"user_id": 9})


def test_multivalent_mean_of_embeddings_empty_list_is_zero():
    table = tf.keras.layers.Embedding(4, 2)
    table.build(None)
    table.embeddings.assign([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0], [9.0, 9.0]])
    ragged = tf.ragged.constant([[0, 1], [], [2, 2, 1]], dtype=tf.int64)
    expected = [[0.5, 1.0], [0.0, 0.0], [8 / 3, 10 / 3]]
    np.testing.assert_allclose(_mean_embedding(table, ragged).numpy(), expected, rtol=1e-6)
    sparse = ragged.to_sparse()
    np.testing.assert_allclose(_mean_embedding(table, sparse).numpy(), expected, rtol=1e-6)


def test_movielens_item_tower_reads_genres_and_release_year():
    tower = Tower(MOVIELENS, Side.CANDIDATE, ModelConfig(embedding_dim=8), VOCAB, name="item")
    assert [f.name for f in tower.features] == ["item_id", "genres", "release_year"]
    batch = {
        "item_id": tf.constant([0, 5], tf.int64),
        "genres": tf.ragged.constant([[1, 2], [3]], dtype=tf.int64),
        "release_year": tf.constant([0.5, -1.0]),
    }
    out = tower(batch)
    assert out.shape == (2, 8)
    assert tower.embeddings["item_id"].embeddings.shape == (12 + 3, 8)
    # Changing the genres changes the item vector: the feature really enters the tower.
    other = tower({**batch, "genres": tf.ragged.constant([[4], [3]], dtype=tf.int64)})
    assert not np.allclose(out[0].numpy(), other[0].numpy())
    np.testing.assert_allclose(out[1].numpy(), other[1].numpy(), rtol=1e-6)


def test_item_catalogue_keeps_first_row_of_each_item():
    fs = feature_set(FeaturesConfig(), ())
    rows = {
        "item_id": [3, 1, 3, 2, 1, 4],
        "category": [30, 10, 30, 20, 10, 40],
        "brand": [0, 1, 0, 2, 1, 4],
        "price": [0.3, 0.1, 0.3, 0.2, 0.1, 0.4],
        "user_id": [9, 9, 8, 8, 7, 7],
    }
    data = tf.data.Dataset.from_tensor_slices(rows).batch(4)
    catalogue = item_catalogue(data, fs)
    assert set(catalogue) == {"item_id", "category", "brand", "price"}
    assert catalogue["item_id"].numpy().tolist() == [3, 1, 2, 4]
    assert catalogue["category"].numpy().tolist() == [30, 10, 20, 40]
    np.testing.assert_allclose(catalogue["price"].numpy(), [0.3, 0.1, 0.2, 0.4])


def test_history_pools_the_item_towers_item_id_table():
    fs = feature_set(
        FeaturesConfig(enabled=("user_id", "item_id"), id_oov_buckets=3, history_length=5), ()
    )
    vocab = {"user_id": 9, "item_id": 12}
    cfg = ModelConfig(embedding_dim=4)
    items = Tower(fs, Side.CANDIDATE, cfg, vocab, name="candidate")
    users = Tower(fs, Side.QUERY, cfg, vocab, name="query", shared=items.embeddings)
    assert [f.name for f in users.features] == ["user_id", "history"]
    items({"item_id": tf.constant([0], tf.int64)})
    table = items.embeddings["item_id"]
    assert users.shared_embeddings["history"] is table
    history = tf.ragged.constant([[1, 2], []], dtype=tf.int64)
    pooled = users._encode(fs.get("history"), history).numpy()
    rows = table.embeddings.numpy()
    np.testing.assert_allclose(pooled, [(rows[1] + rows[2]) / 2, np.zeros(4)], rtol=1e-6)
    out = users({"user_id": tf.constant([0, 0], tf.int64), "history": history})
    assert out.shape == (2, 4)
    assert not np.allclose(out[0].numpy(), out[1].numpy())
    # The query tower owns no copy: one item table, listed (regularised, warm-started) once.
    assert users.ids == ("user_id",)
    assert [name for name, _ in users.vocabulary_tables] == ["user_id"]


def test_history_without_a_shared_item_table_is_a_clear_error():
    fs = feature_set(FeaturesConfig(enabled=("user_id", "item_id"), history_length=5), ())
    with pytest.raises(ValueError, match=r"'history' reads the 'item_id' embedding"):
        Tower(fs, Side.QUERY, ModelConfig(), {"user_id": 9, "item_id": 12}, name="query")
