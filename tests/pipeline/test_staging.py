"""Which runners get mtlrec staged, and the wheel they get."""

import zipfile

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from mtlrec.pipeline.staging import needs_staging, project_wheel, source_root, staged_args


@pytest.mark.parametrize(
    ("args", "staged"),
    [
        ([], False),
        (["--runner=DirectRunner"], False),
        (["--runner=PortableRunner", "--environment_type=EXTERNAL"], True),
        (["--runner=PortableRunner", "--environment_type=LOOPBACK"], False),
        (["--runner=FlinkRunner"], True),
        (["--runner=SparkRunner", "--environment_type=DOCKER"], True),
        (["--runner=DataflowRunner", "--setup_file=./setup.py"], False),
        (["--runner=DataflowRunner", "--extra_package=/w/mtlrec-0.1.0-py3-none-any.whl"], False),
        (["--runner=DataflowRunner", "--extra_package=/w/other-1.0-py3-none-any.whl"], True),
    ],
)
def test_only_workers_outside_this_process_without_mtlrec_given_get_it_staged(args, staged):
    assert needs_staging(PipelineOptions(args)) is staged


def test_a_local_runner_keeps_its_arguments_unchanged():
    args = ["--runner=DirectRunner", "--direct_num_workers=2"]
    assert staged_args(args) == args


@pytest.mark.slow
def test_a_remote_runner_gets_the_wheel_of_this_source_with_every_room():
    args = staged_args(["--runner=FlinkRunner", "--flink_master=[local]"])
    assert args[:2] == ["--runner=FlinkRunner", "--flink_master=[local]"]
    wheel = args[2].removeprefix("--extra_package=")
    assert wheel == str(project_wheel(source_root()))
    names = set(zipfile.ZipFile(wheel).namelist())
    # The package-dir mapping puts each top-level room under the one namespace.
    for module in ("features/declarations", "pipeline/staging", "models/model", "deploy/beam_boot"):
        assert f"mtlrec/{module}.py" in names
