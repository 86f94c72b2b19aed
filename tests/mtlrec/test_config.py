"""The typed configuration: defaults, YAML, overrides and one-line errors."""

import pytest

from mtlrec.config import PRESETS, ConfigError, data_preset, load_config, schema_lines
from mtlrec.features.schema import DATA_DESCRIPTION


def test_defaults_declare_the_four_default_tasks():
    config = load_config()
    assert [t.name for t in config.tasks] == ["retrieval", "click", "purchase", "dwell"]
    assert config.task("purchase").esmm_parent == "click"
    assert config.model.sharing == "shared_bottom"


def test_yaml_file_and_override_compose(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  sharing: mmoe\n  num_experts: 3\ntraining:\n  epochs: 1\n")
    config = load_config(path, ["model.num_experts=5", "tasks.dwell.weight=0.25"])
    assert config.model.sharing == "mmoe"
    assert config.model.num_experts == 5
    assert config.training.epochs == 1
    assert config.task("dwell").weight == 0.25
    assert config.task("click").weight == 1.0


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["training.epoch=3"])
    assert str(e.value) == (
        "config error: unknown key 'training.epoch'; valid keys: mode, optimizer, "
        "learning_rate, lr_schedule, momentum, l2_embedding, clipnorm, batch_size, epochs, "
        "steps_per_epoch, early_stopping_patience, steps_per_execution, checkpoint_every_steps, "
        "shuffle_buffer, input_memory_mb, seed, warm_start, strategy"
    )


def test_unknown_section_names_the_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("modle:\n  sharing: mmoe\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        "config error: unknown key 'modle'; valid keys: data, features, tasks, model, "
        "training, evaluation, export, runner"
    )


def test_wrong_type_names_the_key_and_the_value():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["training.batch_size=big"])
    assert str(e.value) == (
        "config error: training.batch_size: Input should be a valid integer, unable to parse "
        "string as an integer (got 'big')"
    )


def test_bad_choice_lists_the_valid_choices():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["model.sharing=moe"])
    assert str(e.value) == (
        "config error: model.sharing: Input should be 'shared_bottom', 'mmoe', 'ple' or "
        "'cross_stitch' (got 'moe')"
    )


def test_task_names_in_other_sections_are_checked_against_the_tasks():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["export.score_weights={clicks: 1.0}"])
    assert str(e.value) == (
        "config error: export.score_weights: unknown task(s) ['clicks']; "
        "tasks: ['retrieval', 'click', 'purchase', 'dwell']"
    )


def test_override_of_a_missing_task_lists_the_tasks():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["tasks.clicks.weight=2"])
    assert str(e.value) == (
        "--set tasks.clicks.weight: no task 'clicks'; tasks: "
        "['retrieval', 'click', 'purchase', 'dwell']"
    )


def test_unknown_key_inside_a_task_is_named_by_task():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["tasks.click.wieght=2"])
    assert str(e.value).startswith("config error: unknown key 'tasks.click.wieght'; valid keys: ")


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"expected section.key=value"):
        load_config(overrides=["model.sharing"])
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_changes_with_any_value():
    assert load_config().sha256() == load_config().sha256()
    assert load_config().sha256() != load_config(overrides=["training.seed=7"]).sha256()


def test_schema_documents_every_field_with_default_and_meaning():
    lines = schema_lines()
    assert "training.learning_rate: float = 0.003  # Initial learning rate." in lines
    leaf_lines = [line for line in lines if " = " in line]
    assert all(line.split("  # ", 1)[1].strip() for line in leaf_lines)


def test_partition_window_is_open_ended_where_a_bound_is_missing():
    assert load_config().data.partition_window() is None
    window = load_config(overrides=["data.start='2026-01-02'"]).data.partition_window()
    assert window == ("2026-01-02", "9999-12-31")


def test_default_beam_runner_is_the_local_runner_on_every_core():
    # Beam's DirectRunner first tries to download and run Prism, a different engine, on any
    # machine with network access; the default names the runner it falls back to instead.
    import apache_beam as beam
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from mtlrec.pipeline.preprocess import pipeline_options

    options = pipeline_options(load_config(None).job_config())
    assert isinstance(beam.Pipeline(options=options).runner, FnApiRunner)
    direct = options.view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("multi_processing", 0)


def test_every_preset_is_a_valid_configuration():
    tasks = {name: [t.name for t in load_config(preset=name).tasks] for name in PRESETS}
    assert tasks == {
        "clickwatch": ["retrieval", "click", "dwell"],
        "movielens": ["retrieval", "rating"],
        "synthetic": ["retrieval", "click", "purchase", "dwell"],
    }
    assert load_config(preset="synthetic") == load_config()


def test_the_config_file_applies_over_the_preset_and_overrides_over_both(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 3\n  batch_size: 64\n")
    config = load_config(path, ["training.batch_size=32"], preset="movielens")
    # the file replaces one key of the preset's training section and keeps the other
    assert (config.training.epochs, config.training.lr_schedule) == (3, "cosine")
    assert config.training.batch_size == 32
    assert config.data.interactions is not None and config.data.interactions.table == "interactions"


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config(preset="movielen")
    assert str(e.value) == (
        "--preset 'movielen': no such preset; valid: clickwatch, movielens, synthetic"
    )


def test_a_data_directory_names_its_preset(tmp_path):
    assert data_preset(tmp_path) is None and data_preset(None) is None
    (tmp_path / DATA_DESCRIPTION).write_text("preset: movielens\n")
    assert data_preset(tmp_path) == "movielens"
    (tmp_path / DATA_DESCRIPTION).write_text("preset: [movielens]\n")
    with pytest.raises(ConfigError, match=r"mtlrec-data.yaml: preset must be a name"):
        data_preset(tmp_path)
