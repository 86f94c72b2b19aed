"""The Beam steps on a portable runner whose workers run in a Python without mtlrec.

Beam's own job service and an EXTERNAL worker pool stand in for Flink/Spark's job server
and their SDK containers: the workers get mtlrec only from the wheel the job stages
(`mtlrec.pipeline.staging`), installed by `deploy/beam_boot.py`.
"""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import grpc
import pytest

from mtlrec.deploy import beam_boot

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _service(command: list[str], port: int, log: pathlib.Path, env: dict | None = None):
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        ready = grpc.channel_ready_future(grpc.insecure_channel(f"localhost:{port}"))
        ready.result(timeout=120)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _worker_python(root: pathlib.Path) -> pathlib.Path:
    """A virtualenv with this environment's libraries (a .pth line, so the editable mtlrec
    finder of site-packages is not run) but not mtlrec: the worker image's stand-in."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    # Every site-packages this process reads (a venv may reach another through a .pth).
    libraries = [p for p in sys.path if p.endswith("site-packages")]
    (site / "site-packages" / "worker-deps.pth").write_text("\n".join(libraries) + "\n")
    return root / "bin" / "python"


def _mtlrec(*args: str, cwd: pathlib.Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mtlrec", *args], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(
        (cwd / "work" / "runs" / args[args.index("--run-id") + 1] / "manifest.json").read_text()
    )


def test_validate_and_preprocess_on_a_job_service_whose_workers_lack_mtlrec(tmp_path):
    python = _worker_python(tmp_path / "worker-venv")
    missing = subprocess.run(
        [python, "-c", "import mtlrec"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "No module named 'mtlrec'" in missing.stderr
    workers = tmp_path / "workers"
    workers.mkdir()
    pool_env = os.environ | {
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(workers),
    }
    job_port, pool_port = _free_port(), _free_port()
    job_service = [
        sys.executable,
        "-m",
        "apache_beam.runners.portability.local_job_service_main",
        "--port",
        str(job_port),
    ]
    pool = [
        str(python),
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        f"--service_port={pool_port}",
        f"--container_executable={beam_boot.__file__}",
    ]
    common = ["--data", "raw", "--workdir", "work"]
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtlrec",
            "generate",
            "--out",
            "raw",
            "--users",
            "200",
            "--items",
            "100",
            "--days",
            "7",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert generated.returncode == 0, generated.stderr
    direct = _mtlrec("validate", *common, "--run-id", "direct", cwd=tmp_path)

    portable = [
        "--",
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{pool_port}",
    ]
    with (
        _service(job_service, job_port, tmp_path / "job_service.log"),
        _service(pool, pool_port, tmp_path / "worker_pool.log", pool_env),
    ):
        _mtlrec("validate", *common, "--run-id", "portable", *portable, cwd=tmp_path)
        manifest = _mtlrec("preprocess", *common, "--run-id", "portable", *portable, cwd=tmp_path)

    def counts(result: dict) -> dict:
        return {k: v for k, v in result.items() if k != "dead_letter"}

    validated = manifest["steps"]["validate"]["result"]
    assert counts(validated) == counts(direct["steps"]["validate"]["result"])
    assert validated["accepted"]["impression"] > 10_000
    pre = manifest["steps"]["preprocess"]["result"]
    split = pre["train_examples"] + pre["validation_examples"] + pre["eval_examples"]
    assert split == validated["accepted"]["impression"]
    # The workers ran mtlrec from the staged wheel their boot installed.
    installed = sorted(workers.glob("beam-*/site/mtlrec/pipeline/staging.py"))
    assert installed, (tmp_path / "worker_pool.log").read_text()[-3000:]
