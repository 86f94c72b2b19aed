"""The baseline of bench.train: a plain TFRS two-tower + one click ranking head.

Written the way a TFRS user would without mtlrec: one id embedding per tower, in-batch
softmax retrieval (no logQ, no metrics while training), a 64-16-1 click head over the two
embeddings, Adam, on the same transformed TFRecords (parsing only what it uses).
"""

from __future__ import annotations

import pathlib

import tensorflow as tf
import tensorflow_recommenders as tfrs

PLAIN_FEATURES = ("user_id", "item_id", "click")


class PlainTwoTaskModel(tfrs.Model):
    """Two towers of id embeddings; retrieval + click ranking, summed with equal weights."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user_embedding = tf.keras.layers.Embedding(n_users, dim)
        self.item_embedding = tf.keras.layers.Embedding(n_items, dim)
        self.click_head = tf.keras.Sequential(
            [
                tf.keras.layers.Dense(64, activation="relu"),
                tf.keras.layers.Dense(16, activation="relu"),
                tf.keras.layers.Dense(1),
            ]
        )
        self.retrieval = tfrs.tasks.Retrieval()
        self.ranking = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        users = self.user_embedding(features["user_id"])
        items = self.item_embedding(features["item_id"])
        logits = self.click_head(tf.concat([users, items], axis=1), training=training)
        retrieval = self.retrieval(users, items, compute_metrics=False)
        ranking = self.ranking(
            labels=features["click"], predictions=tf.squeeze(logits, 1), compute_metrics=False
        )
        return retrieval + ranking


def plain_dataset(
    file_pattern: str | pathlib.Path,
    batch_size: int,
    *,
    seed: int,
    shuffle_buffer: int,
    cached: bool = False,
) -> tf.data.Dataset:
    """Gzip TFRecords → shuffled, repeated batches of the three columns the model uses.

    `cached`: one pass of batches, kept in memory by its first iteration and then repeated
    in the same order by the caller (the TFRS tutorials' `.shuffle().batch().cache()`).
    """
    spec = {
        "user_id": tf.io.FixedLenFeature([], tf.int64),
        "item_id": tf.io.FixedLenFeature([], tf.int64),
        "click": tf.io.FixedLenFeature([], tf.float32),
    }
    files = sorted(tf.io.gfile.glob(str(file_pattern)))
    if not files:
        raise ValueError(f"no TFRecord file matches {file_pattern}: run the preprocess step first")
    # A sequential read: `num_parallel_reads` hands records one by one between threads and
    # reads ~8x slower on this machine, which would make the baseline input-bound.
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").shuffle(shuffle_buffer, seed=seed)
    if not cached:
        ds = ds.repeat()
    ds = ds.batch(batch_size).map(
        lambda rows: tf.io.parse_example(rows, spec), num_parallel_calls=tf.data.AUTOTUNE
    )
    if cached:
        return ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


def plain_step(model: PlainTwoTaskModel, learning_rate: float):
    """A compiled Adam step on the model's summed loss; returns the loss."""
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(batch, training=True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


def plain_steps(step):
    """`steps` calls of `step` on batches of `iterator` in one compiled loop."""

    @tf.function
    def run(iterator, steps):
        loss = tf.constant(0.0)
        for _ in tf.range(steps):
            loss = step(next(iterator))
        return loss

    return run
