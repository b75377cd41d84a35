"""Trials as Kubernetes pods (issue #16): an algorithm's `resources` become its worker pods'
requests and limits, rendered by KubernetesPodOperator itself and checked against the
Kubernetes API models; under the kubernetes profile the pipelines map pods over the slots.
No cluster here: what a cluster would receive is what these tests check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient, V1Pod
from kubernetes.utils import parse_quantity

from automl_tasks.algorithms.registry import builtin_specs
from automl_tasks.algorithms.spec import Resources, load_spec
from automl_tasks.core.errors import ConfigurationError
from automl_tasks.core.profile import DeploymentProfile
from automl_tasks.core.settings import Workspace
from operators.trial_pods import TrialPodOperator, pod_slots, worker_pods

REPO = Path(__file__).resolve().parents[2]
K8S_ENV = {
    "LOOPML_EXECUTOR": "kubernetes",
    "LOOPML_IMAGE": "registry.example/loopml:1.0",
    "LOOPML_NAMESPACE": "automl",
    "LOOPML_OPTUNA_URI": "postgresql+psycopg2://loopml@pg/optuna",
    "LOOPML_MLFLOW_URI": "http://mlflow:5000",
    "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "LOOPML_DVC_REMOTE": "http://datasets:8000/dvc",
    "LOOPML_AIRFLOW_DB_URI": "postgresql+psycopg2://airflow@pg/airflow",
    "LOOPML_INFERENCE_LOG_URI": "postgresql+psycopg2://loopml@pg/inference",
}


def _validated(pod: V1Pod) -> dict:
    """The pod as the API server would receive it, read back through the Kubernetes models."""
    client = ApiClient()
    wire = client.sanitize_for_serialization(pod)
    again = client._ApiClient__deserialize(json.loads(json.dumps(wire)), "V1Pod")  # the client's own decoder
    assert client.sanitize_for_serialization(again) == wire
    for container in again.spec.containers:
        for quantities in (container.resources.requests or {}, container.resources.limits or {}):
            for value in quantities.values():
                assert parse_quantity(value) > 0
    return wire


def _mapped(slots: list[dict], profile: DeploymentProfile):
    return worker_pods("workers", profile, K8S_ENV).expand_kwargs(slots)


def _render(slots: list[dict], profile: DeploymentProfile, index: int = 0) -> V1Pod:
    """One mapped pod, built as the mapped operator builds it at run time (its fixed part and slot `index`)."""
    mapped = _mapped(slots, profile)
    return TrialPodOperator(task_id="workers", **mapped.partial_kwargs, **slots[index]).build_pod_request_obj(
        dry_run=True
    )


def test_builtin_algorithms_declare_resources_and_bad_ones_are_refused(tmp_path):
    assert builtin_specs()["digits_cnn"].resources == Resources(cpu="2", memory="2Gi", gpu=0)
    assert builtin_specs()["tabular"].resources.to_dict() == {"cpu": "1", "memory": "2Gi", "gpu": 0}
    source = (REPO / "automl_tasks/algorithms/builtin/tabular/algorithm.yaml").read_text()
    for bad, message in [
        ("{cpu: lots}", "resources.cpu: expected a Kubernetes quantity"),
        ("{memory: -1Gi}", "resources.memory"),
        ("{gpu: 0.5}", "resources.gpu: expected a whole number"),
        ("{disk: 10Gi}", "expected a mapping of cpu, memory, gpu"),
    ]:
        (tmp_path / "algorithm.yaml").write_text(source.split("resources:")[0] + f"resources: {bad}\n")
        (tmp_path / "default_tabular.yaml").write_text("params: []\n")
        text = (tmp_path / "algorithm.yaml").read_text().replace("../../../search_space/", "")
        (tmp_path / "algorithm.yaml").write_text(text)
        with pytest.raises(ConfigurationError, match=message) as caught:
            load_spec(tmp_path)
        assert str(tmp_path / "algorithm.yaml") in str(caught.value)


def test_a_gpu_trial_pod_asks_for_its_resources_and_gets_the_stores_not_paths():
    profile = DeploymentProfile.from_env(K8S_ENV)
    wire = _validated(_render(pod_slots("fam-run1", 1, {"cpu": "4", "memory": "16Gi", "gpu": 1}), profile))
    containers = {c["name"]: c for c in wire["spec"]["containers"]}
    assert set(containers) == {"base", "airflow-xcom-sidecar"}, "the summary reaches XCom through the sidecar"
    container = containers["base"]
    assert container["image"] == "registry.example/loopml:1.0"
    wanted = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert container["resources"] == {"requests": wanted, "limits": wanted}
    assert container["command"] == ["bash", "-c"]
    assert container["args"] == ["exec loopml worker --study fam-run1 --index 0 --xcom"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LOOPML_OPTUNA_URI"] == K8S_ENV["LOOPML_OPTUNA_URI"] and env["LOOPML_DVC_REMOTE"].startswith("http")
    assert env["LOOPML_HOME"] == "/tmp/loopml", "a pod works in its own scratch folder"
    assert not [v for v in env.values() if v.startswith(str(REPO))], "no path of this machine reaches the pod"
    assert wire["metadata"]["namespace"] == "automl"
    assert wire["metadata"]["labels"]["loopml/role"] == "search-worker"
    assert wire["spec"]["securityContext"]["runAsUser"] == 50000  # the official image's airflow user


def test_a_cpu_trial_asks_for_no_gpu_and_the_defaults_apply():
    profile = DeploymentProfile.from_env(K8S_ENV)
    slots = pod_slots("fam-run2", 3, {})
    assert [s["arguments"][0].split("--index ")[1] for s in slots] == ["0 --xcom", "1 --xcom", "2 --xcom"]
    wire = _validated(_render(slots, profile, 2))
    (resources,) = [c["resources"] for c in wire["spec"]["containers"] if c["name"] == "base"]
    assert resources["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_the_operators_dry_run_prints_the_pod():
    profile = DeploymentProfile.from_env(K8S_ENV)
    (slot,) = pod_slots("fam-run3", 1, {"cpu": "500m", "memory": "1Gi", "gpu": 2})
    fixed = _mapped([slot], profile).partial_kwargs
    out = subprocess.run(
        [sys.executable, "-c", "import sys, json; from operators.trial_pods import TrialPodOperator as T; "
         "T(**json.loads(sys.argv[1])).dry_run()", json.dumps({**_plain(fixed), **slot})],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    printed = yaml.safe_load(out.stdout[out.stdout.index("api_version:") :])  # after the operator's log line
    assert printed["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"


def _plain(kwargs: dict) -> dict:
    """The partial's arguments as JSON (env vars as plain mappings, which the operator accepts)."""
    out = {k: kwargs[k] for k in ("image", "namespace", "cmds", "name", "labels", "security_context")}
    return {**out, "task_id": "workers", "env_vars": {e.name: e.value for e in kwargs["env_vars"]}}


PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={dags!r})
assert not bag.import_errors, bag.import_errors
wanted = {{"nocode_pipeline": "workers", "hpo_pipeline": "search.workers", "drift_retrain": "workers",
          "large_model_adaptation": "search.workers"}}
found = {{name: bag.dags[name].get_task(task_id) for name, task_id in wanted.items()}}
print(json.dumps({{name: getattr(t, "operator_class", type(t)).__name__ for name, t in found.items()}}))
"""


@pytest.mark.parametrize("executor", ["kubernetes", "local"])
def test_the_kubernetes_profile_maps_worker_pods_and_the_default_maps_tasks(executor, tmp_path):
    """The scheduler's parse of the DAG files: pods under the kubernetes profile, tasks otherwise."""
    env = {
        **K8S_ENV,
        "LOOPML_EXECUTOR": executor,
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LOOPML_HOME": str(tmp_path / "ws"),
        "PYTHONPATH": str(REPO),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(dags=str(REPO / "dags"))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    classes = json.loads(out.stdout.strip().splitlines()[-1])
    expected = "TrialPodOperator" if executor == "kubernetes" else "_PythonDecoratedOperator"
    assert set(classes.values()) == {expected}, classes


def test_profile_problems_name_the_setting(tmp_path):
    home = str(tmp_path / "ws")
    assert DeploymentProfile.from_env({"LOOPML_HOME": home}).problems() == []
    bad = DeploymentProfile.from_env({"LOOPML_HOME": home, "LOOPML_EXECUTOR": "celery"}).problems()
    assert [p.split(":")[0] for p in bad] == [
        "LOOPML_AIRFLOW_DB_URI",
        "LOOPML_OPTUNA_URI",
        "LOOPML_INFERENCE_LOG_URI",
        "LOOPML_MLFLOW_URI",
        "LOOPML_DVC_REMOTE",
        "LOOPML_BROKER_URL",
    ]
    with pytest.raises(ConfigurationError, match="LOOPML_EXECUTOR='mesos': expected one of"):
        DeploymentProfile.from_env({"LOOPML_HOME": home, "LOOPML_EXECUTOR": "mesos"}).check()
    assert DeploymentProfile.from_env({**K8S_ENV, "LOOPML_HOME": home}).check().trials_as_pods
    assert isinstance(DeploymentProfile.from_env({"LOOPML_HOME": home}).workspace, Workspace)


def test_loopml_worker_is_what_a_pod_runs(workspace, breast_cancer_frame):
    """The pod's command evaluates the study's trials in its own process and prints its
    summary; an unknown study is one clear line, no traceback."""
    from automl_tasks.search import start_search
    from tests.unit.test_search_engine import sleepy_plan
    from tests.worker_processes import process_env

    space = "params:\n  - {name: x, type: float, range: [0, 1]}\n  - {name: sleep_s, type: float_cat, range: [0.0]}\n"
    plan, parsed = sleepy_plan(workspace, breast_cancer_frame, space=space, n_trials=3, name="pod-cli")
    start_search(workspace.optuna_uri, plan, parsed)
    command = [sys.executable, "-m", "loopml.cli", "worker", "--study", plan.study_name, "--index", "1"]
    out = subprocess.run(command, env=process_env(workspace), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["worker"] == 1 and summary["evaluated"] == 3 and summary["failed"] == 0, summary
    command[command.index(plan.study_name)] = "no-such-study"
    out = subprocess.run(command, env=process_env(workspace), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "no study named 'no-such-study'" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_a_worker_whose_image_lacks_a_dependency_fails_one_trial_and_the_study_goes_on(
    workspace, breast_cancer_frame, tmp_path
):
    """Two workers on one study: one environment has the algorithm's dependency, one lacks it.
    The second fails the trial it reserved with the import error as its reason and stops; the
    first evaluates the rest of the budget."""
    from automl_tasks.core.tags import ERROR_TAG
    from automl_tasks.search import load_study, start_search
    from tests.unit.test_search_engine import make_plan
    from tests.worker_processes import start_worker, worker_summary

    extra = tmp_path / "site"
    extra.mkdir()
    (extra / "loopml_test_extra.py").write_text("")
    space = "params:\n  - {name: x, type: float, range: [0, 1]}\n  - {name: sleep_s, type: float_cat, range: [0.2]}\n"
    plan, parsed = make_plan(
        workspace,
        breast_cancer_frame,
        space=space,
        space_yaml=space,
        algorithm="tests.needs_extra_estimator:NeedsExtraEstimator",
        n_trials=8,
        name="heterogeneous",
        min_trial_timeout_s=600,
    )
    start_search(workspace.optuna_uri, plan, parsed)
    lacking = start_worker(workspace, plan.study_name, 0, stdout=subprocess.PIPE, text=True)
    lacking_summary = worker_summary(lacking, timeout=120)
    having = start_worker(
        workspace, plan.study_name, 1, env={"PYTHONPATH": f"{REPO}:{extra}"}, stdout=subprocess.PIPE, text=True
    )
    having_summary = worker_summary(having, timeout=300)
    assert lacking_summary["failed"] == 1 and lacking_summary["evaluated"] == 0, lacking_summary
    study, _ = load_study(workspace.optuna_uri, plan.study_name)
    (failed,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert "No module named 'loopml_test_extra'" in failed.user_attrs[ERROR_TAG]
    assert "this worker cannot load the algorithm: algorithm 'tests.needs_extra" in failed.user_attrs[ERROR_TAG]
    assert having_summary["evaluated"] >= 7 and having_summary["failed"] == 0, having_summary
