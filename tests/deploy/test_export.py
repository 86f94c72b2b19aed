"""Export building blocks on hand-written inputs: outputs, blending, raw columns, tf.Examples."""

import math

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from mtlrec.deploy import export, signatures
from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.features.preprocessing import raw_feature_spec
from mtlrec.models.config import DEFAULT_TASKS, TaskConfig


class _FixedPredictions:
    """Stands in for the model's `predict_tasks`: fixed per-task values for two rows."""

    def predict_tasks(self, features):
        return {
            "retrieval": tf.constant([3.0, -1.0]),
            "click": tf.constant([0.5, 0.25]),
            "purchase": tf.constant([0.1, 0.0]),
            "dwell": tf.constant([math.log1p(10.0), 0.0]),  # log1p(seconds)
        }


def test_output_names_follow_task_kinds():
    assert signatures.task_output_names(DEFAULT_TASKS) == {
        "click": "p_click",
        "purchase": "p_purchase",
        "dwell": "dwell_s",
    }
    rating = TaskConfig(name="rating", kind="regression", label="rating")
    assert signatures.task_output_names((rating,)) == {"rating": "rating"}


def test_heads_return_label_space_outputs_and_blended_score():
    weights = {"click": 1.0, "purchase": 2.0, "dwell": 0.5, "retrieval": 0.1}
    heads = signatures.Heads(_FixedPredictions(), DEFAULT_TASKS, weights)
    out = {k: v.numpy().tolist() for k, v in heads({}).items()}
    assert sorted(out) == ["dwell_s", "p_click", "p_purchase", "score"]
    assert out["dwell_s"] == pytest.approx([10.0, 0.0], rel=1e-6)
    assert out["p_click"] == [0.5, 0.25]
    # 0.5 + 2*0.1 + 0.5*10 + 0.1*3 = 6.0 ; 0.25 + 0 + 0 + 0.1*(-1) = 0.15
    assert out["score"] == pytest.approx([6.0, 0.15], rel=1e-6)


def test_heads_reject_weights_of_unknown_tasks():
    with pytest.raises(ValueError, match=r"export.score_weights: unknown task\(s\) \['ctr'\]"):
        signatures.Heads(_FixedPredictions(), DEFAULT_TASKS, {"ctr": 1.0})


def test_signature_columns_by_side():
    fs = feature_set(FeaturesConfig(), ("click",))
    assert signatures.query_columns(fs) == ("user_id", "device", "country", "age_bucket", "ts")
    assert signatures.pair_columns(fs) == (
        "user_id",
        "item_id",
        "device",
        "country",
        "age_bucket",
        "category",
        "brand",
        "price",
        "ts",
    )


def test_model_names_use_the_prefix():
    assert export.model_names("shop") == {
        "ranker": "shop_ranker",
        "retriever": "shop_retriever",
        "recommender": "shop_recommender",
    }


def test_raw_arrays_fill_nulls_with_neutral_values_and_cast():
    table = pa.table(
        {
            "item_id": ["a", None],
            "price": pa.array([2.5, None], pa.float64()),
            "ts": pa.array([7, None], pa.int32()),
        }
    )
    out = export.raw_arrays(table, ("item_id", "price", "ts"), "catalog")
    assert out["item_id"].tolist() == ["a", ""]
    assert out["price"].dtype == np.float32 and out["price"][0] == 2.5
    assert math.isnan(out["price"][1])
    assert out["ts"].dtype == np.int64 and out["ts"].tolist() == [7, 0]


def test_raw_arrays_name_the_missing_column():
    table = pa.table({"item_id": ["a"]})
    with pytest.raises(ValueError, match=r"catalog: missing raw column\(s\) \['brand'\]"):
        export.raw_arrays(table, ("item_id", "brand"), "catalog")


@pytest.mark.parametrize(
    ("ids", "message"),
    [([], "no items"), (["a", ""], "row 1 has an empty item_id"), (["a", "b", "a"], "'a'")],
)
def test_bad_catalogues_are_rejected(ids, message):
    with pytest.raises(ValueError, match=message):
        export.check_catalog(np.array(ids, dtype=object))


def test_serialized_examples_parse_back_to_the_rows():
    rows = {
        "user_id": np.array(["u1", "u2"], dtype=object),
        "ts": np.array([5, 6], dtype=np.int64),
        "price": np.array([1.5, np.nan], dtype=np.float32),
    }
    parsed = tf.io.parse_example(
        export.serialize_examples(rows), raw_feature_spec(("user_id", "ts", "price"))
    )
    assert parsed["user_id"].numpy().tolist() == [b"u1", b"u2"]
    assert parsed["ts"].numpy().tolist() == [5, 6]
    assert parsed["price"].numpy()[0] == 1.5 and math.isnan(parsed["price"].numpy()[1])
