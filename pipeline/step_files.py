"""The files a step writes, published together when every worker has finished writing.

Beam's file sinks (`WriteToParquet`, `WriteToText`, ...) each add an initialise, a
pre-finalise and a finalise stage around the write. A step here writes a dozen outputs
(tables, dead letters, duplicates, examples, counts); the FnApiRunner runs stages one after
the other, so those stages alone took seconds of every job. `WriteFiles` keeps what they
guarantee with one stage for the whole step:
- each bundle writes its shard to a temporary directory of the step and emits the shard's
  name; a retried bundle's shard is never named, so it is never published;
- once every output is written, one `Publish` renames the named shards into place
  (`<prefix>-SSSSS-of-NNNNN<suffix>`, or `<prefix>` itself for a single-file output) and
  removes the temporary directory with whatever a failed attempt left there.
Files go through Beam's `FileSystems`, so every Beam file system works as with its sinks.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import posixpath
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

# Temporary shards live in `<step_dir>/<TEMP_DIR_PREFIX><uuid>` until the publish.
TEMP_DIR_PREFIX = ".temp-"


def _create(path: str) -> BinaryIO:
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _open(path: str) -> BinaryIO:
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


class ShardFormat(abc.ABC):
    """How elements become the bytes of one file. Subclasses set `suffix` and `open`."""

    suffix = ""

    @abc.abstractmethod
    def open(self, handle: BinaryIO) -> Any:
        """A writer of elements into `handle`: `write(element)`, then `close()` (closes it)."""

    def merge(self, sources: list[str], destination: str) -> None:
        """Writes the shards `sources` as one file; byte concatenation suits streams."""
        with _create(destination) as out:
            for source in sources:
                with _open(source) as handle:
                    shutil.copyfileobj(handle, out)


class _LineWriter:
    def __init__(self, handle: BinaryIO):
        self._handle = handle

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        self._handle.write(line.encode())

    def close(self) -> None:
        self._handle.close()


class JsonLinesShards(ShardFormat):
    """One JSON object per line (keys sorted; values JSON cannot spell are written as str)."""

    suffix = ".jsonl"

    def open(self, handle: BinaryIO) -> _LineWriter:
        return _LineWriter(handle)


class _ParquetWriter:
    def __init__(self, handle: BinaryIO, arrow_schema: pa.Schema):
        self._handle = handle
        self._schema = arrow_schema
        # Uncompressed, as Beam's Parquet sink writes by default: these are a job's
        # intermediate tables, read back once, and compression would cost the write.
        self._writer = pq.ParquetWriter(handle, arrow_schema, compression="none")

    def write(self, rows: pa.RecordBatch | pa.Table) -> None:
        if isinstance(rows, pa.RecordBatch):
            rows = pa.Table.from_batches([rows], schema=self._schema)
        self._writer.write_table(rows)

    def close(self) -> None:
        self._writer.close()
        self._handle.close()


@dataclasses.dataclass(frozen=True)
class ParquetShards(ShardFormat):
    """RecordBatches (or Tables) of `arrow_schema`, one row group each."""

    arrow_schema: pa.Schema
    suffix = ".parquet"

    def open(self, handle: BinaryIO) -> _ParquetWriter:
        return _ParquetWriter(handle, self.arrow_schema)

    def merge(self, sources: list[str], destination: str) -> None:
        writer = self.open(_create(destination))
        for source in sources:
            with _open(source) as handle:
                writer.write(pq.read_table(handle, schema=self.arrow_schema))
        writer.close()


@dataclasses.dataclass(frozen=True)
class FileOutput:
    """One output of a step: its files' path prefix and format.

    A `single_file` output is the file `prefix` itself, for small outputs read whole (counts,
    the catalogue): shards written by several bundles are merged into it.
    """

    prefix: str
    format: ShardFormat
    single_file: bool = False

    def paths(self, shards: int) -> list[str]:
        if self.single_file:
            return [self.prefix]
        suffix = self.format.suffix
        return [f"{self.prefix}-{i:05d}-of-{shards:05d}{suffix}" for i in range(shards)]


class _Shard(NamedTuple):
    output: str
    path: str


class _WriteShardFn(beam.DoFn):
    """Writes each bundle's elements to one temporary shard; emits the shard when it is done."""

    def __init__(self, name: str, output: FileOutput, temp_dir: str):
        self._name = name
        self._output = output
        self._temp_dir = temp_dir

    def start_bundle(self):
        self._path = None
        self._writer = None

    def process(self, element):
        if self._writer is None:
            self._path = posixpath.join(
                self._temp_dir, uuid.uuid4().hex + self._output.format.suffix
            )
            self._writer = self._output.format.open(_create(self._path))
        self._writer.write(element)

    def finish_bundle(self):
        if self._writer is not None:
            self._writer.close()
            yield GlobalWindows.windowed_value(_Shard(self._name, self._path))


def _publish(
    _: bytes, outputs: Mapping[str, FileOutput], temp_dir: str, *written: Iterable[_Shard]
) -> Iterator[str]:
    """Renames every written shard into place; an output with none gets one empty shard."""
    shards: dict[str, list[str]] = {name: [] for name in outputs}
    for shard in (s for group in written for s in group):
        shards[shard.output].append(shard.path)
    sources, destinations = [], []
    for name, output in outputs.items():
        paths = sorted(shards[name])
        if not paths:
            paths = [posixpath.join(temp_dir, f"empty-{uuid.uuid4().hex}{output.format.suffix}")]
            output.format.open(_create(paths[0])).close()
        if output.single_file and len(paths) > 1:
            merged = posixpath.join(temp_dir, f"merged-{uuid.uuid4().hex}{output.format.suffix}")
            output.format.merge(paths, merged)
            paths = [merged]
        sources.extend(paths)
        destinations.extend(output.paths(len(paths)))
    for directory in {posixpath.dirname(d) for d in destinations}:
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
    FileSystems.rename(sources, destinations)
    FileSystems.delete([temp_dir])
    yield from destinations


@beam.ptransform_fn
def WriteFiles(  # noqa: N802 (Beam transform names are CamelCase)
    data: Mapping[str, beam.PCollection], outputs: Mapping[str, FileOutput], step_dir: str
) -> beam.PCollection:
    """Writes `data[name]` as `outputs[name]` for every name; returns the published paths.

    Raises:
      ValueError: `data` and `outputs` do not name the same outputs.
    """
    if set(data) != set(outputs):
        raise ValueError(
            f"WriteFiles: outputs without data {sorted(set(outputs) - set(data))}, data "
            f"without an output {sorted(set(data) - set(outputs))}; give both the same names"
        )
    temp_dir = posixpath.join(step_dir, f"{TEMP_DIR_PREFIX}{uuid.uuid4().hex}")
    written = [
        data[name] | f"Write[{name}]" >> beam.ParDo(_WriteShardFn(name, output, temp_dir))
        for name, output in outputs.items()
    ]
    pipeline = next(iter(data.values())).pipeline
    # Each output's shard names are their own side input: a Flatten of them would be one
    # more stage in the FnApiRunner, which materialises every multi-input Flatten.
    return (
        pipeline
        | "Start" >> beam.Impulse()
        | "Publish"
        >> beam.FlatMap(
            _publish, outputs, temp_dir, *(beam.pvalue.AsList(w) for w in written)
        ).with_output_types(str)
    )
