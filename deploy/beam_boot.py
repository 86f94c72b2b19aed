#!/usr/bin/env python3
"""Boot of a Beam Python SDK worker on a host without Docker: what the SDK container's boot does.

A portable runner (Flink, Spark, Beam's own job service) starts workers through an
environment. The default one is a Docker image whose boot fetches the job's staged files
(`--extra_package`, `--requirements_file`), installs them and starts the SDK harness. For
the `EXTERNAL` environment, Beam's worker pool runs this file as that boot:

    python -m apache_beam.runners.worker.worker_pool_main --service_port=50000 \\
        --container_executable=/path/to/deploy/beam_boot.py
    mtlrec run -- --runner=PortableRunner --job_endpoint=HOST:8099 \\
        --environment_type=EXTERNAL --environment_config=HOST:50000

It gets the boot flags of the container contract (`--id`, `--provision_endpoint`,
`--artifact_endpoint`, `--control_endpoint`, `--logging_endpoint`), so the worker's Python
needs TensorFlow, Beam and tf.Transform but not mtlrec: the job's staged wheel is installed
into the worker's own directory and put first on its path. It imports nothing of mtlrec.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (
    beam_artifact_api_pb2,
    beam_artifact_api_pb2_grpc,
    beam_provision_api_pb2,
    beam_provision_api_pb2_grpc,
    beam_runner_api_pb2,
    endpoints_pb2,
)
from google.protobuf import json_format, text_format

EXTRA_PACKAGES = "extra_packages.txt"
"""The list of `--extra_package` files, in order, that Beam's stager writes."""
REQUIREMENTS = "requirements.txt"


def _flags(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("id", "provision_endpoint", "artifact_endpoint", "control_endpoint"):
        parser.add_argument(f"--{flag}", required=True)
    parser.add_argument("--logging_endpoint", default="")
    parser.add_argument("--semi_persist_dir", default="")
    return parser.parse_args(argv)


def _staged_name(artifact: beam_runner_api_pb2.ArtifactInformation) -> str:
    if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        raise ValueError(f"beam_boot: staged artifact with role {artifact.role_urn!r}")
    payload = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
    return payload.staged_name


def retrieve(
    dependencies, endpoint: str, worker_id: str, into: pathlib.Path
) -> dict[str, pathlib.Path]:
    """Writes the job's staged files into `into`; returns staged name -> file."""
    metadata = [("worker_id", worker_id)]
    stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(grpc.insecure_channel(endpoint))
    resolved = stub.ResolveArtifacts(
        beam_artifact_api_pb2.ResolveArtifactsRequest(artifacts=list(dependencies)),
        metadata=metadata,
    ).replacements
    files = {}
    for artifact in resolved:
        name = _staged_name(artifact)
        path = into / name
        with open(path, "wb") as out:
            request = beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact)
            for chunk in stub.GetArtifact(request, metadata=metadata):
                out.write(chunk.data)
        files[name] = path
    return files


def install(files: dict[str, pathlib.Path], site: pathlib.Path) -> None:
    """Installs the requirements, then the extra packages in their listed order, into
    `site` (the worker's own directory: the host environment is left as it is)."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site)]
    if REQUIREMENTS in files:
        subprocess.run([*pip, "-r", str(files[REQUIREMENTS])], check=True)
    if EXTRA_PACKAGES in files:
        names = files[EXTRA_PACKAGES].read_text().split()
        packages = [str(files[n]) for n in names]
        # --no-deps: the worker's Python already holds TensorFlow, Beam and tf.Transform,
        # and a --target install would copy them again.
        subprocess.run([*pip, "--no-deps", *packages], check=True)


def harness_environment(
    info: beam_provision_api_pb2.ProvisionInfo,
    flags: argparse.Namespace,
    work: pathlib.Path,
    site: pathlib.Path,
) -> dict[str, str]:
    """The environment `apache_beam.runners.worker.sdk_worker_main` reads."""

    def descriptor(url: str) -> str:
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    env = dict(os.environ)
    env.update(
        WORKER_ID=flags.id,
        PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
        CONTROL_API_SERVICE_DESCRIPTOR=descriptor(flags.control_endpoint),
        SEMI_PERSISTENT_DIRECTORY=str(work),
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
        PYTHONPATH=os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p),
    )
    if flags.logging_endpoint:
        env["LOGGING_API_SERVICE_DESCRIPTOR"] = descriptor(flags.logging_endpoint)
    return env


def main(argv: list[str] | None = None) -> None:
    flags = _flags(argv)
    work = pathlib.Path(flags.semi_persist_dir or tempfile.mkdtemp(prefix=f"beam-{flags.id}-"))
    staged, site = work / "staged-files", work / "site"
    staged.mkdir(parents=True, exist_ok=True)
    provision = beam_provision_api_pb2_grpc.ProvisionServiceStub(
        grpc.insecure_channel(flags.provision_endpoint)
    )
    info = provision.GetProvisionInfo(
        beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", flags.id)]
    ).info
    files = retrieve(info.dependencies, flags.artifact_endpoint, flags.id, staged)
    install(files, site)
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.execve(sys.executable, command, harness_environment(info, flags, work, site))


if __name__ == "__main__":
    main()
