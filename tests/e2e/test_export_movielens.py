"""Export with MovieLens-style features: multivalent genres (ragged), the user history
(ragged, through the item_id table), a `rating` regression task."""

import functools
import tempfile

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from mtlrec.deploy import export
from mtlrec.deploy.config import ExportConfig
from mtlrec.features.config import MOVIELENS_FEATURES, FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.features.preprocessing import preprocessing_fn, raw_feature_spec
from mtlrec.models.config import ModelConfig, TaskConfig

pytestmark = pytest.mark.slow

FEATURES = FeaturesConfig(enabled=MOVIELENS_FEATURES, history_length=3)
TASKS = (
    TaskConfig(name="retrieval", kind="retrieval", retrieval_on_clicks=False),
    TaskConfig(name="rating", kind="regression", label="rating"),
)
FS = feature_set(FEATURES, ("rating",))
GENRES = ["Action", "Action|Comedy", "Drama", "Comedy|Drama|Horror", "Horror", "Drama|Action"]
ITEMS = [
    {"item_id": f"m{i}", "genres": GENRES[i % len(GENRES)], "release_year": 1960.0 + 3 * i}
    for i in range(12)
]
QUERY = ("user_id", "gender", "occupation", "age_bucket", "ts", "history")
DAY = 86_400_000


def _rows():
    """Ratings with the history the pipeline gives them (the user's last 3 items before)."""
    rows, seen = [], {}
    for n in range(60):
        item = ITEMS[(7 * n) % len(ITEMS)]
        user = seen.setdefault(f"u{n % 9}", [])
        # m99 is in no catalogue: an OOV row of the item table, served all the same.
        history = "|".join(reversed(user[-3:])) or ("m99" if n % 4 == 0 else "")
        user.append(item["item_id"])
        rows.append(
            {
                "user_id": f"u{n % 9}",
                "gender": "MF"[n % 2],
                "occupation": ["writer", "student", "doctor"][n % 3],
                "age_bucket": ["18", "25", "35"][n % 3],
                "ts": 1_704_067_200_000 + n * DAY // 5,
                "rating": float(1 + n % 5),
                "history": history,
                **item,
            }
        )
    return rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    from mtlrec.models.data import vocab_sizes_from_tft
    from mtlrec.models.model import build_model

    root = tmp_path_factory.mktemp("movielens_export")
    rows = _rows()
    columns = tuple(rows[0])
    metadata = tft.DatasetMetadata.from_feature_spec(raw_feature_spec(columns))
    with (
        beam.Pipeline(argv=["--runner=FnApiRunner"]) as p,
        tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=root)),
    ):
        transform_fn = (p | beam.Create(rows[:45]), metadata) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, feature_set=FS)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform_fn"))
    vocab = vocab_sizes_from_tft(root / "transform_fn", FS)
    tf.keras.utils.set_random_seed(3)
    model = build_model(FS, TASKS, ModelConfig(), vocab, serving_position=0)
    cfg = ExportConfig(top_k=4, retrieve_n=8, score_weights={"rating": 1.0}, warmup_requests=3)
    published = export.export_all(
        model,
        root / "transform_fn",
        pa.Table.from_pylist(ITEMS),
        pa.Table.from_pylist(rows[45:]),
        cfg,
        FEATURES,
        TASKS,
        root / "serving",
    )
    return model, tft.TFTransformOutput(str(root / "transform_fn")), published, rows[45:]


def test_recommender_ranks_ragged_genre_items_like_the_in_memory_model(exported):
    model, tft_output, published, rows = exported
    loaded = tf.saved_model.load(published["mtlrec_recommender"])
    query = {c: tf.constant([r[c] for r in rows[:3]]) for c in QUERY}
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**query).items()}

    assert out["item_ids"].shape == (3, 4)
    by_id = {item["item_id"]: item for item in ITEMS}
    for b in range(3):
        chosen = [by_id[i.decode()] for i in out["item_ids"][b]]
        raw = {c: tf.constant([rows[b][c]] * 4) for c in QUERY}
        raw.update({c: tf.constant([it[c] for it in chosen]) for c in ITEMS[0]})
        transformed = tft_output.transform_raw_features(raw)
        assert isinstance(transformed["genres"], tf.RaggedTensor)
        assert isinstance(transformed["history"], tf.RaggedTensor)
        rating = model.predict_tasks({n: transformed[n] for n in FS.names})["rating"].numpy()
        np.testing.assert_allclose(out["rating"][b], rating, atol=1e-5)
        np.testing.assert_allclose(out["score"][b], rating, atol=1e-5)
        assert (np.diff(out["score"][b]) <= 0).all()
    # The history is an input of the served query, not ignored: another one, other scores.
    other = loaded.signatures["serving_default"](**{**query, "history": tf.constant(["m1"] * 3)})
    assert not np.allclose(other["retrieval_score"].numpy(), out["retrieval_score"])


def test_ranker_serves_rating_in_label_space_from_raw_and_example_inputs(exported):
    model, tft_output, published, rows = exported
    loaded = tf.saved_model.load(published["mtlrec_ranker"])
    columns = tuple(dict.fromkeys(f.source for f in FS.features))
    raw = {c: tf.constant([r[c] for r in rows]) for c in columns}
    from_raw = loaded.signatures["serving_default"](**raw)["rating"].numpy()
    examples = export.serialize_examples({c: v.numpy() for c, v in raw.items()})
    from_examples = loaded.signatures["predict_examples"](examples=tf.constant(examples))
    transformed = tft_output.transform_raw_features(raw)
    want = model.predict_tasks({n: transformed[n] for n in FS.names})["rating"].numpy()
    np.testing.assert_allclose(from_raw, want, atol=1e-5)
    np.testing.assert_allclose(from_examples["rating"].numpy(), want, atol=1e-5)
