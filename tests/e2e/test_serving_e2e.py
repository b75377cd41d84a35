"""The BentoML service of a family, run for real with `bentoml serve` on loopback."""

from __future__ import annotations

import collections
import json
import threading
import time

import httpx
import pytest

from automl_tasks.monitoring import InferenceLog
from automl_tasks.promotion import promote, rollback
from automl_tasks.settings import Workspace
from loopml.serve import start_server
from serving.loader import sample_instances
from tests.family_builder import LINEAR_SPACE, add_version

pytestmark = [pytest.mark.serving, pytest.mark.slow]  # a real BentoML server, no Airflow

FAMILY = "bc_serving"


@pytest.fixture(scope="module")
def family_ws(tmp_path_factory) -> Workspace:
    """Two versions: v1 (LightGBM/default space) champion, v2 (weak linear model) challenger."""
    ws = Workspace.at(tmp_path_factory.mktemp("serving") / "ws").ensure()
    first = add_version(ws, FAMILY, n_trials=2, tag="v1")
    second = add_version(ws, FAMILY, n_trials=1, space=LINEAR_SPACE, tag="v2")
    assert (first.alias, second.alias) == ("champion", "challenger")
    return ws


@pytest.fixture(scope="module")
def instances(family_ws):
    return sample_instances(family_ws, FAMILY, 4)


def _serve(ws, port, **env):
    server = start_server(ws, FAMILY, port, extra_env={k: str(v) for k, v in env.items()})
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def canary_server(family_ws):
    server = _serve(family_ws, 13100, LOOPML_CANARY_SHARE=0.3, LOOPML_RELOAD_S=0.5, LOOPML_MAX_BODY_BYTES=200_000)
    yield server
    server.stop()


def test_valid_request_is_answered_and_logged(canary_server, family_ws, instances):
    log = InferenceLog.for_family(family_ws.home, FAMILY)
    before = log.count()
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
        answer = client.post("/predict", json={"instances": instances})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["predictions"]) == 4 and len(body["probabilities"]) == 4
        assert body["model"]["variant"] in ("champion", "challenger")
        openapi = client.get("/docs.json")
        assert openapi.status_code == 200 and "/predict" in openapi.text and "/explain" in openapi.text
    records = log.read()
    assert log.count() == before + 4
    mine = records[records["_request_id"] == body["request_id"]]
    assert len(mine) == 4 and set(mine["_variant"]) == {body["model"]["variant"]}
    assert list(mine["_prediction"]) == body["predictions"]
    assert mine["mean_radius"].tolist() == [i["mean_radius"] for i in instances]


def test_feedback_labels_an_earlier_answer(canary_server, family_ws, instances):
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
        answer = client.post("/predict", json={"instances": instances}).json()
        stored = client.post("/feedback", json={"request_id": answer["request_id"], "labels": [1, 0, 1, 1]})
        assert stored.status_code == 200 and stored.json()["labelled_rows"] == 4, stored.text
        unknown = client.post("/feedback", json={"request_id": "nope", "labels": [1]})
        assert unknown.status_code == 404 and "no logged request has request_id 'nope'" in unknown.text
        short = client.post("/feedback", json={"request_id": answer["request_id"], "labels": [1]})
        assert short.status_code == 400 and "had 4 rows; got 1 labels" in short.text
        malformed = client.post("/feedback", json={"labels": [1]})
        assert malformed.status_code == 400, malformed.text
    records = InferenceLog.for_family(family_ws.home, FAMILY).read()
    assert records.loc[records["_request_id"] == answer["request_id"], "_label"].tolist() == [1, 0, 1, 1]


def test_bad_requests_get_4xx_with_a_message_never_500(canary_server, instances):
    nan_row = dict(instances[0], mean_radius=float("nan"))
    cases = {
        "wrong field": {"json": {"rows": instances}},
        "wrong type": {"json": {"instances": "mean_radius=1"}},
        "wrong shape": {"json": {"instances": [[1.0, 2.0, 3.0]]}},
        "empty": {"json": {"instances": []}},
        "text in numeric column": {"json": {"instances": [dict(instances[0], mean_area="big")]}},
        "unknown column": {"json": {"instances": [dict(instances[0], colour="red")]}},
        "missing column": {"json": {"instances": [{"mean_radius": 1.0}]}},
        "NaN": {"content": json.dumps({"instances": [nan_row]}).encode()},  # NaN literal: not strict JSON
        "not JSON": {"content": b"{instances: oops"},
        "oversized": {"json": {"instances": instances * 400}},
    }
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
        for name, kwargs in cases.items():
            response = client.post("/predict", headers={"Content-Type": "application/json"}, **kwargs)
            assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:200]}"
            assert "error" in response.text, name
        assert (
            client.post("/predict", json={"instances": [dict(instances[0], mean_area="big")]})
            .json()[0]["error"]
            .startswith("instances[0].mean_area must be a number")
        )


def test_canary_share_and_per_variant_metrics(canary_server, instances):
    counts = collections.Counter()
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
        for _ in range(400):
            counts[client.post("/predict", json={"instances": instances[:1]}).json()["model"]["variant"]] += 1
        metrics = client.get("/metrics").text
    share = counts["challenger"] / 400
    assert abs(share - 0.3) < 0.08, counts  # 3.5 standard deviations of a binomial(400, 0.3)
    lines = [line for line in metrics.splitlines() if line.startswith("loopml_predictions_total")]
    assert any('variant="challenger"' in line for line in lines) and any('variant="champion"' in line for line in lines)
    assert "loopml_request_seconds_bucket" in metrics


def test_explanations_name_the_input_columns(canary_server, instances):
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=120) as client:
        answer = client.post("/explain", json={"instances": instances[:2]})
    assert answer.status_code == 200, answer.text
    explanations = answer.json()["explanations"]
    assert len(explanations) == 2
    first = explanations[0]
    assert set(first["attributions"]) == set(instances[0]) and first["explained"].startswith("P(class=")
    assert any(abs(v) > 0 for v in first["attributions"].values())


def test_promotion_and_rollback_under_load_fail_no_request(canary_server, family_ws, instances):
    statuses, versions, stop = collections.Counter(), collections.Counter(), threading.Event()

    def load():
        with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/predict", json={"instances": instances[:2]})
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    body = response.json()
                    if body["model"]["variant"] == "champion":
                        versions[body["model"]["version"]] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        assert promote(family_ws, FAMILY, "2", mode="manual", triggered_by="test")["promoted"]
        time.sleep(4)
        assert rollback(family_ws, FAMILY, triggered_by="test")["champion"] == "1"
        time.sleep(4)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    assert versions["2"] > 0, "the promoted version answered as champion"
    with httpx.Client(base_url=canary_server.url, trust_env=False, timeout=30) as client:
        assert client.post("/predict", json={"instances": instances[:1]}).json()["model"]["version"] in ("1", "2")
        info = client.post("/model", json={}).json()
    assert info["champion"]["version"] == "1", "the rollback is served"


def test_api_key_and_restart_keep_the_log(family_ws, instances):
    log = InferenceLog.for_family(family_ws.home, FAMILY)
    server = _serve(family_ws, 13200, LOOPML_API_KEY="s3cret")
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
            assert client.post("/predict", json={"instances": instances}).status_code == 401
            wrong = client.post("/predict", json={"instances": instances}, headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            ok = client.post("/predict", json={"instances": instances}, headers={"X-API-Key": "s3cret"})
            assert ok.status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        server.stop()
    count = log.count()
    restarted = _serve(family_ws, 13200)
    try:
        assert log.count() == count, "a restart loses no record"
        with httpx.Client(base_url=restarted.url, trust_env=False, timeout=30) as client:
            assert client.post("/predict", json={"instances": instances}).status_code == 200, "auth is off by default"
        assert log.count() == count + len(instances)
    finally:
        restarted.stop()


def test_bento_is_built_for_the_family(family_ws):
    import os
    import subprocess
    import sys

    import yaml

    env = dict(os.environ, LOOPML_HOME=str(family_ws.home))
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "bento", FAMILY], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tag = out.stdout.split("built Bento ")[1].split()[0]
    name, version = tag.split(":")
    bento_dir = family_ws.bentoml_home / "bentos" / name / version
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert manifest["labels"]["family"] == FAMILY
    assert any(e["name"] == "LOOPML_FAMILY" and e["value"] == FAMILY for e in manifest["envs"])
    assert (bento_dir / "src" / "serving" / "service.py").exists()
