"""Splits held in memory: parsed once into columns, batches gathered by a seeded permutation.

Parsing the transformed tf.Examples is most of the cost of the streaming input
(`mtlrec.models.data.make_dataset`), and it is paid again every epoch, on the cores the train step
needs. A split that fits in `training.input_memory_mb` is parsed once into columns (see
`Columns`). An epoch is then a seeded permutation of its rows, and a batch is a few gathers:
one tf.data element per batch, not per row, as Merlin's dataloader serves batches from
columns. The permutation covers the whole split, a better shuffle than the streaming
input's buffer.

For training, the gathers run in the compiled train step itself (`Split.train_batches`
yields the row indices of each batch, `Split.prepare` gathers them): a tf.data map per
batch costs more than the gathers it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from collections.abc import Callable

import tensorflow as tf

from mtlrec.models.data import count_examples, make_dataset, with_input_options

# Records parsed per call while loading: large, so the parse runs as a few big ops.
_LOAD_BATCH = 65_536

# The one key of a batch of row indices (`row_batches`).
ROW_INDEX = "row_index"

log = logging.getLogger("mtlrec.train")


@dataclasses.dataclass(frozen=True)
class Columns:
    """Every row of a split, in file order.

    Dense 1-D features are packed into one [rows, k] matrix per dtype: a batch is then one
    gather per dtype, not per feature, which costs the input ~2-3x less time per batch.
    Other features (ragged, multi-dimensional) are held one tensor each.
    """

    packed: dict[tf.DType, tuple[tuple[str, ...], tf.Tensor]]
    other: dict[str, tf.Tensor | tf.RaggedTensor]
    rows: int
    nbytes: int

    @classmethod
    def of(cls, tensors: dict[str, tf.Tensor | tf.RaggedTensor], nbytes: int) -> Columns:
        rows = int(next(iter(tensors.values())).shape[0])
        dense = {
            name: t
            for name, t in sorted(tensors.items())
            if isinstance(t, tf.Tensor) and t.shape.rank == 1
        }
        packed = {}
        for dtype in sorted({t.dtype for t in dense.values()}, key=lambda d: d.name):
            names = tuple(name for name, t in dense.items() if t.dtype == dtype)
            packed[dtype] = (names, tf.stack([dense[name] for name in names], axis=1))
        other = {name: t for name, t in tensors.items() if name not in dense}
        return cls(packed, other, rows, nbytes)

    def gather(self, indices: tf.Tensor) -> dict[str, tf.Tensor | tf.RaggedTensor]:
        """The rows at `indices`, one tensor per feature."""
        batch = {name: tf.gather(t, indices) for name, t in self.other.items()}
        for names, matrix in self.packed.values():
            batch.update(zip(names, tf.unstack(tf.gather(matrix, indices), axis=1), strict=True))
        return batch

    def gather_rows(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor | tf.RaggedTensor]:
        """The features of a batch of `row_batches`."""
        return self.gather(batch[ROW_INDEX])


def tensor_nbytes(tensor: tf.Tensor | tf.RaggedTensor) -> int:
    """Bytes a tensor holds (string bytes plus one 8-byte pointer each, for strings)."""
    if isinstance(tensor, tf.RaggedTensor):
        return tensor_nbytes(tensor.flat_values) + sum(
            tensor_nbytes(splits) for splits in tensor.nested_row_splits
        )
    count = tensor.shape.num_elements()
    if tensor.dtype == tf.string:
        return int(tf.reduce_sum(tf.strings.length(tensor))) + 8 * count
    return count * tensor.dtype.size


def columns_of(batches: tf.data.Dataset, max_bytes: int) -> Columns | None:
    """Concatenates the dict batches of `batches`; None if empty or over `max_bytes`.

    Stops reading as soon as the budget is exceeded, so a split too large to hold costs at
    most `max_bytes` of parsing before the caller falls back to streaming.
    """
    parts: list[dict[str, tf.Tensor]] = []
    total = 0
    for batch in batches:
        total += sum(tensor_nbytes(t) for t in batch.values())
        if total > max_bytes:
            return None
        parts.append(batch)
    if not parts:
        return None
    tensors = {name: tf.concat([p[name] for p in parts], axis=0) for name in parts[0]}
    parts.clear()  # while packing, hold two copies of the split, not three
    return Columns.of(tensors, total)


def _epoch_order(rows: int, batch_size: int, shuffle: bool, seed: int):
    """`epoch index -> dataset of (padded row indices, batch size)`, one element per batch."""
    n_batches = -(-rows // batch_size)
    starts = tf.range(n_batches, dtype=tf.int64) * batch_size
    sizes = tf.minimum(tf.constant(batch_size, tf.int64), rows - starts)

    def order(epoch: tf.Tensor) -> tf.data.Dataset:
        indices = tf.range(rows, dtype=tf.int64)
        if shuffle:
            epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
            indices = tf.random.experimental.stateless_shuffle(indices, seed=epoch_seed)
        padded = tf.pad(indices, [[0, n_batches * batch_size - rows]])
        return tf.data.Dataset.from_tensor_slices((tf.reshape(padded, [n_batches, -1]), sizes))

    return order


def _row_indices(
    rows: int, batch_size: int, shuffle: bool, seed: int, repeat: bool
) -> tf.data.Dataset:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    passes = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    order = passes.flat_map(_epoch_order(rows, batch_size, shuffle, seed))
    return order.map(lambda padded, size: {ROW_INDEX: padded[:size]})


def row_batches(
    rows: int, batch_size: int, *, shuffle: bool, seed: int, repeat: bool = False
) -> tf.data.Dataset:
    """Batches `{ROW_INDEX: row indices}` of a split of `rows` rows.

    With `shuffle`, each pass is a permutation of every row drawn from (`seed`, pass index):
    the same seed gives the same batches, and every pass of a repeated dataset differs.
    """
    return with_input_options(_row_indices(rows, batch_size, shuffle, seed, repeat))


def column_batches(
    columns: Columns, batch_size: int, *, shuffle: bool, seed: int, repeat: bool = False
) -> tf.data.Dataset:
    """Batches of `columns` (the same dicts `make_dataset` yields), in `row_batches` order."""
    indices = _row_indices(columns.rows, batch_size, shuffle, seed, repeat)
    ds = indices.map(columns.gather_rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return with_input_options(ds)


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of the preprocess output: its columns when it fits in memory, else None."""

    file_pattern: pathlib.Path
    tft_output_dir: pathlib.Path
    passthrough: bool
    columns: Columns | None

    @property
    def in_memory(self) -> bool:
        return self.columns is not None

    @property
    def source(self) -> str:
        """Where batches come from: "memory" or "stream"."""
        return "memory" if self.in_memory else "stream"

    @property
    def nbytes(self) -> int:
        return 0 if self.columns is None else self.columns.nbytes

    def rows(self) -> int:
        return self.columns.rows if self.columns is not None else count_examples(self.file_pattern)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        repeat: bool = False,
        shuffle_buffer: int = 10_000,
    ) -> tf.data.Dataset:
        """Batches from memory, or streamed from the TFRecords (`shuffle_buffer` applies)."""
        if self.columns is not None:
            return column_batches(
                self.columns, batch_size, shuffle=shuffle, seed=seed, repeat=repeat
            )
        return make_dataset(
            self.file_pattern,
            self.tft_output_dir,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            repeat=repeat,
            shuffle_buffer=shuffle_buffer,
            passthrough=self.passthrough,
        )

    def train_batches(
        self, batch_size: int, *, seed: int, shuffle_buffer: int, repeat: bool = False
    ) -> tf.data.Dataset:
        """Shuffled batches for the train step: row indices if held (see `prepare`)."""
        if self.columns is not None:
            return row_batches(
                self.columns.rows, batch_size, shuffle=True, seed=seed, repeat=repeat
            )
        return self.batches(
            batch_size, shuffle=True, seed=seed, repeat=repeat, shuffle_buffer=shuffle_buffer
        )

    @property
    def prepare(self) -> Callable[[dict], dict] | None:
        """What the train step applies to a batch of `train_batches`: the gather if held."""
        return None if self.columns is None else self.columns.gather_rows


def open_split(
    file_pattern: str | pathlib.Path,
    tft_output_dir: str | pathlib.Path,
    *,
    passthrough: bool,
    max_bytes: int,
) -> Split:
    """The split, parsed into memory if it takes at most `max_bytes` (0: always streamed)."""
    file_pattern, tft_output_dir = pathlib.Path(file_pattern), pathlib.Path(tft_output_dir)
    columns = None
    if max_bytes > 0:
        start = time.perf_counter()
        every_row = make_dataset(
            file_pattern,
            tft_output_dir,
            _LOAD_BATCH,
            shuffle=False,
            seed=0,
            passthrough=passthrough,
        )
        columns = columns_of(every_row, max_bytes)
        if columns is None:
            log.info(f"{file_pattern.name}: streamed (over {max_bytes / 2**20:.0f} MB, or empty)")
        else:
            log.info(
                f"{file_pattern.name}: {columns.rows} rows held in memory "
                f"({columns.nbytes / 2**20:.1f} MB, parsed in {time.perf_counter() - start:.1f} s)"
            )
    return Split(file_pattern, tft_output_dir, passthrough, columns)
