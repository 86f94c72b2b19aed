"""Warm start: vocabulary rows carried by token, other weights by name, a better first epoch."""

import numpy as np
import pytest

from mtlrec.models.warm_start import Source, carry_rows, row_mapping, warm_start

BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_rows_follow_their_tokens_and_oov_buckets_stay():
    old = [b"a", b"b", b"c"]
    new = [b"c", b"a", b"d", b"e"]
    new_rows, old_rows = row_mapping(old, new)
    assert new_rows.tolist() == [0, 1] and old_rows.tolist() == [2, 0]
    old_table = np.array([[1.0], [2.0], [3.0], [9.0]])  # 3 tokens + 1 OOV bucket
    fresh = np.array([[0.5], [0.5], [0.5], [0.5], [-1.0]])  # 4 tokens + 1 OOV bucket
    carried = carry_rows(fresh, old_table, (new_rows, old_rows), (3, 4))
    # c takes c's row, a takes a's, d and e keep their fresh rows, the OOV bucket carries.
    assert carried[:, 0].tolist() == [3.0, 1.0, 0.5, 0.5, 9.0]
    changed_buckets = carry_rows(fresh[:4], old_table, (new_rows, old_rows), (3, 3))
    assert changed_buckets[:, 0].tolist() == [3.0, 1.0, 0.5, 9.0]
    assert row_mapping([b"x"], [b"y"])[0].size == 0


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    """Two overlapping date windows of one generated log, each validated and preprocessed."""
    from mtlrec.config import Config
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.pipeline.preprocess import run_preprocess, run_validate

    root = tmp_path_factory.mktemp("warm")
    generate(root / "raw", users=400, items=150, days=10, seed=9, progress=False)
    out = {}
    for name, (start, end) in {"first": ("2026-01-22", "2026-01-27"),
                               "second": ("2026-01-25", "2026-01-31")}.items():  # fmt: skip
        config = Config.model_validate({"data": {"start": start, "end": end}})
        run_validate(
            config.job_config(), root / "raw", root / name / "validate", beam_args=BEAM_ARGS
        )
        run_preprocess(
            config.job_config(), root / name / "validate", root / name / "prep", beam_args=BEAM_ARGS
        )
        out[name] = root / name
    return out


def _train(prep, out, warm=None, **training):
    from mtlrec.config import Config
    from mtlrec.models.train import train

    c = Config.model_validate({"training": training})
    return train(c.tasks, c.model, c.training, c.features, prep, out, warm_start_from=warm)


@pytest.mark.slow
def test_a_warm_start_carries_rows_by_id_and_beats_a_cold_first_epoch(windows, tmp_path):
    from mtlrec.models.model import load_model

    first = windows["first"] / "prep"
    _train(first, tmp_path / "first", epochs=3, early_stopping_patience=None)
    source = Source(tmp_path / "first" / "model", first / "transform_fn")
    second = windows["second"] / "prep"
    short = {"epochs": 1, "steps_per_epoch": 15, "early_stopping_patience": None}
    cold = _train(second, tmp_path / "cold", **short)
    warm = _train(second, tmp_path / "warm", warm=source, **short)

    report = warm["warm_start"]
    assert cold["warm_start"] is None and report["source"] == str(source.model_dir)
    assert report["variables_fresh"] == [] and report["variables_copied"] > 10
    users = report["rows"]["user_id"]
    assert users["carried"] > 100 and users["new"] >= 0 and users["dropped"] >= 0
    # One short epoch from the earlier model beats one from scratch on every task.
    for task, loss in cold["eval_losses"].items():
        assert warm["eval_losses"][task] < loss, task
    assert warm["eval"]["click"]["auc"] > cold["eval"]["click"]["auc"]

    # Before any step, a user in both vocabularies has exactly the earlier model's row.
    import tensorflow_transform as tft

    from mtlrec.models.data import vocab_sizes_from_tft
    from mtlrec.models.model import build_model

    earlier = load_model(source.model_dir, None)
    later_tft = second / "transform_fn"
    model = build_model(
        earlier.feature_set,
        tuple(earlier.task_configs.values()),
        _model_config(earlier),
        vocab_sizes_from_tft(later_tft, earlier.feature_set),
        serving_position=earlier.serving_position,
    )
    warm_start(model, source, later_tft)
    old_vocab = tft.TFTransformOutput(str(source.tft_dir)).vocabulary_by_name("user_id")
    new_vocab = tft.TFTransformOutput(str(later_tft)).vocabulary_by_name("user_id")
    # A user whose row index moved: carried by id, not by index.
    token = next(
        t for t in new_vocab if t in old_vocab and old_vocab.index(t) != new_vocab.index(t)
    )
    old_row, new_row = old_vocab.index(token), new_vocab.index(token)
    np.testing.assert_array_equal(
        model.query_tower.embeddings["user_id"].embeddings.numpy()[new_row],
        earlier.query_tower.embeddings["user_id"].embeddings.numpy()[old_row],
    )


def _model_config(model):
    from mtlrec.models.config import ModelConfig

    return ModelConfig.model_validate(model.spec["model"])
