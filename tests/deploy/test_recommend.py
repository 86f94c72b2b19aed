"""Batch recommendations through Beam RunInference, against a small real SavedModel.

The exported recommender itself is exercised end to end in tests/test_end_to_end.py; here a
hand-built SavedModel with the same signature shape pins the job's exact output.
"""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtlrec.cli import main


def _save_toy_recommender(path):
    import tensorflow as tf

    catalogue = tf.constant(["i0", "i1", "i2", "i3", "i4"])

    class Recommender(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None], tf.int64, name="ts"),
            ]
        )
        def serve(self, user_id, ts):
            # Scores depend on the user (its hash) and on ts being filled in.
            user = tf.cast(tf.strings.to_hash_bucket_fast(user_id, 97), tf.float32)
            offsets = tf.constant([0.0, 3.0, 1.0, 4.0, 2.0])
            raw = tf.math.floormod(user[:, None] * 7.0 + offsets[None, :] * 13.0, 17.0)
            raw += tf.cast(ts[:, None] > 0, tf.float32)
            scores, idx = tf.math.top_k(raw, k=3)
            return {
                "item_ids": tf.gather(catalogue, idx),
                "scores": scores,
                "p_click": tf.sigmoid(scores),
            }

    module = Recommender()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return module


def test_recommend_writes_k_sorted_rows_per_user_equal_to_the_model(tmp_path):
    import tensorflow as tf

    model_dir = tmp_path / "model"
    _save_toy_recommender(model_dir)
    users = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2", "u3"]}), users)

    assert (
        main(
            [
                "recommend",
                "--model",
                str(model_dir),
                "--users",
                str(users),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )

    rows = pa.concat_tables(
        pq.read_table(f) for f in sorted((tmp_path / "out").glob("*.parquet"))
    ).to_pylist()
    assert len(rows) == 9
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    for user in ("u1", "u2", "u3"):
        mine = sorted((r for r in rows if r["user_id"] == user), key=lambda r: r["rank"])
        assert [r["rank"] for r in mine] == [1, 2, 3]
        scores = [r["score"] for r in mine]
        assert scores == sorted(scores, reverse=True)
        direct = serve(user_id=tf.constant([user]), ts=tf.constant([1], tf.int64))
        assert [r["item_id"] for r in mine] == [b.decode() for b in direct["item_ids"][0].numpy()]
        assert scores == pytest.approx(direct["scores"][0].numpy().tolist())
        assert [r["p_click"] for r in mine] == pytest.approx(direct["p_click"][0].numpy().tolist())


def test_users_file_without_user_id_is_one_clear_error(tmp_path, capsys):
    model_dir = tmp_path / "model"
    _save_toy_recommender(model_dir)
    users = tmp_path / "users.parquet"
    pq.write_table(pa.table({"uid": ["u1"]}), users)
    code = main(
        [
            "recommend",
            "--model",
            str(model_dir),
            "--users",
            str(users),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert capsys.readouterr().err == (
        f"mtlrec: error: --users {users}: no user_id column; columns: ['uid']\n"
    )


def test_csv_users_header_is_parsed_as_csv(tmp_path):
    from mtlrec.deploy.recommend import _check_users_file

    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"country, region","user_id"\n"DE, BY",u1\n')
    _check_users_file(quoted)
    missing = tmp_path / "missing.csv"
    missing.write_text('"user_id, legacy",x\n')
    with pytest.raises(ValueError, match=r"no user_id column; columns: \['user_id, legacy', 'x'\]"):
        _check_users_file(missing)
