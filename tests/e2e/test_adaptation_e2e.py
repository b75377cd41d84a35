"""The large-model adaptation DAG through the real Airflow stack, on a tiny BERT and toy
reviews: the family ends with the base model, an adapted version and students derived
from it (each naming its parent and derivation), the Pareto artifacts, a champion within
the latency budget, and a BentoML endpoint that classifies a text."""

from __future__ import annotations

import httpx
import pytest

from automl_tasks.adaptation.family import family_versions
from automl_tasks.core.tags import ONNX_URI_TAG
from automl_tasks.core.tracking import mlflow_client
from loopml.serve import start_server
from tests.e2e.conftest import run_pipeline, states
from tests.text_models import tiny_bert, toy_reviews

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG = "large_model_adaptation"
FAMILY = "reviews_text_e2e"
BUDGET_MS = 50.0


@pytest.fixture(scope="module")
def adaptation(airflow):
    airflow.wait_for_dag(DAG)
    airflow.unpause(DAG)
    return airflow


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adaptation")
    toy_reviews(240).to_csv(folder / "reviews.csv", index=False)
    return folder / "reviews.csv", tiny_bert(folder / "tiny_bert", layers=4)


def test_adaptation_registers_a_family_of_derived_models_and_serves_the_champion(adaptation, e2e_workspace, text_data):
    dataset, base = text_data
    conf = {
        "dataset": str(dataset),
        "text_column": "text",
        "target": "label",
        "base_model": str(base),
        "methods": "lora,head",
        "miniaturise": "distill,prune,quantise",
        "latency_budget_ms": BUDGET_MS,
        "n_trials": 3,
        "time_budget_s": 60,
        "max_epochs": 2,
        "family": FAMILY,
    }
    run_id, state = run_pipeline(adaptation, conf, dag_id=DAG, timeout_s=900)
    task_states = states(adaptation, run_id, DAG)
    assert state == "success", task_states
    for branch in ("smoke", "baseline", "search"):
        assert task_states[f"{branch}.workers[0]"] == "success"

    versions = {v["version"]: v for v in family_versions(e2e_workspace, FAMILY)}
    derivations = [v["derivation"] for v in versions.values()]
    base_version = next(v for v in versions.values() if v["derivation"] == "base")
    adapted = next(v for v in versions.values() if v["derivation"] in ("lora", "head"))
    assert base_version["parent_version"] == "" and adapted["parent_version"] == base_version["version"]
    for student in ("distill", "prune"):
        assert (
            versions[next(k for k, v in versions.items() if v["derivation"] == student)]["parent_version"]
            == (adapted["version"])
        )
    assert derivations.count("quantise") == 3  # one int8 version of the teacher and of each student

    client = mlflow_client(e2e_workspace)
    summary = adaptation.xcom(DAG, run_id, "end")
    champion = client.get_model_version_by_alias(FAMILY, "champion")
    assert str(summary["champion"]) == str(champion.version) and summary["promoted"]
    assert float(champion.tags["latency_single_ms"]) <= BUDGET_MS and ONNX_URI_TAG in champion.tags
    artifacts = {a.path for a in client.list_artifacts(summary["mlflow_run_id"], "pareto")}
    assert {"pareto/pareto.html", "pareto/pareto.md", "pareto/candidates.json"} <= artifacts
    adapted_run = client.get_run(client.get_model_version(FAMILY, adapted["version"]).run_id)
    assert 0 < adapted_run.data.metrics["trainable_share"] <= 1
    # the adapted version's trust report: token noise, PGD on token embeddings, membership inference
    trust = adapted_run.data.metrics
    assert 0 <= trust["trust_mia_auc"] <= 1 and "trust_token_replacement_auc" in trust
    assert 0 <= trust["trust_adv_accuracy"] <= 1 and "trust_pgd_accuracy_eps0.5" in trust
    adapted_tags = client.get_model_version(FAMILY, adapted["version"]).tags
    assert adapted_tags["loopml.trust.skipped"].startswith("differential_privacy:")  # all else measured
    trust_files = {a.path for a in client.list_artifacts(adapted_run.info.run_id, "trust")}
    assert trust_files == {"trust/trust_report.json", "trust/trust_report.png"}

    with open(e2e_workspace.home / "bentoml-adaptation-e2e.log", "ab") as log_file:
        server = start_server(e2e_workspace, FAMILY, 13180, log_file=log_file)
        try:
            server.wait_ready()
            answer = httpx.post(
                f"{server.url}/predict",
                json={"instances": [{"text": "the tea was lovely and fresh"}, {"text": "stale " * 200}]},
                timeout=30,
                trust_env=False,
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert set(body["predictions"]) <= {"positive", "negative"} and len(body["probabilities"]) == 2
            assert body["model"]["version"] == str(champion.version)
            assert body["notes"] and "instances[1].text was cut" in body["notes"][0]
            refused = httpx.post(
                f"{server.url}/predict", json={"instances": [{"text": ""}]}, timeout=30, trust_env=False
            )
            assert refused.status_code == 400 and "instances[0].text is empty" in refused.text
        finally:
            server.stop()


def test_a_single_class_table_stops_at_data_preprocess_and_registers_nothing(adaptation, e2e_workspace, text_data):
    dataset, base = text_data
    single = dataset.with_name("single.csv")
    frame = toy_reviews(40)
    frame["label"] = "positive"
    frame.to_csv(single, index=False)
    conf = {
        "dataset": str(single),
        "text_column": "text",
        "target": "label",
        "base_model": str(base),
        "family": "single_text_e2e",
    }
    run_id, state = run_pipeline(adaptation, conf, dag_id=DAG, timeout_s=300)
    assert state == "failed" and states(adaptation, run_id, DAG)["data_preprocess"] == "failed"
    log = adaptation.task_log(DAG, run_id, "data_preprocess", 1)
    assert "rule at_least_two_classes" in log and str(single) in log
    assert list(mlflow_client(e2e_workspace).search_model_versions("name='single_text_e2e'")) == []
