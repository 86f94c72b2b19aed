"""Splits held in memory: exact columns, budgets, and batches that are permutations of rows."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.models.memory_input import (
    ROW_INDEX,
    Columns,
    Split,
    column_batches,
    columns_of,
    row_batches,
    tensor_nbytes,
)


def _rows(start: int, stop: int) -> dict[str, tf.Tensor]:
    """Rows start..stop-1: item_id = i, price = i / 10, genres = [i] * (i % 3) (ragged)."""
    ids = list(range(start, stop))
    return {
        "item_id": tf.constant(ids, tf.int64),
        "price": tf.constant([i / 10 for i in ids], tf.float32),
        "genres": tf.ragged.constant([[i] * (i % 3) for i in ids], dtype=tf.int64),
    }


def _batches(*bounds: tuple[int, int]) -> tf.data.Dataset:
    first = _rows(*bounds[0])
    ds = tf.data.Dataset.from_tensors(first)
    for b in bounds[1:]:
        ds = ds.concatenate(tf.data.Dataset.from_tensors(_rows(*b)))
    return ds


def _columns(rows: int) -> Columns:
    columns = columns_of(_batches((0, rows)), max_bytes=10**6)
    assert columns is not None
    return columns


def test_columns_of_concatenates_every_batch_and_counts_its_bytes():
    columns = columns_of(_batches((0, 3), (3, 5)), max_bytes=10**6)
    assert columns is not None and columns.rows == 5
    rows = columns.gather(tf.range(5))
    assert rows.keys() == {"item_id", "price", "genres"}
    assert rows["item_id"].numpy().tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(rows["price"].numpy(), [0, 0.1, 0.2, 0.3, 0.4])
    assert rows["genres"].to_list() == [[], [1], [2, 2], [], [4]]
    # item_id 5 x 8, price 5 x 4; genres: values (3 + 1) x 8, row splits (4 + 3) x 8.
    assert columns.nbytes == 40 + 20 + (3 + 1) * 8 + (4 + 3) * 8


def test_dense_columns_are_packed_by_dtype_and_gathered_by_row():
    tensors = {
        "b": tf.constant([10, 11, 12], tf.int64),
        "a": tf.constant([20, 21, 22], tf.int64),
        "x": tf.constant([0.5, 1.5, 2.5]),
        "key": tf.constant(["u0", "u1", "u2"]),
        "genres": tf.ragged.constant([[1], [], [2, 3]], dtype=tf.int64),
    }
    columns = Columns.of(tensors, nbytes=0)
    assert {d: names for d, (names, _) in columns.packed.items()} == {
        tf.int64: ("a", "b"),
        tf.float32: ("x",),
        tf.string: ("key",),
    }
    assert list(columns.other) == ["genres"]
    rows = columns.gather(tf.constant([2, 0]))
    assert rows["a"].numpy().tolist() == [22, 20] and rows["b"].numpy().tolist() == [12, 10]
    assert rows["x"].numpy().tolist() == [2.5, 0.5]
    assert rows["key"].numpy().tolist() == [b"u2", b"u0"]
    assert rows["genres"].to_list() == [[2, 3], [1]]


def test_string_bytes_are_their_lengths_plus_a_pointer_each():
    assert tensor_nbytes(tf.constant(["ab", "", "xyz"])) == 5 + 3 * 8


def test_columns_of_gives_up_over_the_budget_and_on_an_empty_split():
    assert columns_of(_batches((0, 3), (3, 5)), max_bytes=100) is None
    empty = tf.data.Dataset.from_tensors(_rows(0, 1)).take(0)
    assert columns_of(empty, max_bytes=10**6) is None


def test_unshuffled_batches_are_the_rows_in_order_with_a_short_last_batch():
    batches = list(column_batches(_columns(5), 2, shuffle=False, seed=0))
    assert [b["item_id"].numpy().tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert [b["genres"].to_list() for b in batches] == [[[], [1]], [[2, 2], []], [[4]]]
    np.testing.assert_allclose(batches[2]["price"].numpy(), [0.4])


def test_row_batches_are_the_indices_the_column_batches_gather():
    indices = [b[ROW_INDEX].numpy().tolist() for b in row_batches(5, 2, shuffle=False, seed=0)]
    assert indices == [[0, 1], [2, 3], [4]]
    columns = _columns(50)
    shuffled = row_batches(50, 8, shuffle=True, seed=7, repeat=True).take(9)
    gathered = [columns.gather_rows(b)["item_id"].numpy().tolist() for b in shuffled]
    expected = column_batches(columns, 8, shuffle=True, seed=7, repeat=True).take(9)
    assert gathered == [b["item_id"].numpy().tolist() for b in expected]


def test_a_held_split_trains_on_row_indices_and_a_streamed_one_on_features():
    columns = _columns(10)
    held = Split(pathlib.Path("train-*"), pathlib.Path("tft"), False, columns)
    assert held.prepare == columns.gather_rows
    batch = next(iter(held.train_batches(4, seed=3, shuffle_buffer=10)))
    assert batch.keys() == {ROW_INDEX}
    assert held.prepare(batch)["item_id"].numpy().tolist() == batch[ROW_INDEX].numpy().tolist()
    assert Split(pathlib.Path("train-*"), pathlib.Path("tft"), False, None).prepare is None


def _pass_ids(dataset: tf.data.Dataset, batches: int) -> list[int]:
    return [i for b in dataset.take(batches) for i in b["item_id"].numpy().tolist()]


def test_a_shuffled_pass_is_a_seeded_permutation_with_each_row_intact():
    columns = _columns(50)
    first = list(column_batches(columns, 8, shuffle=True, seed=7))
    ids = [i for b in first for i in b["item_id"].numpy().tolist()]
    assert sorted(ids) == list(range(50)) and ids != list(range(50))
    for batch in first:  # features of a row stay together
        for item, price, genres in zip(
            batch["item_id"].numpy(),
            batch["price"].numpy(),
            batch["genres"].to_list(),
            strict=True,
        ):
            assert price == pytest.approx(item / 10) and genres == [item] * (item % 3)
    again = column_batches(columns, 8, shuffle=True, seed=7)
    other = column_batches(columns, 8, shuffle=True, seed=8)
    assert _pass_ids(again, 7) == ids
    assert _pass_ids(other, 7) != ids


def test_every_pass_of_a_repeated_split_is_a_new_permutation():
    ids = _pass_ids(column_batches(_columns(50), 10, shuffle=True, seed=7, repeat=True), 15)
    passes = [ids[:50], ids[50:100], ids[100:]]
    assert all(sorted(p) == list(range(50)) for p in passes)
    assert passes[0] != passes[1] != passes[2]
    single = _pass_ids(column_batches(_columns(50), 10, shuffle=True, seed=7), 5)
    assert passes[0] == single


def test_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        column_batches(_columns(3), 0, shuffle=False, seed=0)
