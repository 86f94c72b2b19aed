"""preprocessing_fn on hand-written joined rows: exact transformed rows and vocabularies."""

from __future__ import annotations

import functools
import math
import tempfile

import pytest

pytest.importorskip("tensorflow_transform")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tensorflow_transform.beam import tft_unit  # noqa: E402

from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.features.preprocessing import (
    fill_missing_inputs,
    input_columns,
    preprocessing_fn,
    raw_feature_spec,
)

MONDAY = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
HOUR = 3_600_000
DAY = 24 * HOUR

FEATURES = FeaturesConfig(
    enabled=("user_id", "item_id", "device", "category", "price", "hour", "weekday", "position"),
    id_oov_buckets=10,
    categorical_oov_buckets=1,
    max_position=20,
)
FEATURE_SET = feature_set(FEATURES, ("click", "purchase", "dwell"))
COLUMNS = input_columns(
    FEATURE_SET,
    {
        "user_id",
        "item_id",
        "ts",
        "request_id",
        "position",
        "device",
        "category",
        "price",
        "click",
        "purchase",
        "dwell_s",
        "has_dwell",
    },
)


def _row(user, item, device, category, price, ts, position, click, purchase, dwell, has_dwell):
    return {
        "user_id": user,
        "item_id": item,
        "device": device,
        "category": category,
        "price": price,
        "ts": ts,
        "position": position,
        "click": click,
        "purchase": purchase,
        "dwell_s": dwell,
        "has_dwell": has_dwell,
    }


TRAIN = [
    _row("u1", "i1", "web", "shoes", 9.0, MONDAY + 13 * HOUR, 0, 1, 0, 3.0, 1),
    _row("u1", "i2", "app", "hats", math.nan, MONDAY + DAY + 5 * HOUR, 25, 0, 0, 0.0, 0),
    _row("u2", "i1", "web", "shoes", 9.0, MONDAY + 6 * DAY + 23 * HOUR, 3, 1, 1, 0.0, 0),
    _row("u3", "i3", "web", "hats", 99.0, MONDAY + 2 * DAY, 19, 0, 0, 0.0, 0),
    _row("u2", "i1", "app", "shoes", 9.0, MONDAY + 3 * DAY + 1 * HOUR, 1, 1, 0, 9.0, 1),
]

# price: log1p gives a, a, a, 2a (a = ln 10) over the present values; mean 1.25a and
# population std a*sqrt(3)/4, so a -> -1/sqrt(3) and 2a -> sqrt(3); the missing price -> 0.
LOW, HIGH = -1 / math.sqrt(3), math.sqrt(3)


def _out(user, item, device, category, price, hour, weekday, position, click, purchase, dwell):
    return {
        "user_id": user,
        "item_id": item,
        "device": device,
        "category": category,
        "price": price,
        "hour": hour,
        "weekday": weekday,
        "position": position,
        "click": click,
        "purchase": purchase,
        "dwell": math.log1p(dwell),
        "dwell_mask": 1.0 if dwell else 0.0,
    }


# Vocabularies are ordered by count, then by token descending: user u2 (2), u1 (2), u3 (1);
# item i1 (3), i3 (1), i2 (1); device web (3), app (2); category shoes (3), hats (2).
EXPECTED = [
    _out(1, 0, 0, 0, LOW, 13, 0, 0, 1.0, 0.0, 3.0),
    _out(1, 2, 1, 1, 0.0, 5, 1, 19, 0.0, 0.0, 0.0),
    _out(0, 0, 0, 0, LOW, 23, 6, 3, 1.0, 1.0, 0.0),
    _out(2, 1, 0, 1, HIGH, 0, 2, 19, 0.0, 0.0, 0.0),
    _out(0, 0, 1, 0, LOW, 1, 3, 1, 1.0, 0.0, 9.0),
]
ITEM_LOG_Q = {"i1": math.log(3 / 5), "i2": math.log(1 / 5), "i3": math.log(1 / 5)}


class PreprocessingFnTest(tft_unit.TransformTestCase):
    def _metadata(self):
        return tft.DatasetMetadata.from_feature_spec(raw_feature_spec(COLUMNS))

    def test_exact_rows_and_vocabularies(self):
        expected = []
        for raw, out in zip(TRAIN, EXPECTED, strict=True):
            row = dict(out)
            row.update(
                user_key=raw["user_id"].encode(),
                item_key=raw["item_id"].encode(),
                device_key=raw["device"].encode(),
                event_ts=raw["ts"],
                item_log_q=ITEM_LOG_Q[raw["item_id"]],
            )
            expected.append(row)
        self.assertAnalyzeAndTransformResults(
            TRAIN,
            self._metadata(),
            functools.partial(preprocessing_fn, feature_set=FEATURE_SET),
            expected_data=expected,
            expected_vocab_file_contents={
                "user_id": [b"u2", b"u1", b"u3"],
                "item_id": [b"i1", b"i3", b"i2"],
                "device": [b"web", b"app"],
                "category": [b"shoes", b"hats"],
                "item_log_q": [(b"i1", 3), (b"i3", 1), (b"i2", 1)],
            },
        )


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory):
    """The transform_fn analysed on TRAIN, written like the Beam job writes it."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam

    out = tmp_path_factory.mktemp("tft")
    metadata = tft.DatasetMetadata.from_feature_spec(raw_feature_spec(COLUMNS))
    with (
        beam.Pipeline(argv=["--runner=FnApiRunner"]) as p,
        tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=out)),
    ):
        transform_fn = (p | beam.Create(TRAIN), metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, feature_set=FEATURE_SET)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "transform_fn"))
    return tft.TFTransformOutput(str(out / "transform_fn"))


def _batch(rows, columns):
    spec = raw_feature_spec(COLUMNS)
    return {c: tf.constant([r[c] for r in rows], dtype=spec[c].dtype) for c in columns}


def test_unseen_ids_in_eval_get_oov_indices(transform_output):
    unseen = _row("u9", "i9", "tv", "socks", 9.0, MONDAY + 13 * HOUR, 0, 1, 0, 3.0, 1)
    out = transform_output.transform_raw_features(_batch([unseen, TRAIN[0]], COLUMNS))
    for name, vocab_size, buckets in (
        ("user_id", 3, 10),
        ("item_id", 3, 10),
        ("device", 2, 1),
        ("category", 2, 1),
    ):
        assert transform_output.vocabulary_size_by_name(name) == vocab_size
        unseen_index, seen_index = out[name].numpy().tolist()
        assert vocab_size <= unseen_index < vocab_size + buckets, name
        assert seen_index == EXPECTED[0][name], name
    # An unseen item gets the smallest training count (1 of 5 impressions).
    assert out["item_log_q"].numpy().tolist() == pytest.approx(
        [math.log(1 / 5), math.log(3 / 5)], rel=1e-6
    )


def test_item_side_transform_from_item_columns_only(transform_output):
    layer = transform_output.transform_features_layer()
    item_columns = ("item_id", "category", "price")
    rows = [TRAIN[3], TRAIN[1]]
    out = layer(_batch(rows, item_columns))
    assert out["item_id"].numpy().tolist() == [1, 2]
    assert out["category"].numpy().tolist() == [1, 1]
    assert out["price"].numpy().tolist() == pytest.approx([HIGH, 0.0], rel=1e-5)
    assert out["item_log_q"].numpy().tolist() == pytest.approx([math.log(0.2)] * 2, rel=1e-6)


def test_query_side_transform_from_query_columns_only(transform_output):
    layer = transform_output.transform_features_layer()
    query_columns = ("user_id", "device", "ts")
    out = layer(_batch([TRAIN[2]], query_columns))
    assert out["user_id"].numpy().tolist() == [0]
    assert out["device"].numpy().tolist() == [0]
    assert (out["hour"].numpy().tolist(), out["weekday"].numpy().tolist()) == ([23], [6])


def test_fill_missing_inputs_gives_neutral_defaults():
    filled = fill_missing_inputs({"item_id": tf.constant(["a", "b"])}, ("item_id", "price", "ts"))
    assert filled["item_id"].numpy().tolist() == [b"a", b"b"]
    assert math.isnan(filled["price"].numpy()[1])
    assert filled["ts"].numpy().tolist() == [0, 0]


HISTORY_SET = feature_set(
    FeaturesConfig(enabled=("user_id", "item_id"), id_oov_buckets=10, history_length=3), ()
)
HISTORY_COLUMNS = input_columns(HISTORY_SET, {"user_id", "item_id", "ts", "history"})
# item_id vocabulary: i1 (2), i2 (1); "" is no history (padding), i9 an unseen item (OOV),
# and the history's items never enter the vocabulary.
HISTORY_ROWS = [
    {"user_id": "u1", "item_id": "i1", "ts": 1, "history": ""},
    {"user_id": "u1", "item_id": "i2", "ts": 2, "history": "i1"},
    {"user_id": "u1", "item_id": "i1", "ts": 3, "history": "i2|i1|i7"},
]


@pytest.fixture(scope="module")
def history_output(tmp_path_factory):
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam

    out = tmp_path_factory.mktemp("tft_history")
    metadata = tft.DatasetMetadata.from_feature_spec(raw_feature_spec(HISTORY_COLUMNS))
    with (
        beam.Pipeline(argv=["--runner=FnApiRunner"]) as p,
        tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=out)),
    ):
        transform_fn = (p | beam.Create(HISTORY_ROWS), metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, feature_set=HISTORY_SET)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "transform_fn"))
    return tft.TFTransformOutput(str(out / "transform_fn"))


def test_history_maps_through_the_item_id_vocabulary(history_output):
    spec = raw_feature_spec(HISTORY_COLUMNS)
    raw = {c: tf.constant([r[c] for r in HISTORY_ROWS], spec[c].dtype) for c in HISTORY_COLUMNS}
    out = history_output.transform_raw_features(raw)
    assert history_output.vocabulary_by_name("item_id") == [b"i1", b"i2"]
    assert out["item_id"].numpy().tolist() == [0, 1, 0]
    history = out["history"]
    rows = history.to_list() if isinstance(history, tf.RaggedTensor) else None
    if rows is None:
        rows = tf.RaggedTensor.from_sparse(history).to_list()
    # i7 is unseen: an OOV bucket of item_id, the same one item_id itself would give i7.
    unseen = history_output.transform_raw_features(
        {**{c: raw[c][:1] for c in HISTORY_COLUMNS}, "item_id": tf.constant(["i7"])}
    )["item_id"].numpy()[0]
    assert 2 <= unseen < 12
    assert rows == [[], [0], [1, 0, unseen]]
