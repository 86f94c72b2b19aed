"""deploy/serving: the TF Serving, docker-compose and Kubernetes files agree with the export."""

import pathlib
import re

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from mtlrec.deploy.config import ExportConfig
from mtlrec.deploy.export import model_names

SERVING = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "serving"
# Fields of tensorflow.serving.BatchingParameters (session_bundle_config.proto).
BATCHING_FIELDS = {
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
}


def _models_config() -> model_server_config_pb2.ModelServerConfig:
    text = (SERVING / "models.config").read_text()
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def _batching() -> dict[str, int]:
    fields = {}
    for line in (SERVING / "batching_parameters.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
            assert match, line
            fields[match[1]] = int(match[2])
    return fields


def test_models_config_serves_every_exported_model_from_models_dir():
    configs = _models_config().model_config_list.config
    expected = model_names(ExportConfig().model_prefix).values()
    assert [c.name for c in configs] == list(expected)
    for c in configs:
        assert c.base_path == f"/models/{c.name}"
        assert c.model_platform == "tensorflow"


def test_batching_parameters_are_known_fields_and_match_the_cpu_limit():
    fields = _batching()
    assert set(fields) <= BATCHING_FIELDS
    # A ranker request of 1 user x 100 candidates is one task of size 100.
    assert fields["max_batch_size"] >= 100
    deployment = yaml.safe_load((SERVING / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert fields["num_batch_threads"] == int(container["resources"]["limits"]["cpu"])


def test_docker_compose_runs_tf_serving_with_the_config_files():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tfserving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert {"8500:8500", "8501:8501"} <= set(service["ports"])
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in service["command"])
    mounts = {
        target: source for source, target, _ in (v.rsplit(":", 2) for v in service["volumes"])
    }
    assert flags["enable_batching"] == "true"
    for flag in ("model_config_file", "batching_parameters_file"):
        source = mounts[flags[flag]]
        assert (SERVING / source).is_file(), source
    assert "/models" in mounts


def test_kubernetes_probe_and_service_target_the_served_models():
    deployment = yaml.safe_load((SERVING / "k8s" / "deployment.yaml").read_text())
    service = yaml.safe_load((SERVING / "k8s" / "service.yaml").read_text())
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    names = {c.name for c in _models_config().model_config_list.config}
    probe = container["readinessProbe"]["httpGet"]
    assert re.fullmatch(r"/v1/models/(\w+)", probe["path"])[1] in names
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "rest": 8501}
    assert probe["port"] == "rest"
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert pathlib.PurePosixPath(flags["model_config_file"]).parent.as_posix() in mounted
    assert "/models" in mounted
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)


def _deployment_container() -> tuple[dict, dict]:
    deployment = yaml.safe_load((SERVING / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_the_k8s_deployment_runs_unprivileged_on_a_read_only_root():
    pod, container = _deployment_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 1000
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["models"]["readOnly"] is True and mounts["config"]["readOnly"] is True
    # The only writable place is a size-limited /tmp.
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "sizeLimit" in volumes["tmp"]["emptyDir"]


def test_the_k8s_deployment_has_resource_limits_and_probes_on_the_model_status():
    _, container = _deployment_container()
    limits = container["resources"]["limits"]
    assert set(limits) == {"cpu", "memory"}
    names = set(model_names(ExportConfig().model_prefix).values())
    for probe in ("readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert path.removeprefix("/v1/models/") in names, probe


def test_docker_compose_runs_as_non_root_with_limits_and_a_model_status_healthcheck():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tfserving"]
    assert service["user"] == "1000:1000"
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert float(service["cpus"]) == _batching()["num_batch_threads"]
    assert service["mem_limit"] == "4g"
    check = service["healthcheck"]
    command = " ".join(check["test"])
    names = model_names(ExportConfig().model_prefix).values()
    assert any(f"GET /v1/models/{name} " in command for name in names)
    assert "AVAILABLE" in command and "8501" in command
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    volumes = service["volumes"]
    assert all(v.endswith(":ro") for v in volumes)
