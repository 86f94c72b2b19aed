"""A step's files: written as shards by the workers, published together, nothing else left."""

from __future__ import annotations

import json
import re

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.pipeline.step_files import (
    FileOutput,
    JsonLinesShards,
    ParquetShards,
    WriteFiles,
    _publish,
    _Shard,
)

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])
BATCHES = [
    pa.RecordBatch.from_pylist([{"id": "a", "n": 1}, {"id": "b", "n": None}], schema=SCHEMA),
    pa.RecordBatch.from_pylist([{"id": "c", "n": 3}], schema=SCHEMA),
]
RECORDS = [{"row": 1, "reason": "bad ts"}, {"row": 7, "reason": "unknown event_type"}]


def _outputs(step_dir) -> dict[str, FileOutput]:
    return {
        "rows": FileOutput(str(step_dir / "rows" / "part"), ParquetShards(SCHEMA)),
        "dead": FileOutput(str(step_dir / "dead_letter" / "events"), JsonLinesShards()),
        "none": FileOutput(str(step_dir / "duplicates" / "events"), JsonLinesShards()),
        "total": FileOutput(str(step_dir / "_total.json"), JsonLinesShards(), single_file=True),
    }


@pytest.fixture(scope="module")
def step(tmp_path_factory):
    step_dir = tmp_path_factory.mktemp("step")
    with TestPipeline(argv=IN_PROCESS) as p:
        data = {
            "rows": p | "Rows" >> beam.Create(BATCHES, reshuffle=False),
            "dead": p | "Dead" >> beam.Create(RECORDS, reshuffle=False),
            "none": p | "None" >> beam.Create([], reshuffle=False),
            "total": p | "Total" >> beam.Create([{"rows": 3}], reshuffle=False),
        }
        published = data | WriteFiles(_outputs(step_dir), str(step_dir))
        assert_that(published | beam.combiners.Count.Globally(), equal_to([4]))
    return step_dir, sorted(f for f in step_dir.rglob("*") if f.is_file())


def _shards(directory, stem: str, suffix: str) -> list:
    files = sorted(directory.glob(f"{stem}-*"))
    pattern = re.compile(rf"{stem}-(\d{{5}})-of-(\d{{5}}){re.escape(suffix)}")
    names = [pattern.fullmatch(f.name) for f in files]
    assert all(names), [f.name for f in files]
    assert [int(m[1]) for m in names] == list(range(len(files)))
    assert {int(m[2]) for m in names} == {len(files)}
    return files


def test_sharded_outputs_hold_every_element_under_their_shard_names(step):
    step_dir, _ = step
    parts = _shards(step_dir / "rows", "part", ".parquet")
    rows = pa.concat_tables(pq.read_table(p) for p in parts)
    assert rows.schema == SCHEMA
    assert sorted(rows.to_pylist(), key=lambda r: r["id"]) == [
        {"id": "a", "n": 1},
        {"id": "b", "n": None},
        {"id": "c", "n": 3},
    ]
    dead = _shards(step_dir / "dead_letter", "events", ".jsonl")
    lines = [json.loads(line) for f in dead for line in f.read_text().splitlines()]
    assert sorted(lines, key=lambda r: r["row"]) == RECORDS


def test_an_output_without_elements_gets_one_empty_shard(step):
    step_dir, _ = step
    (empty,) = _shards(step_dir / "duplicates", "events", ".jsonl")
    assert empty.name == "events-00000-of-00001.jsonl"
    assert empty.read_bytes() == b""


def test_a_single_file_output_is_its_prefix(step):
    step_dir, _ = step
    assert (step_dir / "_total.json").read_text() == '{"rows": 3}\n'


def test_nothing_but_the_outputs_is_left(step):
    step_dir, files = step
    assert not list(step_dir.glob(".temp-*"))
    assert [f.relative_to(step_dir).as_posix() for f in files] == [
        "_total.json",
        "dead_letter/events-00000-of-00001.jsonl",
        "duplicates/events-00000-of-00001.jsonl",
        "rows/part-00000-of-00001.parquet",
    ]


def _shard(temp_dir, name: str, output: FileOutput, elements: list) -> _Shard:
    path = str(temp_dir / f"{len(list(temp_dir.iterdir()))}{output.format.suffix}")
    writer = output.format.open(open(path, "wb"))  # noqa: SIM115 (the writer closes it)
    for element in elements:
        writer.write(element)
    writer.close()
    return _Shard(name, path)


def test_publish_merges_the_shards_of_a_single_file_output_and_numbers_the_rest(tmp_path):
    temp_dir = tmp_path / ".temp-x"
    temp_dir.mkdir()
    outputs = {
        "catalogue": FileOutput(str(tmp_path / "catalog.parquet"), ParquetShards(SCHEMA), True),
        "lines": FileOutput(str(tmp_path / "all.jsonl"), JsonLinesShards(), single_file=True),
        "rows": FileOutput(str(tmp_path / "rows" / "part"), ParquetShards(SCHEMA)),
    }
    written = [
        _shard(temp_dir, "catalogue", outputs["catalogue"], [BATCHES[0]]),
        _shard(temp_dir, "catalogue", outputs["catalogue"], [BATCHES[1]]),
        _shard(temp_dir, "lines", outputs["lines"], RECORDS[:1]),
        _shard(temp_dir, "lines", outputs["lines"], RECORDS[1:]),
        _shard(temp_dir, "rows", outputs["rows"], [BATCHES[1]]),
        _shard(temp_dir, "rows", outputs["rows"], [BATCHES[0]]),
    ]
    # A shard of a failed bundle attempt: written, never named, so never published.
    _shard(temp_dir, "rows", outputs["rows"], BATCHES)

    published = list(_publish(b"", outputs, str(temp_dir), written[:3], written[3:]))

    assert published == [
        str(tmp_path / "catalog.parquet"),
        str(tmp_path / "all.jsonl"),
        str(tmp_path / "rows" / "part-00000-of-00002.parquet"),
        str(tmp_path / "rows" / "part-00001-of-00002.parquet"),
    ]
    catalogue = pq.read_table(tmp_path / "catalog.parquet").to_pylist()
    assert sorted(r["id"] for r in catalogue) == ["a", "b", "c"]
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert sorted(lines, key=lambda r: r["row"]) == RECORDS
    rows = [r["id"] for p in published[2:] for r in pq.read_table(p).to_pylist()]
    assert sorted(rows) == ["a", "b", "c"]
    assert not temp_dir.exists()


def test_data_and_outputs_must_name_the_same_outputs(tmp_path):
    outputs = _outputs(tmp_path)
    with TestPipeline(argv=IN_PROCESS) as p:
        data = {"rows": p | beam.Create(BATCHES, reshuffle=False)}
        with pytest.raises(ValueError, match=r"outputs without data \['dead', 'none', 'total'\]"):
            _ = data | WriteFiles(outputs, str(tmp_path))


def test_a_new_run_clears_what_an_earlier_run_left(tmp_path):
    from mtlrec.pipeline.preprocess import _fresh_dir

    (tmp_path / ".temp-failed").mkdir()
    (tmp_path / ".temp-failed" / "shard.parquet").write_bytes(b"partial")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "part-00000-of-00001.parquet").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not an output")

    _fresh_dir(tmp_path, ("events",))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
