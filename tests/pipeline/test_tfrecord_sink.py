"""The batched TFRecord format: files TensorFlow and Beam read back record for record."""

from __future__ import annotations

import gzip

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.pipeline.step_files import FileOutput, WriteFiles
from mtlrec.pipeline.tfrecord_sink import TFRecordShards, frame_records, masked_crc32c

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
BATCHES = [[b"a", b"", b"ccc"], [], [bytes(range(256)) * 40], [b"x%d" % i for i in range(500)]]
RECORDS = [r for batch in BATCHES for r in batch]


def test_framing_is_byte_for_byte_what_tensorflows_writer_writes(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "reference.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in RECORDS:
            writer.write(record)
    assert frame_records(RECORDS) == (tmp_path / "reference.tfrecord").read_bytes()


def test_masked_crc32c_of_the_empty_string_is_the_mask_constant():
    assert masked_crc32c(b"") == 0xA282EAD8


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sink")
    with TestPipeline(argv=IN_PROCESS) as p:
        batches = {"part": p | beam.Create(BATCHES, reshuffle=False)}
        outputs = {"part": FileOutput(str(out / "part"), TFRecordShards())}
        files = batches | WriteFiles(outputs, str(out))
        assert_that(files | beam.combiners.Count.Globally(), equal_to([1]))
    return sorted(out.glob("part-*.tfrecord.gz"))


def test_tensorflow_reads_every_record_in_order(written):
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset([str(f) for f in written], compression_type="GZIP")
    assert [r.numpy() for r in dataset] == RECORDS
    with gzip.open(written[0]) as stream:  # a plain gzip stream, readable by any tool
        assert stream.read() == frame_records(RECORDS)


def test_beam_reads_every_record(written, tmp_path):
    pattern = str(written[0].parent / "part-*")
    with TestPipeline(argv=IN_PROCESS) as p:
        records = p | beam.io.ReadFromTFRecord(pattern)
        assert_that(records, equal_to(RECORDS))
