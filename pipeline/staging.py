"""Ships mtlrec to remote Beam workers: a wheel built from the source, as `--extra_package`.

Remote runners (Dataflow, Flink, Spark, a portable job service) run the pipeline's DoFns
and tf.Transform's preprocessing_fn in SDK workers that have only what the job stages;
they must import `mtlrec.*` to unpickle them. Beam's `--setup_file` needs a setup.py, so
a pyproject project stages a built wheel, which the workers' boot installs (Beam's
"Managing Python pipeline dependencies"). Local runners, and LOOPBACK workers that run
inside this process, use the installed package and stage nothing.
"""

from __future__ import annotations

import functools
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
)

DISTRIBUTION = "mtlrec"
REMOTE_RUNNERS = frozenset(
    {"PortableRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PrismRunner"}
)
"""Runners whose SDK workers live outside this process (short names, as `--runner` takes)."""


def workers_are_local(options: PipelineOptions) -> bool:
    """Whether the job's workers run on this machine with this installation: a local
    runner, or LOOPBACK workers of a portable one."""
    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else ""
    if name.rsplit(".", 1)[-1] not in REMOTE_RUNNERS:
        return True
    return (options.view_as(PortableOptions).environment_type or "").upper() == "LOOPBACK"


def needs_staging(options: PipelineOptions) -> bool:
    """Whether the job's workers need mtlrec staged: not local, and neither a setup file
    nor an mtlrec package already given."""
    if workers_are_local(options):
        return False
    setup = options.view_as(SetupOptions)
    given = [pathlib.Path(p).name for p in setup.extra_packages or ()]
    return not setup.setup_file and not any(n.startswith(f"{DISTRIBUTION}-") for n in given)


def staged_args(beam_args: Sequence[str]) -> list[str]:
    """`beam_args`, plus `--extra_package=<mtlrec wheel>` when the workers need it."""
    args = list(beam_args)
    if needs_staging(PipelineOptions(args)):
        args.append(f"--extra_package={project_wheel(source_root())}")
    return args


def source_root() -> pathlib.Path:
    """The source tree this mtlrec runs from (an editable install maps the rooms onto it).

    Raises:
      RuntimeError: installed from a wheel or an index: there is no source to build from.
    """
    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise RuntimeError(
            "staging mtlrec for remote Beam workers: it is not installed from a source tree; "
            "pass --extra_package=<an mtlrec wheel> (or use a worker image with mtlrec "
            "installed and --setup_file/--extra_package of your own)"
        )
    return root


@functools.cache
def project_wheel(root: pathlib.Path) -> pathlib.Path:
    """Builds the wheel of the project at `root` once per process (pip, no dependencies:
    the workers' image or requirements provide TensorFlow, Beam and tf.Transform)."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="mtlrec-wheel-"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(root)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(out.glob(f"{DISTRIBUTION}-*.whl"))
    if built.returncode != 0 or not wheels:
        tail = built.stderr.strip().splitlines()[-1:] or ["no wheel written"]
        raise RuntimeError(f"staging mtlrec: building the wheel of {root} failed: {tail[0]}")
    return wheels[0]
