"""The distributed mode on a loopback cluster (issue #16): CeleryExecutor with Redis, two Celery
workers as separate hosts (own folders, the others' hidden), PostgreSQL for Airflow, Optuna
and MLflow's store, MLflow's tracking server proxying artifacts and serving the datasets'
DVC remote. NoCode survives a SIGKILLed worker (its task is retried on the other one and
every trial is evaluated once), HPO and drift_retrain run to success, and nothing reaches
a task through a file another host wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from automl_tasks.core.settings import Workspace
from automl_tasks.data import DatasetStore, bundled_frame
from automl_tasks.search.budget import is_search_trial
from automl_tasks.search.storage import open_storage
from loopml.airflow_client import AirflowClient
from tests.e2e.conftest import states
from tests.family_builder import LINEAR_SPACE
from tests.loopback_cluster import SCHEDULER_HOST, LoopbackCluster, loopback_cluster, wait_for_celery_workers
from tests.worker_processes import wait_until

pytestmark = [pytest.mark.e2e]

FAMILY = "cluster_family"
WORKERS = ("worker1", "worker2")
NOCODE = {
    "dataset": "breast_cancer",
    "n_trials": 30,
    "n_workers": 2,
    "search_space": LINEAR_SPACE,
    "family": FAMILY,
    "time_budget_s": 300,
    "trust_report": False,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with loopback_cluster(tmp_path_factory.mktemp("cluster"), WORKERS) as running:
        wait_for_celery_workers(running)
        client = AirflowClient(running.stack.url)
        for dag_id in ("nocode_pipeline", "hpo_pipeline", "drift_retrain"):
            client.wait_for_dag(dag_id)
            client.unpause(dag_id)
        yield running


def _task_instances(client: AirflowClient, dag_id: str, run_id: str) -> list[dict]:
    return client.task_instances(dag_id, run_id)


def _study(ws: Workspace, prefix: str):
    names = [
        s.study_name
        for s in optuna.get_all_study_summaries(open_storage(ws.optuna_uri))
        if s.study_name.startswith(prefix)
    ]
    return optuna.load_study(study_name=names[0], storage=open_storage(ws.optuna_uri)) if names else None


@pytest.fixture(scope="module")
def nocode_with_a_killed_worker(cluster: LoopbackCluster):
    """NoCode while the search runs on both hosts (two task slots each, three long tasks: the
    job estimator and two workers); a host that evaluates trials and does not run the job
    estimator is SIGKILLed as soon as the first trial completed."""
    client = AirflowClient(cluster.stack.url)
    ws = cluster.workspace()
    run_id = client.trigger("nocode_pipeline", NOCODE)

    def searching() -> tuple[dict[int, str], str] | None:
        instances = _task_instances(client, "nocode_pipeline", run_id)
        running = {
            t["map_index"]: t["hostname"] for t in instances if t["task_id"] == "workers" and t["state"] == "running"
        }
        watcher = {t["hostname"] for t in instances if t["task_id"] == "job_estimator" and t["state"] == "running"}
        victims = sorted({host for host in running.values() if host not in watcher})
        return (running, victims[0]) if len(running) == 2 and watcher and victims else None

    running, victim = wait_until(searching, 300, "the search running on both hosts", poll_s=0.2)
    # the first completed trial, read from the study (the API's view is seconds old on a loaded
    # machine; the journal's read is incremental): the kill lands with nearly the whole search
    # still to run
    study = wait_until(lambda: _study(ws, f"{FAMILY}-"), 120, "the search's study", poll_s=0.05)
    wait_until(
        lambda: study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), 120, "a first trial", poll_s=0.05
    )
    killed = sorted(index for index, host in running.items() if host == victim)
    cluster.kill_worker(victim)
    state = client.wait_for_run("nocode_pipeline", run_id, timeout_s=600)
    return {"run_id": run_id, "state": state, "victim": victim, "killed": killed}


def test_nocode_finishes_when_a_worker_host_dies(cluster, nocode_with_a_killed_worker):
    client = AirflowClient(cluster.stack.url)
    run = nocode_with_a_killed_worker
    assert run["state"] == "success", states(client, run["run_id"])
    instances = _task_instances(client, "nocode_pipeline", run["run_id"])
    survivor = next(w for w in WORKERS if w != run["victim"])
    for index in run["killed"]:  # each search worker the dead host ran was retried on the live one
        killed = next(t for t in instances if t["task_id"] == "workers" and t["map_index"] == index)
        assert killed["try_number"] == 2 and killed["hostname"] == survivor, killed
    assert {t["hostname"] for t in instances} <= set(WORKERS), "every task ran on a Celery worker"

    ws = cluster.workspace()
    study = _study(ws, f"{FAMILY}-")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    lost = study.get_trials(states=(TrialState.FAIL,))  # running on the dead host: failed by the job estimator
    # stopped by the fold race after some folds (draws given back at the budget's end never ran)
    raced = [t for t in study.get_trials(states=(TrialState.PRUNED,)) if is_search_trial(t)]
    ran = len(complete) + len(raced) + len(lost)
    assert len(lost) <= len(run["killed"]) and ran >= NOCODE["n_trials"], (len(complete), len(raced), lost)
    assert not study.get_trials(states=(TrialState.RUNNING,)), "a trial was left running"
    mlflow = MlflowClient(tracking_uri=ws.mlflow_uri, registry_uri=ws.mlflow_uri)
    (experiment,) = [e for e in mlflow.search_experiments() if e.name == FAMILY]
    trial_runs = [
        r
        for r in mlflow.search_runs([experiment.experiment_id], max_results=1000)
        if r.data.tags.get("loopml.kind") == "trial"
    ]
    logged = Counter(r.data.tags["loopml.trial_number"] for r in trial_runs)
    assert max(logged.values()) == 1, "a trial was recorded twice"
    # the runs are written from the study: every finished trial has one, the dead host's included
    assert {str(t.number) for t in complete + raced + lost} <= set(logged), (logged, complete, raced, lost)
    assert sum(r.info.status == "FINISHED" for r in trial_runs) == len(complete)
    summaries = [client.xcom("nocode_pipeline", run["run_id"], "workers", map_index=i) for i in range(2)]
    assert sum(s["evaluated"] for s in summaries) <= len(complete), summaries  # the killed try reported nothing

    versions = mlflow.search_model_versions(f"name = '{FAMILY}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert mlflow.get_model_version(FAMILY, "1").tags["loopml.dataset_uri"].startswith("dataset://")


def test_hosts_share_nothing_but_the_network(cluster, nocode_with_a_killed_worker):
    """The stores are servers: no MLflow or Optuna file in any host's folder; each worker
    pulled the dataset version it trained on from the DVC remote (the MLflow server)."""
    for host in (SCHEDULER_HOST, *WORKERS):
        folder = cluster.host(host)
        assert not list(folder.rglob("*.db")), f"{host} holds a SQLite store"
        assert not list(folder.rglob("mlflow/artifacts/*")), f"{host} holds MLflow artifacts"
    pulled = [w for w in WORKERS if list(cluster.host(w).rglob("datasets/breast_cancer/*/data.parquet"))]
    assert pulled, "no worker host has the dataset: it was read from a shared folder"
    # the trials' fold predictions (for ensemble selection) went to the pipeline run through the server
    client = AirflowClient(cluster.stack.url)
    ws = cluster.workspace()
    mlflow = MlflowClient(tracking_uri=ws.mlflow_uri)
    parent = client.xcom("nocode_pipeline", nocode_with_a_killed_worker["run_id"], "data_preprocess")["parent_run_id"]
    (folder,) = mlflow.list_artifacts(parent, "predictions")
    saved = {Path(f.path).name for f in mlflow.list_artifacts(parent, folder.path)}
    complete = _study(ws, f"{FAMILY}-").get_trials(states=(TrialState.COMPLETE,))
    # every completed trial's, sent before the trial was told complete (a trial the fold race
    # stopped has none)
    missing = {f"trial-{t.number}.npz" for t in complete} - saved
    assert complete and not missing, f"predictions stayed on a host: {sorted(missing)}"


@pytest.fixture(scope="module")
def hpo_and_retrain(cluster, nocode_with_a_killed_worker, tmp_path_factory):
    """An HPO run and a drift_retrain of the NoCode family, at the same time (they share the
    four task slots). The retrain's labelled window is stored by a "client" machine in the
    DVC remote and read by its URI."""
    client_ws = Workspace.from_env({**cluster.env, "LOOPML_HOME": str(tmp_path_factory.mktemp("client"))}).ensure()
    frame = bundled_frame("breast_cancer").sample(200, random_state=3).reset_index(drop=True)
    window = DatasetStore(client_ws.datasets, client_ws.dvc_remote).put(f"{FAMILY}.window", frame)
    client = AirflowClient(cluster.stack.url)
    hpo = {"dataset": "wine", "family": "cluster_hpo", "n_trials": 2, "n_workers": 2, "repeats": 2}
    runs = {
        "hpo_pipeline": client.trigger("hpo_pipeline", {**hpo, "strategy": "random", "trust_report": False}),
        "drift_retrain": client.trigger(
            "drift_retrain", {"family": FAMILY, "window_uri": window.uri, "n_trials": 2, "n_workers": 2}
        ),
    }
    states_ = {dag_id: client.wait_for_run(dag_id, run_id, timeout_s=600) for dag_id, run_id in runs.items()}
    return {"runs": runs, "states": states_, "window": window}


def test_hpo_runs_on_the_cluster(cluster, hpo_and_retrain):
    client = AirflowClient(cluster.stack.url)
    run_id = hpo_and_retrain["runs"]["hpo_pipeline"]
    assert hpo_and_retrain["states"]["hpo_pipeline"] == "success", states(client, run_id, "hpo_pipeline")
    hosts = {t["hostname"] for t in _task_instances(client, "hpo_pipeline", run_id)}
    assert hosts <= set(WORKERS), hosts
    ws = cluster.workspace()
    mlflow = MlflowClient(tracking_uri=ws.mlflow_uri, registry_uri=ws.mlflow_uri)
    assert mlflow.search_model_versions("name = 'cluster_hpo'")


def test_drift_retrain_on_the_cluster_from_a_window_stored_elsewhere(cluster, hpo_and_retrain):
    client = AirflowClient(cluster.stack.url)
    run_id = hpo_and_retrain["runs"]["drift_retrain"]
    assert hpo_and_retrain["states"]["drift_retrain"] == "success", states(client, run_id, "drift_retrain")
    ws = cluster.workspace()
    mlflow = MlflowClient(tracking_uri=ws.mlflow_uri, registry_uri=ws.mlflow_uri)
    versions = sorted(int(v.version) for v in mlflow.search_model_versions(f"name = '{FAMILY}'"))
    assert versions == [1, 2]
    window = hpo_and_retrain["window"]
    readers = [
        w for w in WORKERS if list(cluster.host(w).rglob(f"datasets/{FAMILY}.window/{window.version}/data.parquet"))
    ]
    assert readers, "the window reached the retrain through a shared folder, not the DVC remote"


def test_the_cluster_requires_a_login_and_the_client_logs_in(cluster):
    """The distributed stack has named users (no all-admins mode): an anonymous call is
    refused, a wrong password is one clear error, the client's token login works."""
    import httpx

    from loopml.airflow_client import AirflowApiError, TokenAuth

    url = cluster.stack.url
    assert httpx.get(f"{url}/api/v2/dags", trust_env=False, timeout=30).status_code == 401
    wrong = AirflowClient(url, retry_s=0, auth=TokenAuth(url, "admin", "not-the-password"))
    with pytest.raises(AirflowApiError, match="Airflow refused the login of user 'admin'"):
        wrong._call("GET", "/api/v2/dags")
    assert AirflowClient(url, retry_s=0)._call("GET", "/api/v2/dags", params={"limit": 1})["total_entries"] >= 3
