"""The NoCode pipeline through a real Airflow stack, checked the way a user would check it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import DatasetStore
from automl_tasks.deploy.onnx_model import OnnxModel
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.search.storage import load_study, open_storage
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, default_tabular_space, load_search_space
from automl_tasks.search_space.edits import apply_edit
from automl_tasks.search_space.versions import version_text
from tests.browser import browser_page
from tests.e2e.conftest import run_pipeline, states

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# two workers share them: the default, 2 from the built-in portfolio (a third of the budget)
# and 3 draws of TPE, which try other model families (the warm start test carries them)
N_TRIALS = 6


@contextlib.contextmanager
def served(ws, family: str, *, port: int):
    """A real BentoML server for `family`'s champion on loopback, stopped afterwards."""
    from loopml.serve import start_server

    server = start_server(ws, family, port=port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def first_run(airflow):
    conf = {"dataset": "breast_cancer", "n_trials": N_TRIALS, "n_workers": 2, "time_budget_s": 400}
    run_id, state = run_pipeline(airflow, conf)
    return run_id, state


def test_pipeline_succeeds_with_two_concurrent_workers(airflow, first_run):
    run_id, state = first_run
    task_states = states(airflow, run_id)
    assert state == "success", task_states
    assert task_states["workers[0]"] == task_states["workers[1]"] == "success"
    log = airflow.task_log("nocode_pipeline", run_id, "workers", 1, map_index=0)
    assert f"of {N_TRIALS} done" in log and "best" in log and "ETA" in log, "workers log progress lines"


def test_family_has_a_champion_with_a_good_test_score(e2e_workspace, first_run):
    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    assert float(champion.tags["test_roc_auc"]) >= 0.95
    for tag in (
        "loopml.dataset_version",
        "loopml.study",
        "loopml.space_hash",
        "loopml.dag_run_id",
        "loopml.code_version",
    ):
        assert champion.tags.get(tag), f"version lacks lineage tag {tag}"
    assert champion.tags["loopml.dag_run_id"] == first_run[0]
    version = champion.tags["loopml.dataset_version"]
    assert (e2e_workspace.datasets / "breast_cancer" / version / "data.parquet.dvc").exists()


def test_onnx_model_reproduces_the_registered_native_model(e2e_workspace, first_run):
    import mlflow

    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.metrics["onnx_parity_share_within_tol"] >= 0.99
    schema_file = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="feature_schema.json")
    schema = FeatureSchema.from_dict(json.loads(Path(schema_file).read_text()))
    onnx_file = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="onnx/model.onnx")
    native = mlflow.sklearn.load_model(f"models:/breast_cancer/{champion.version}")
    frame = DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).read(champion.tags["loopml.dataset_uri"])
    features = feature_frame(frame, schema)
    _, onnx_proba = OnnxModel(onnx_file, schema).run(features)
    assert np.abs(onnx_proba - native.predict_proba(features)).max() < 1e-3


def test_the_task_logs_carry_no_progress_bars(airflow, first_run):
    """Great Expectations' and MLflow's progress bars go to stderr, which Airflow's log view
    shows as error lines (they filled data_preprocess's and task_estimator's logs)."""
    for task in ("data_preprocess", "task_estimator"):
        log = airflow.task_log("nocode_pipeline", first_run[0], task, 1)
        assert log and "Calculating Metrics" not in log and "Downloading artifacts" not in log, task


def test_the_version_carries_its_trust_report_as_model_metrics_tags_and_a_plot(airflow, e2e_workspace, first_run):
    import mlflow

    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    assert 0.0 <= float(champion.tags["loopml.trust.mia_auc"]) <= 1.0
    assert 0.0 <= float(champion.tags["loopml.trust.adv_accuracy"]) <= 1.0
    assert "differential_privacy: not trained with differential privacy" in champion.tags["loopml.trust.skipped"]
    from automl_tasks.families.artifacts import model_id_of

    logged = mlflow.get_logged_model(model_id_of(champion)).metrics
    for key in ("trust_mia_auc", "trust_mia_advantage", "trust_gaussian_auc", "trust_adv_accuracy", "trust_seconds"):
        assert any(m.key == key for m in logged), f"logged model lacks {key}: {sorted({m.key for m in logged})}"
    # (the trust_report DAG may have added a later measurement: the tag is one of them)
    mia = [m.value for m in logged if m.key == "trust_mia_auc"]
    assert any(v == pytest.approx(float(champion.tags["loopml.trust.mia_auc"]), abs=1e-3) for v in mia)
    listed = {a.path for a in client.list_artifacts(champion.run_id, "trust")}
    assert listed == {"trust/trust_report.json", "trust/trust_report.png"}
    log = airflow.task_log("nocode_pipeline", first_run[0], "task_estimator", 1)
    assert "trust report (" in log and "membership attack AUC" in log
    page = airflow.http.get("/loopml/families/breast_cancer")
    assert page.status_code == 200, page.text
    row = page.text.split(f"<tr id='version-{champion.version}'>", 1)[1].split("</tr>", 1)[0]
    assert f"attack AUC {float(champion.tags['loopml.trust.mia_auc']):.3f}" in row and "under attack" in row
    assert "sets no trust threshold" in page.text


def test_trials_are_child_runs_and_advisor_artifacts_exist(e2e_workspace, first_run):
    import mlflow

    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    parent_id = client.get_run(champion.run_id).data.tags["mlflow.parentRunId"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    trials = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.`loopml.kind` = 'trial'",
    )
    assert len(trials) >= N_TRIALS
    assert set(trials["tags.loopml.worker"]) == {"0", "1"}, "both workers evaluated trials"
    assert trials["metrics.duration_s"].notna().all()
    assert trials["tags.loopml.trial_number"].nunique() == len(trials), "no trial evaluated twice"
    names = {Path(a.path).name for a in client.list_artifacts(parent_id, "advisor")}
    assert {"suggestions.md", "importance.json", "optimization_history.html", "parallel_coordinate.html"} <= names
    assert any(a.path.endswith("profile.json") for a in client.list_artifacts(parent_id, "data"))


def test_bentoml_serves_the_champion(e2e_workspace, first_run):
    from serving.loader import sample_instances

    with served(e2e_workspace, "breast_cancer", port=13000) as server:
        instances = sample_instances(e2e_workspace, "breast_cancer", 3)
        answer = httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30, trust_env=False)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["predictions"]) == 3 and set(body["predictions"]) <= {0, 1}
        assert body["model"]["alias"] == "champion" and body["model"]["runtime"] == "onnxruntime"
        assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0, atol=1e-4)
        bad = dict(instances[0], mean_radius="big")
        refused = httpx.post(f"{server.url}/predict", json={"instances": [bad]}, timeout=30, trust_env=False)
        assert refused.status_code == 400 and "mean_radius" in refused.text
        missing = httpx.post(
            f"{server.url}/predict", json={"instances": [{"mean_radius": 1.0}]}, timeout=30, trust_env=False
        )
        assert missing.status_code == 400 and "missing columns" in missing.text
        not_json = httpx.post(
            f"{server.url}/predict",
            content=b"{not json",
            timeout=30,
            trust_env=False,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= not_json.status_code < 500


#: linear models compile on OpenVINO (lowered to standard ops); forests do not (no tree
#: operators), so they are infeasible on edge-cpu. The forest is the default (trial 0).
EDGE_SPACE = """
params:
  - name: model
    type: string
    range: [random_forest, linear]
    default: random_forest
    submodule:
      random_forest:
        - {name: n_estimators, type: int, range: [5, 10], default: 5}
        - {name: max_depth, type: int_cat, range: [2, 4], default: 2}
      linear:
        - {name: C, type: float_log, range: [0.01, 10.0], default: 1.0}
"""
EDGE_BUDGET_MS = 50.0


EDGE_FAMILY = "orders_edge"


def orders_table(n: int = 700, seed: int = 0) -> pd.DataFrame:
    """Orders with a timestamp, a free-text note, numbers and an order id; late or not.
    The model cannot read a timestamp or a text: only the feature pipeline's columns."""
    rng = np.random.default_rng(seed)
    words = ["quick", "late", "fragile", "gift", "bulk", "express", "damaged", "standard", "weekend", "rush"]
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.uniform(0, 365 * 24, n), unit="h")
    frame = pd.DataFrame(
        {
            "order_id": rng.permutation(n) + 10_000,
            "placed_at": when.strftime("%Y-%m-%d %H:%M:%S"),
            "note": [" ".join(rng.choice(words, 4)) for _ in range(n)],
            "weight_kg": rng.gamma(2.0, 2.0, n).round(2),
            "distance_km": rng.uniform(1, 500, n).round(1),
        }
    )
    risk = (when.hour >= 18) * 1.0 + frame["note"].str.count("late|damaged|weekend") * 0.8 + frame["distance_km"] / 300
    frame["late"] = (risk + rng.normal(0, 0.4, n) > 1.4).astype(int)
    return frame


@pytest.fixture(scope="module")
def edge_run(airflow, tmp_path_factory):
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    orders_table().to_csv(path, index=False)
    conf = {
        "dataset": str(path),
        "target": "late",
        "family": EDGE_FAMILY,
        "search_space": EDGE_SPACE,
        "n_trials": 4,
        "n_workers": 1,
        "seed": 0,
        "deploy_target": "edge-cpu",
        "latency_budget_ms": EDGE_BUDGET_MS,
    }
    return run_pipeline(airflow, conf)


def test_a_table_with_a_datetime_and_a_text_column_is_served_on_openvino_from_raw_rows(
    airflow, e2e_workspace, edge_run
):
    """Issue #15 end to end, with the latency budget of issue #12: the feature pipeline turns
    the timestamp and the note into features, the model (on edge-cpu: OpenVINO) reads only
    those, and the endpoint takes the raw columns and applies the pipeline itself."""
    import mlflow

    from automl_tasks.core.tags import (
        DEPLOY_FEASIBLE_TAG,
        DEPLOY_TARGET_TAG,
        FEATURE_PIPELINE_TAG,
        INFEASIBLE_ATTR,
        RUNTIME_TAG,
    )
    from automl_tasks.families.artifacts import feature_schema_of, model_metrics_of
    from automl_tasks.features.store import load_feature_pipeline
    from serving.loader import sample_instances

    run_id, state = edge_run
    assert state == "success", states(airflow, run_id)
    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias(EDGE_FAMILY, "champion")
    assert champion.tags[RUNTIME_TAG] == "openvino" and champion.tags[DEPLOY_TARGET_TAG] == "edge-cpu"
    measured = model_metrics_of(champion)
    assert 0 < measured["deploy_latency_p50_ms_b1"] <= EDGE_BUDGET_MS and measured["deploy_parity_ok"] == 1.0

    # lineage: the version names its feature pipeline version, recorded in MLflow, which the
    # pipeline run fitted; the order id was left out as an identifier
    schema = feature_schema_of(champion.run_id)
    pipeline = load_feature_pipeline(e2e_workspace, champion.tags[FEATURE_PIPELINE_TAG])
    assert schema.derive is not None and schema.derive.lineage_version == pipeline.version
    pipeline_run = client.get_run(client.get_run(champion.run_id).data.tags["mlflow.parentRunId"])
    assert pipeline_run.data.tags[FEATURE_PIPELINE_TAG] == pipeline.version
    assert set(pipeline.datetimes) == {"placed_at"} and set(pipeline.texts) == {"note"}
    assert pipeline.excluded == ("order_id",)
    assert not {"placed_at", "note", "order_id"} & set(schema.columns), "the model reads derived columns only"

    # every trial is a child run that says whether it may be chosen on the target, and why not
    trials = mlflow.search_runs(
        experiment_ids=[pipeline_run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{pipeline_run.info.run_id}' and tags.`loopml.kind` = 'trial'",
    )
    infeasible = trials[trials[f"tags.{DEPLOY_FEASIBLE_TAG}"] == "false"]
    assert len(infeasible) >= 1, "the default forest cannot run on edge-cpu"
    assert infeasible[f"tags.{INFEASIBLE_ATTR}"].str.contains("not deployable on edge-cpu").all()
    assert (trials[f"tags.{DEPLOY_FEASIBLE_TAG}"] == "true").any()

    with served(e2e_workspace, EDGE_FAMILY, port=13001) as server:
        instances = sample_instances(e2e_workspace, EDGE_FAMILY, 5)
        assert set(instances[0]) == {"placed_at", "note", "weight_kg", "distance_km"}  # raw columns
        assert isinstance(instances[0]["placed_at"], str) and isinstance(instances[0]["note"], str)
        answer = httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30, trust_env=False)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"]["runtime"] == "openvino" and body["model"]["version"] == str(champion.version)
        native = mlflow.sklearn.load_model(f"models:/{EDGE_FAMILY}/{champion.version}")
        features = feature_frame(pd.DataFrame(instances), schema)  # the training code path
        assert body["predictions"] == native.predict(features).tolist()
        assert np.abs(np.asarray(body["probabilities"]) - native.predict_proba(features)).max() < 1e-4

        with_id = [dict(row, order_id=1) for row in instances]  # the whole table row: the id is ignored
        again = httpx.post(f"{server.url}/predict", json={"instances": with_id}, timeout=30, trust_env=False)
        assert again.status_code == 200 and again.json()["predictions"] == body["predictions"]
        no_note = [{k: v for k, v in instances[0].items() if k != "note"}]
        refused = httpx.post(f"{server.url}/predict", json={"instances": no_note}, timeout=30, trust_env=False)
        assert refused.status_code == 400 and "note" in refused.text


def pipeline_run_of(ws, dag_run_id: str):
    """The MLflow pipeline run of a NoCode DAG run."""
    client = mlflow_client(ws)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(
        experiments, filter_string=f"tags.`loopml.dag_run_id` = '{dag_run_id}' and tags.`loopml.kind` = 'pipeline'"
    )
    return run


@pytest.fixture(scope="module")
def leaves(e2e_workspace, first_run) -> tuple[int, int, int]:
    """(low, high, default): the num_leaves range a person narrows the first run's space to, two
    values around the num_leaves of its best completed LightGBM trial, the default the other one.
    The first LightGBM trial to finish is never stopped by the fold race (it has no rival), so
    such a trial exists, and the re-run's warm start carries it (not the first run's default
    configuration, which the race can stop when a portfolio configuration finishes first). With
    the default at the other value the carried configuration is no copy of the re-run's default.
    And the re-run's best num_leaves sits at an end of the range whatever it is, so its advisor
    always suggests widening it."""
    first = pipeline_run_of(e2e_workspace, first_run[0])
    study = optuna.load_study(
        study_name=first.data.tags["loopml.study"], storage=open_storage(e2e_workspace.optuna_uri)
    )
    lightgbm = [t for t in study.trials if t.state.name == "COMPLETE" and t.params["model"] == "lightgbm"]
    assert lightgbm, [(t.state.name, t.params["model"]) for t in study.trials]
    best = max(lightgbm, key=lambda t: t.value).params["model.lightgbm.num_leaves"]
    _, high = default_tabular_space().find("model.lightgbm.num_leaves").range
    return (best, best + 1, best + 1) if best < high else (best - 1, best, best - 1)


def edited_space(leaves: tuple[int, int, int]) -> str:
    """LightGBM only, its num_leaves narrowed to `leaves` (see the fixture): a person's edit on
    the Advisor page."""
    document = yaml.safe_load(apply_edit(DEFAULT_TABULAR_SPACE.read_text(), "fix_param", "model", "lightgbm")[0])
    entry = document["params"][3]["submodule"]["lightgbm"][1]
    assert entry["name"] == "num_leaves"
    low, high, default = leaves
    entry.update(range=[low, high], default=default)
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


@pytest.fixture(scope="module")
def second_run(airflow, e2e_workspace, first_run, leaves, tmp_path_factory):
    """A second NoCode run on the same table, made the way a person makes one: in a real browser,
    on the first run's Advisor page, the search space edited (a mistake first, which the page
    names as it is typed) and re-run through loopml's Airflow plugin.
    (versions before it, dataset versions before it, run id, state, what the page showed)."""
    client = mlflow_client(e2e_workspace)
    before = {v.version for v in client.search_model_versions("name='breast_cancer'")}
    datasets_before = DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).versions("breast_cancer")
    shown = {}
    with browser_page() as page:
        page.goto(f"{airflow.base_url}/loopml/advisor/nocode_pipeline/{first_run[0]}")
        page.fill("#editor", edited_space(leaves).replace("range: [0.01, 0.3]", "range: [0.3, 0.01]"))
        page.wait_for_function("document.getElementById('validation').textContent.includes('expected low < high')")
        shown["mistake"] = page.inner_text("#validation")
        page.fill("#editor", edited_space(leaves))
        page.wait_for_function("document.getElementById('validation').textContent.startsWith('valid')")
        page.click("text=Re-run with this space")
        page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
        shown["result"] = page.inner_text("#result")
        page.screenshot(path=str(tmp_path_factory.mktemp("screens") / "advisor.png"), full_page=True)
    run_id = re.search(r"re-run (\S+) triggered", shown["result"]).group(1)
    state = airflow.wait_for_run("nocode_pipeline", run_id, timeout_s=900)
    return before, datasets_before, run_id, state, shown


def test_second_run_adds_a_version_and_loses_nothing(airflow, e2e_workspace, second_run):
    before, datasets_before, run_id, state, _ = second_run
    client = mlflow_client(e2e_workspace)
    assert state == "success", states(airflow, run_id)
    after = {v.version: v for v in client.search_model_versions("name='breast_cancer'")}
    assert before < set(after), "earlier versions are kept"
    new = after[max(after, key=int)]
    assert new.tags["loopml.promotion.decision"] in ("promoted", "rejected")
    assert new.tags["loopml.promotion.compared_to_version"]
    assert new.tags["loopml.promotion.triggered_by"].startswith("nocode_pipeline run")
    assert new.tags["loopml.eval_dataset_uri"] == after[min(after, key=int)].tags["loopml.eval_dataset_uri"], (
        "every version is scored on the family's fixed evaluation data"
    )
    assert DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).versions("breast_cancer") == datasets_before


def test_the_advisor_page_shows_the_runs_advice_and_its_space(airflow, first_run):
    page = airflow.http.get(f"/loopml/advisor/nocode_pipeline/{first_run[0]}")
    assert page.status_code == 200, page.text
    assert "<h2>Suggestions</h2>" in page.text and '<textarea id="editor"' in page.text
    assert "lightgbm" in page.text, "the editor holds the space the run searched"
    links = airflow.http.get(f"/api/v2/dags/nocode_pipeline/dagRuns/{first_run[0]}/taskInstances/advisor/links").json()
    link = links["extra_links"]["MLflow run"]  # every task links to its pipeline's MLflow run
    assert link.startswith("/loopml/go/mlflow/dagrun/nocode_pipeline/"), links
    target = airflow.http.get(link)
    assert target.status_code == 404 and "runs no MLflow UI" in target.text, "this test stack serves no MLflow UI"
    advice = airflow.http.get(f"/loopml/api/advisor/nocode_pipeline/{first_run[0]}").json()
    assert advice["space_version"] == default_tabular_space().hash
    assert all({"kind", "text", "status", "actionable"} <= set(s) for s in advice["suggestions"])


def test_the_study_page_lists_the_trials_with_filters_and_the_advisors_plots(airflow, first_run):
    study = airflow.http.get(f"/loopml/api/study/nocode_pipeline/{first_run[0]}").json()
    complete = [t for t in study["trials"] if t["state"] == "complete"]
    assert len(complete) >= 2 and study["metric"] == "roc_auc"
    assert study["best"] == max(complete, key=lambda t: t["score"])["number"]
    assert {"default"} <= {t["origin"] for t in study["trials"]}
    history = airflow.http.get(f"/loopml/api/study/nocode_pipeline/{first_run[0]}/plots/optimization_history.html")
    assert history.status_code == 200 and "plotly" in history.text.lower()
    assert airflow.http.get(f"/loopml/api/study/nocode_pipeline/{first_run[0]}/plots/secrets.txt").status_code == 404
    with browser_page() as page:
        page.goto(f"{airflow.base_url}/loopml/study/nocode_pipeline/{first_run[0]}")
        assert page.inner_text("#shown") == f"{len(study['trials'])} of {len(study['trials'])} trials"
        page.select_option("#state", "complete")
        assert page.inner_text("#shown") == f"{len(complete)} of {len(study['trials'])} trials"
        assert page.locator("#rows tr").count() == len(complete)
        assert page.locator("iframe").count() == 4


def test_a_space_edit_with_an_error_names_its_yaml_path_and_saves_nothing(airflow, first_run, leaves):
    versions = airflow.http.get("/loopml/api/spaces/breast_cancer").json()["versions"]
    broken = edited_space(leaves).replace("range: [0.01, 0.3]", "range: [0.3, 0.01]")
    checked = airflow.http.post("/loopml/api/spaces/validate", json={"space": broken}).json()
    assert checked["valid"] is False and checked["path"] == "params[3].submodule.lightgbm[0].range", checked
    answer = airflow.http.post(f"/loopml/api/advisor/nocode_pipeline/{first_run[0]}/space", json={"space": broken})
    assert answer.status_code == 422 and answer.json()["detail"]["path"] == checked["path"]
    assert airflow.http.get("/loopml/api/spaces/breast_cancer").json()["versions"] == versions
    gone = airflow.http.post("/loopml/api/advisor/nocode_pipeline/no-such-run/accept/0")
    assert gone.status_code == 404 and "no run 'no-such-run'" in gone.json()["detail"]


def test_an_edited_space_reruns_warm_started_on_the_same_dataset_version(
    airflow, e2e_workspace, first_run, second_run, leaves
):
    *_, run_id, state, shown = second_run
    assert "params[3].submodule.lightgbm[0].range" in shown["mistake"], "the page names the YAML path as you type"
    assert state == "success", states(airflow, run_id)
    first, rerun = pipeline_run_of(e2e_workspace, first_run[0]), pipeline_run_of(e2e_workspace, run_id)
    new_version = load_search_space(edited_space(leaves)).hash
    assert f"search space {new_version}" in shown["result"]
    assert rerun.data.tags["loopml.space_version"] == new_version
    assert rerun.data.tags["loopml.dataset_uri"] == first.data.tags["loopml.dataset_uri"]
    assert rerun.data.tags["loopml.parent_study"] == first.data.tags["loopml.study"]
    study = optuna.load_study(
        study_name=rerun.data.tags["loopml.study"], storage=open_storage(e2e_workspace.optuna_uri)
    )
    earlier = optuna.load_study(
        study_name=first.data.tags["loopml.study"], storage=open_storage(e2e_workspace.optuna_uri)
    )
    # the space the re-run searched: the edited one, plus the feature groups the formatter adds
    # for the table's feature pipeline (issue #15)
    searched = load_search_space(load_study(e2e_workspace.optuna_uri, rerun.data.tags["loopml.study"])[1].space_yaml)
    low, high, _ = leaves
    assert searched.find("model.lightgbm.num_leaves").range == (low, high)
    carried = [t.params for t in study.trials if t.user_attrs.get("loopml.origin") == "warm_start"]
    fitting = [searched.project(t.params) for t in earlier.trials if t.state.name == "COMPLETE"]
    assert carried, [t.user_attrs.get("loopml.origin") for t in study.trials]
    assert all(config in fitting for config in carried), "the warm start is the first run's configurations, projected"
    assert {(t.params["model"], t.params["model.lightgbm.num_leaves"]) for t in study.trials} <= {
        ("lightgbm", low),
        ("lightgbm", high),
    }
    listed = {v["version"]: v for v in airflow.http.get("/loopml/api/spaces/breast_cancer").json()["versions"]}
    assert listed[new_version]["parent"] == default_tabular_space().hash
    assert listed[new_version]["accepted_by"], "who made the change is recorded"
    assert [r["run_id"] for r in listed[new_version]["runs"]] == [rerun.info.run_id]
    assert listed[new_version]["runs"][0]["test_score"] is not None, "its registered version's score is shown"
    page = airflow.http.get("/loopml/spaces/breast_cancer")
    assert page.status_code == 200
    assert "-  range: [lightgbm, random_forest, extra_trees, linear, mlp]" in page.text
    assert "+  range: [lightgbm]" in page.text


@pytest.fixture(scope="module")
def accepted_run(airflow, second_run):
    """A third run: in a real browser, on the second run's Advisor page, a person accepts the
    suggestion to widen num_leaves (its best value sits at an end of the narrowed range). Returns
    (the accepted suggestion, its row's status shown, run id, state)."""
    second_id = second_run[2]
    advice = airflow.http.get(f"/loopml/api/advisor/nocode_pipeline/{second_id}").json()["suggestions"]
    (widen,) = [a for a in advice if a["kind"] == "widen_range" and a["param"] == "model.lightgbm.num_leaves"]
    with browser_page() as page:
        page.goto(f"{airflow.base_url}/loopml/advisor/nocode_pipeline/{second_id}")
        row = page.locator("tr", has_text="widen_range").filter(has_text="model.lightgbm.num_leaves")
        row.locator("text=Accept and re-run").click()
        page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
        run_id = re.search(r"re-run (\S+) triggered", page.inner_text("#result")).group(1)
        shown = page.inner_text(f"#status-{widen['index']}")
    return widen, shown, run_id, airflow.wait_for_run("nocode_pipeline", run_id, timeout_s=900)


def test_accepting_a_suggestion_reruns_on_a_new_space_version_warm_started(
    airflow, e2e_workspace, second_run, accepted_run, leaves
):
    widen, shown, run_id, state = accepted_run
    assert shown == "accepted" and state == "success", states(airflow, run_id)
    second, third = pipeline_run_of(e2e_workspace, second_run[2]), pipeline_run_of(e2e_workspace, run_id)
    status = airflow.http.get(f"/loopml/api/advisor/nocode_pipeline/{second_run[2]}").json()["suggestions"]
    assert status[widen["index"]]["status"].endswith(f"re-run {run_id}"), "the suggestion records its re-run"
    listed = {v["version"]: v for v in airflow.http.get("/loopml/api/spaces/breast_cancer").json()["versions"]}
    version = listed[third.data.tags["loopml.space_version"]]
    assert version["parent"] == second.data.tags["loopml.space_version"]
    assert "accepted suggestion" in version["change"] and "widened model.lightgbm.num_leaves" in version["change"]
    space = load_search_space(version_text(e2e_workspace, version["run_id"]))
    low, high, _ = leaves
    assert space.find("model.lightgbm.num_leaves").range in ((low - 1, high), (low, high + 1))
    assert third.data.tags["loopml.parent_study"] == second.data.tags["loopml.study"]
    storage = open_storage(e2e_workspace.optuna_uri)
    study = optuna.load_study(study_name=third.data.tags["loopml.study"], storage=storage)
    earlier = optuna.load_study(study_name=second.data.tags["loopml.study"], storage=storage)
    searched = load_search_space(load_study(e2e_workspace.optuna_uri, third.data.tags["loopml.study"])[1].space_yaml)
    # what the second run completed, in the widened space, other than the default (enqueued as
    # such): its warm-started best, unless the fold race stopped it, and what else completed
    fitting = [searched.project(t.params) for t in earlier.trials if t.state.name == "COMPLETE"]
    others = [config for config in fitting if config is not None and config != searched.default_config()]
    carried = [t.params for t in study.trials if t.user_attrs.get("loopml.origin") == "warm_start"]
    assert bool(carried) == bool(others), (carried, others)
    assert all(config in others for config in carried), "the warm start is the second run's configurations"


BAD_TABLES = {
    "missing_target": ("a,b,label\n1,2,0\n3,4,1\n5,6,0\n", "rule target_exists"),
    "empty_file": ("", "rule table_not_empty"),
    "single_class": ("a,b,target\n1,2,1\n3,4,1\n5,6,1\n", "rule at_least_two_classes"),
}


@pytest.fixture(scope="module")
def bad_runs(airflow, tmp_path_factory) -> dict[str, tuple[Path, str, str]]:
    """One NoCode run per bad table, triggered together (they fail within seconds, and
    waiting for each in turn would add one pipeline start-up per table): case -> (path, run id, state)."""
    folder = tmp_path_factory.mktemp("bad_tables")
    started = {}
    for case, (content, _) in BAD_TABLES.items():
        path = folder / f"{case}.csv"
        path.write_text(content)
        started[case] = path, airflow.trigger("nocode_pipeline", {"dataset": str(path), "n_trials": 2, "n_workers": 1})
    return {
        case: (path, run_id, airflow.wait_for_run("nocode_pipeline", run_id, timeout_s=600))
        for case, (path, run_id) in started.items()
    }


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_input_stops_at_data_preprocess_and_writes_nothing(airflow, e2e_workspace, bad_runs, case):
    _, rule = BAD_TABLES[case]
    path, run_id, state = bad_runs[case]
    task_states = states(airflow, run_id)
    assert state == "failed"
    assert task_states["data_preprocess"] == "failed"
    assert task_states["task_estimator"] == "upstream_failed"
    log = airflow.task_log("nocode_pipeline", run_id, "data_preprocess", 1)
    assert rule in log and str(path) in log
    if case != "empty_file":
        assert "column '" in log
    assert not (e2e_workspace.datasets / case).exists(), "nothing is versioned"
    assert not mlflow_client(e2e_workspace).search_registered_models(f"name='{case}'"), "nothing is registered"


def test_cli_run_reports_the_failure_and_exits_non_zero(airflow, e2e_workspace, tmp_path):
    path = tmp_path / "one_class.csv"
    pd.DataFrame({"x": [1, 2, 3], "target": [0, 0, 0]}).to_csv(path, index=False)
    env = dict(os.environ, LOOPML_HOME=str(e2e_workspace.home))
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "run", "nocode_pipeline", "--conf", json.dumps({"dataset": str(path)})],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Airflow reused" in out.stdout
    assert "data_preprocess failed" in out.stdout and "at_least_two_classes" in out.stdout


def _run_dag(client, dag_id: str, conf: dict) -> tuple[str, str]:
    client.wait_for_dag(dag_id)
    client.unpause(dag_id)
    run_id = client.trigger(dag_id, conf)
    return run_id, client.wait_for_run(dag_id, run_id, timeout_s=300)


def test_the_trust_report_dag_reports_any_version_and_refuses_an_unknown_one(airflow, e2e_workspace, first_run):
    client = mlflow_client(e2e_workspace)
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    airflow.wait_for_dag("trust_report")
    airflow.unpause("trust_report")
    good = airflow.trigger("trust_report", {"family": "breast_cancer", "version": str(champion.version)})
    bad = airflow.trigger("trust_report", {"family": "breast_cancer", "version": "99"})
    assert airflow.wait_for_run("trust_report", good, timeout_s=300) == "success"
    assert airflow.wait_for_run("trust_report", bad, timeout_s=300) == "failed"
    assert "has no version or alias '99'" in airflow.task_log("trust_report", bad, "trust_report", 1)
    tags = client.get_model_version("breast_cancer", champion.version).tags
    run = client.get_run(tags["loopml.trust.run_id"])
    assert run.data.tags["loopml.kind"] == "trust_report" and run.data.tags["loopml.triggered_by"].endswith(good)
    assert "trust_gaussian_auc" in run.data.metrics and "trust_adv_accuracy" in run.data.metrics
    if tags.get("loopml.fit_rows") == "all":  # the refit: no row it never saw, so no membership number
        assert "trust_mia_auc" not in run.data.metrics
        assert "membership: the version was refit on every row" in tags["loopml.trust.skipped"]
    else:
        assert "trust_mia_auc" in run.data.metrics


def test_promote_model_dag_manual_promotion_and_rollback(airflow, e2e_workspace, second_run):
    """Needs two versions of the family: the first run's and the second run's. A rejected
    promotion changes nothing; then a person promotes, approves and rolls back from the
    Families page in a real browser."""
    from automl_tasks.families.aliases import current_alias_version

    client = mlflow_client(e2e_workspace)
    champion = current_alias_version(client, "breast_cancer", "champion")
    other = next(
        str(v.version) for v in client.search_model_versions("name='breast_cancer'") if str(v.version) != champion
    )
    manual = {"family": "breast_cancer", "version": other, "action": "manual"}
    run_id = airflow.trigger("promote_model", manual)
    airflow.answer("promote_model", run_id, "approve", "Reject")
    assert airflow.wait_for_run("promote_model", run_id, timeout_s=300) == "success"
    assert states(airflow, run_id, "promote_model")["promotion_gate"] == "skipped", "a rejected promotion does nothing"
    assert current_alias_version(client, "breast_cancer", "champion") == champion

    with browser_page() as page:
        page.goto(f"{airflow.base_url}/loopml/families/breast_cancer")
        row = page.locator("tr", has=page.locator("td", has_text=re.compile(f"^v{other}$")))
        assert "champion" not in row.inner_text()
        row.locator("text=Promote (needs approval)").click()
        page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
        run_id = re.search(r"promote_model run (\S+) triggered", page.inner_text("#result")).group(1)
        assert current_alias_version(client, "breast_cancer", "champion") == champion, "nothing moves before approval"
        approve = page.locator("tr", has_text=run_id).locator("button", has_text="Approve")
        deadline = time.time() + 120
        while not approve.count() and time.time() < deadline:  # the page lists it once Airflow parked the task
            page.wait_for_timeout(1000)
            page.reload()
        approve.click()
        page.wait_for_function("document.getElementById('result').textContent.startsWith('Approve')")
        assert airflow.wait_for_run("promote_model", run_id, timeout_s=300) == "success"
        assert current_alias_version(client, "breast_cancer", "champion") == other
        record = client.get_model_version("breast_cancer", other).tags
        assert (
            record["loopml.promotion.mode"] == "manual" and "promote_model" in record["loopml.promotion.triggered_by"]
        )
        assert record["loopml.promotion.approved_by"].split(" at ")[1], record
        page.reload()
        assert "approved by" in row.inner_text() and "champion" in row.inner_text()
        page.click("text=Roll back the champion")
        page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
        run_id = re.search(r"promote_model run (\S+) triggered", page.inner_text("#result")).group(1)
    assert airflow.wait_for_run("promote_model", run_id, timeout_s=300) == "success"
    assert current_alias_version(client, "breast_cancer", "champion") == champion
    run_id, state = _run_dag(airflow, "promote_model", {"family": "no_such_family", "action": "rollback"})
    assert state == "failed"
    assert "no_such_family" in airflow.task_log("promote_model", run_id, "promotion_gate", 1)


def test_drift_settings_are_edited_on_the_families_page_and_a_bad_value_saves_nothing(
    airflow, e2e_workspace, first_run
):
    from automl_tasks.monitoring.drift_settings import family_settings

    client = mlflow_client(e2e_workspace)
    before = family_settings(client, "breast_cancer")
    api = "/loopml/api/families/breast_cancer/drift_settings"
    bad = airflow.http.post(api, json={"values": {"window_hours": "12", "drift_share": "1.5"}})
    assert bad.status_code == 400 and "'drift_share'" in bad.json()["detail"], bad.text
    assert family_settings(client, "breast_cancer") == before, "a refused edit saves nothing"
    good = airflow.http.post(api, json={"values": {"window_hours": "12", "auto_retrain": False}})
    assert good.status_code == 200, good.text
    after = family_settings(client, "breast_cancer")
    assert (after.window_hours, after.auto_retrain) == (12.0, False)
    shown = airflow.http.get("/loopml/api/families/breast_cancer").json()["drift_settings"]
    assert shown["window_hours"] == 12.0 and shown["auto_retrain"] is False
    assert airflow.http.post(api, json={"values": before.to_dict()}).status_code == 200


def test_a_person_labels_an_active_learning_batch_and_retrains_from_the_label_page(airflow, e2e_workspace, first_run):
    """active_learning picks the rows the champion is least sure of; a person labels them on the
    Label page (a wrong count first, refused), and the labels retrain the family through
    drift_retrain and its promotion gate."""
    first = pipeline_run_of(e2e_workspace, first_run[0])
    pool_uri = first.data.tags["loopml.dataset_uri"]
    truth = DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).read(pool_uri)["target"]
    airflow.wait_for_dag("active_learning")
    airflow.unpause("active_learning")
    conf = {"family": "breast_cancer", "pool": pool_uri, "batch_size": 40, "strategy": "margin", "diversity": True}
    run_id, state = _run_dag(airflow, "active_learning", conf)
    assert state == "success"
    batch = airflow.xcom("active_learning", run_id, "select_batch")
    assert batch["rows"] == 40
    rows = airflow.http.get(f"/loopml/api/label/breast_cancer/{batch['run_id']}").json()["rows"]
    answers = [str(int(truth.iloc[row["_pool_row"]])) for row in rows]  # the person knows the truth
    with browser_page() as page:
        page.goto(f"{airflow.base_url}/loopml/label/breast_cancer?run={batch['run_id']}")
        selects = page.locator("select.label")
        assert selects.count() == 40
        page.click("text=Save labels")
        page.wait_for_function("document.getElementById('result').className === 'error'")
        assert "row 0 has no label" in page.inner_text("#result")
        for i, answer in enumerate(answers):
            selects.nth(i).select_option(answer)
        page.click("text=Save labels")
        page.wait_for_function("document.getElementById('result').textContent.startsWith('saved 40 labels')")
        labelled_uri = page.inner_text("#result").split(" as ")[1]
        page.fill("#trials", "1")
        page.click("text=Retrain with these labels")
        page.wait_for_function("document.getElementById('result').textContent.includes('triggered')")
        retrain_id = re.search(r"drift_retrain run (\S+) triggered", page.inner_text("#result")).group(1)
    labelled = DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).read(labelled_uri)
    assert [str(v) for v in labelled["target"]] == answers
    upload = f"/loopml/api/label/breast_cancer/{batch['run_id']}/csv"
    refused = airflow.http.post(upload, json={"csv": "answer\n" + "\n".join(answers)})
    assert refused.status_code == 400 and "no 'label' column" in refused.json()["detail"]
    uploaded = airflow.http.post(upload, json={"csv": "label\n" + "\n".join(answers)})
    assert uploaded.json() == {"labelled_uri": labelled_uri, "rows": 40}, "the same labels: the same dataset version"
    assert airflow.wait_for_run("drift_retrain", retrain_id, timeout_s=900) == "success", states(
        airflow, retrain_id, "drift_retrain"
    )
    assert pipeline_run_of(e2e_workspace, retrain_id).data.tags["loopml.source"] == labelled_uri
    client = mlflow_client(e2e_workspace)
    newest = max(client.search_model_versions("name='breast_cancer'"), key=lambda v: int(v.version))
    assert newest.tags["loopml.dag_run_id"] == retrain_id, "the labels made a new version"
    assert newest.tags["loopml.promotion.decision"] in ("promoted", "rejected"), "... judged by the promotion gate"


def test_batch_inference_dag_writes_predictions_as_a_dataset_version(airflow, e2e_workspace, first_run):
    run_id, state = _run_dag(airflow, "batch_inference", {"family": "breast_cancer", "dataset": "breast_cancer"})
    assert state == "success"
    result = airflow.xcom("batch_inference", run_id, "batch_predict")
    frame = DatasetStore(e2e_workspace.datasets, e2e_workspace.dvc_remote).read(result["predictions_uri"])
    assert len(frame) == 569 and result["rows"] == 569
    assert set(frame["prediction"]) <= {0, 1} and {"probability_0", "probability_1"} <= set(frame.columns)
    assert (frame["prediction"] == frame["target"]).mean() > 0.9


def _wait_for(condition, what: str, timeout_s: float = 300):
    """Poll `condition` until it returns something truthy; fail naming `what`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def test_a_killed_task_and_a_run_marked_failed_leave_no_mlflow_run_running(airflow, e2e_workspace):
    """The teardown closes the pipeline's MLflow run when no task could: the job estimator's
    process is SIGKILLed (its failure handler never runs), then the user marks the run failed."""
    from automl_tasks.core.tags import DAG_RUN_TAG, ERROR_TAG

    family = "teardown_family"
    conf = {"dataset": "breast_cancer", "n_trials": 500, "n_workers": 1, "time_budget_s": 600, "family": family}
    run_id = airflow.trigger("nocode_pipeline", conf)

    def running_job_estimator():
        tis = {ti["task_id"]: ti for ti in airflow.task_instances("nocode_pipeline", run_id)}
        ti = tis.get("job_estimator", {})
        worker = tis.get("workers", {})
        return ti if ti.get("state") == "running" and ti.get("pid") and worker.get("state") == "running" else None

    victim = _wait_for(running_job_estimator, "the job estimator and a worker to run")
    os.kill(victim["pid"], signal.SIGKILL)
    _wait_for(lambda: states(airflow, run_id).get("job_estimator") == "failed", "the killed task to be failed")
    airflow.set_run_state("nocode_pipeline", run_id, "failed")
    _wait_for(
        lambda: states(airflow, run_id).get("close_mlflow_runs") in ("success", "failed"), "the teardown to finish"
    )
    assert states(airflow, run_id)["close_mlflow_runs"] == "success"
    airflow.wait_for_run("nocode_pipeline", run_id, timeout_s=120)  # ended (Airflow decides success/failed)

    client = mlflow_client(e2e_workspace)
    experiment = client.get_experiment_by_name(family).experiment_id
    runs = client.search_runs([experiment], f"tags.`{DAG_RUN_TAG}` = '{run_id}'")
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{runs[0].info.run_id}'")
    assert runs and all(r.info.status != "RUNNING" for r in runs + children), "an MLflow run was left RUNNING"
    (parent,) = [r for r in runs if r.data.tags.get("loopml.kind") == "pipeline"]
    assert parent.info.status == "FAILED" and "ended without closing" in parent.data.tags[ERROR_TAG]
