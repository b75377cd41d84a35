"""The distributed mode's image and manifests (issue #16): what can be checked without a
container engine or a cluster. The compose file passes `docker-compose config` (the
Compose specification's validator, from Debian's docker-compose); the pod template is
read by the Kubernetes client's own models; the Dockerfile keeps what the official chart
and compose file rely on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SECRETS = {"AIRFLOW_JWT_SECRET": "jwt", "AIRFLOW_API_SECRET_KEY": "key", "LOOPML_FAMILY": "breast_cancer"}
ROLES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian's package) is installed by `make install`"
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [binary, "-f", str(DOCKER / "compose.yaml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DOCKER,
    )


def test_compose_file_is_valid_and_has_every_role():
    out = _compose("config", env=SECRETS)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert ROLES | {"postgres", "redis", "mlflow", "bentoml", "airflow-init"} <= set(services)
    for role in ROLES:
        env = services[role]["environment"]
        assert services[role]["user"] == "50000:0" and env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["LOOPML_MLFLOW_URI"].startswith("http://mlflow") and env["LOOPML_DVC_REMOTE"].startswith("http://")
        # Optuna's journal in a PostgreSQL table (docs/DISTRIBUTED.md says why)
        assert env["LOOPML_OPTUNA_URI"].startswith("journal+postgresql") and "entrypoint" not in services[role]
        assert env["LOOPML_INFERENCE_LOG_URI"].startswith("postgresql")
    assert "--serve-artifacts" in " ".join(services["mlflow"]["command"])
    assert services["bentoml"]["environment"]["LOOPML_INFERENCE_LOG_URI"].endswith("/inference")
    assert int(services["airflow-worker"]["deploy"]["replicas"]) >= 2


def test_compose_refuses_to_start_without_its_secrets():
    out = _compose("config", "-q", env={"LOOPML_FAMILY": "f"})
    assert out.returncode != 0 and "set AIRFLOW_JWT_SECRET" in out.stderr + out.stdout


def test_the_image_keeps_the_official_images_contract():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert re.search(r"^FROM apache/airflow:slim-\$\{AIRFLOW_VERSION\}-python3\.11$", dockerfile, re.M)
    assert "ENTRYPOINT" not in instructions, "the chart's `bash -c` commands need the official entrypoint"
    assert [line for line in dockerfile.splitlines() if line.startswith("USER ")][-1] == "USER airflow"
    pinned = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert f"apache-airflow=={pinned}\n" in (REPO / "requirements.lock").read_text(), "the base image matches the lock"


def test_pod_template_is_a_valid_pod_for_the_kubernetes_executor():
    raw = yaml.safe_load((DOCKER / "helm" / "pod-template.yaml").read_text())
    client = ApiClient()
    pod = client._ApiClient__deserialize(raw, "V1Pod")  # the client's own models: unknown fields are dropped
    assert client.sanitize_for_serialization(pod) == raw, "a field the Kubernetes API does not know"
    (base,) = pod.spec.containers
    assert base.name == "base" and pod.spec.security_context.run_as_user == 50000
    assert {m.mount_path for m in base.volume_mounts} == {"/tmp/loopml"}


def test_helm_values_select_the_profile_and_the_image():
    values = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor" and values["uid"] == 50000
    env = {e["name"]: e for e in yaml.safe_load(values["extraEnv"])}
    assert env["LOOPML_EXECUTOR"]["value"] == "kubernetes"
    image = f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    assert env["LOOPML_IMAGE"]["value"] == image
    assert values["config"]["core"]["dags_folder"] == "/opt/loopml/dags"
    template = yaml.safe_load((DOCKER / "helm" / "pod-template.yaml").read_text())
    assert template["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize("path", sorted(DOCKER.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_yaml(path):
    assert yaml.safe_load(path.read_text())
