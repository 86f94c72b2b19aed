"""A Beam file sink that writes whole batches of serialized records as gzip TFRecord files.

Beam's `WriteToTFRecord` takes one element per record and compresses each record's four
pieces separately at zlib's default level; at a million examples that per-record work is a
large share of the preprocess job. Here an element is a list of records: each batch is
framed (length, masked CRC-32C of the length, data, masked CRC-32C of the data, as
`tf.io.TFRecordWriter` does) into one buffer and compressed in one call. Files go through
Beam's `FileBasedSink` (temporary files, then an atomic rename), so every Beam file system
and runner works as with the built-in sink.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import apache_beam as beam
import google_crc32c
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes

# Level 1 compresses ~4x faster than zlib's default 6 for files ~40% larger (measured on
# the shop examples: 19% against 13% of the raw size); readers decompress both alike.
GZIP_LEVEL = 1
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C, rotated right by 15 bits plus a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_records(records: Sequence[bytes]) -> bytes:
    """The TFRecord framing of `records`, concatenated."""
    parts = []
    for record in records:
        length = _LENGTH.pack(len(record))
        parts += (
            length,
            _CRC.pack(masked_crc32c(length)),
            record,
            _CRC.pack(masked_crc32c(record)),
        )
    return b"".join(parts)


class _GzipFile:
    """Gzip stream at GZIP_LEVEL over a raw Beam file handle."""

    def __init__(self, raw):
        self._raw = raw
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)

    def write(self, data: bytes) -> None:
        self._raw.write(self._compressor.compress(data))

    def close(self) -> None:
        self._raw.write(self._compressor.flush())
        self._raw.close()


class _BatchedTFRecordSink(filebasedsink.FileBasedSink):
    def __init__(self, file_path_prefix: str, file_name_suffix: str):
        super().__init__(
            file_path_prefix,
            coder=None,
            file_name_suffix=file_name_suffix,
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path: str) -> _GzipFile:
        return _GzipFile(super().open(temp_path))

    def write_record(self, file_handle: _GzipFile, value: Sequence[bytes]) -> None:
        file_handle.write(frame_records(value))


@beam.ptransform_fn
def WriteRecordBatches(  # noqa: N802 (Beam transform names are CamelCase)
    batches: beam.PCollection, prefix: str, file_name_suffix: str = ".tfrecord.gz"
) -> beam.PCollection:
    """Writes lists of serialized records as gzip TFRecord shards `<prefix>-SSSSS-of-NNNNN`.

    Returns the written file names, like `beam.io.WriteToTFRecord`.
    """
    return batches | "Write" >> beam.io.Write(_BatchedTFRecordSink(prefix, file_name_suffix))
