"""The BentoML service of a family, run for real with `bentoml serve` on loopback."""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from automl_tasks.core.settings import Workspace
from automl_tasks.families.promotion import promote
from automl_tasks.monitoring import InferenceLog
from loopml.serve import start_server
from serving.loader import sample_instances
from tests.family_builder import LINEAR_SPACE, add_version

pytestmark = [pytest.mark.serving, pytest.mark.slow]  # a real BentoML server, no Airflow

FAMILY = "bc_serving"


@pytest.fixture(scope="module")
def family_ws(tmp_path_factory) -> Workspace:
    """Two versions: v1 (LightGBM/default space) champion, v2 (weak linear model) challenger."""
    ws = Workspace.at(tmp_path_factory.mktemp("serving") / "ws").ensure()
    first = add_version(ws, FAMILY, n_trials=1, tag="v1")  # the default configuration
    second = add_version(ws, FAMILY, n_trials=1, space=LINEAR_SPACE, tag="v2")
    assert (first.alias, second.alias) == ("champion", "challenger")
    return ws


@pytest.fixture(scope="module")
def instances(family_ws):
    return sample_instances(family_ws, FAMILY, 4)


def _serve(ws, port, family=FAMILY, **env):
    env.setdefault("LOOPML_EXPLAIN_WARMUP", 0)  # only the canary server answers /explain
    server = start_server(ws, family, port, extra_env={k: str(v) for k, v in env.items()})
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def canary_server(family_ws):
    server = _serve(
        family_ws,
        13100,
        LOOPML_EXPLAIN_WARMUP=1,
        LOOPML_CANARY_SHARE=0.3,
        LOOPML_RELOAD_S=0.5,
        LOOPML_MAX_BODY_BYTES=200_000,
    )
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
        predict_body = openapi.json()["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        row = predict_body["schema"]["properties"]["instances"]["items"]
        assert set(row["required"]) == set(instances[0]), "typed from the version's signature"
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


def test_chunked_body_over_the_limit_is_refused_while_it_streams(canary_server):
    """No Content-Length: the 413 comes after about the limit (200 kB), not after the whole body."""
    host, port = "127.0.0.1", canary_server.port
    chunk, sent, budget = b"x" * 65536, 0, 50_000_000
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < budget and not select.select([sock], [], [], 0.01)[0]:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:  # the server closed the connection after answering
            pass
        answer = b""
        while b"exceeds the limit" not in answer:  # headers and body may come in separate reads
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "exceeds the limit of 200000" in answer
    assert sent < 20 * 200_000, f"the server read {sent} bytes before refusing"


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


LOAD_FAMILY = "bc_load"


class LoadGenerator:
    """Threads that post /predict until stopped and count every failure: a connection
    error, a timeout, a non-200 answer, a body that is not JSON or names no model. An
    exception escaping a thread is kept too, and fails the test."""

    def __init__(self, url: str, instances: list[dict], threads: int = 4, timeout_s: float = 10.0) -> None:
        self.url, self.instances, self.timeout_s = url, instances, timeout_s
        self.lock = threading.Lock()
        self.answers: list[str] = []  # champion version of every good answer, in order
        self.failures: list[str] = []
        self.crashes: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._guarded, name=f"load-{i}") for i in range(threads)]

    def __enter__(self) -> LoadGenerator:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def _guarded(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # reported by the test, never swallowed
            with self.lock:
                self.crashes.append(exc)

    def _load(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=self.timeout_s) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/predict", json={"instances": self.instances})
                except httpx.HTTPError as exc:  # reset, refused, timeout, protocol error
                    self._fail(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    self._fail(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
                try:
                    body = response.json()
                    version = str(body["model"]["version"])
                    assert len(body["predictions"]) == len(self.instances)
                except (ValueError, KeyError, TypeError, AssertionError) as exc:
                    self._fail(f"bad body ({type(exc).__name__}): {response.text[:200]}")
                    continue
                with self.lock:
                    self.answers.append(version)

    def _fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def wait_for(self, version: str, count: int, timeout_s: float = 120) -> None:
        """Wait until `count` answers from champion `version` came after this call."""
        with self.lock:
            start = len(self.answers)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.lock:
                seen = self.answers[start:].count(version)
                broken = list(self.failures[:3]), list(self.crashes[:1])
            if broken != ([], []):
                raise AssertionError(f"requests failed while waiting for v{version}: {broken}")
            if seen >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"v{version} did not answer {count} times within {timeout_s:.0f}s")


@pytest.fixture(scope="module")
def load_family(e2e_workspace):
    """Two versions of a family in the Airflow stack's workspace: v1 champion, v2 challenger."""
    first = add_version(e2e_workspace, LOAD_FAMILY, n_trials=1, space=LINEAR_SPACE, tag="load-v1")
    second = add_version(e2e_workspace, LOAD_FAMILY, n_trials=1, space=LINEAR_SPACE, tag="load-v2")
    if second.alias == "champion":  # the gate judged v2 better: start from v1 all the same
        promote(e2e_workspace, LOAD_FAMILY, str(first.version), mode="manual", triggered_by="test setup")
    return str(first.version), str(second.version)


def _promote_model_dag(airflow, conf: dict) -> None:
    airflow.wait_for_dag("promote_model")
    airflow.unpause("promote_model")
    run_id = airflow.trigger("promote_model", {"family": LOAD_FAMILY, **conf})
    if conf.get("action") == "manual":
        airflow.answer("promote_model", run_id, "approve", "Approve")
    assert airflow.wait_for_run("promote_model", run_id, timeout_s=300) == "success", conf


def test_promotion_and_rollback_through_the_dag_under_load_fail_no_request(airflow, e2e_workspace, load_family):
    """The promote_model DAG moves the champion twice while four clients post requests:
    not one request fails, and the answering version follows the alias."""
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.aliases import current_alias_version

    v1, v2 = load_family
    client = mlflow_client(e2e_workspace)
    assert current_alias_version(client, LOAD_FAMILY, "champion") == v1
    server = _serve(e2e_workspace, 13300, LOOPML_RELOAD_S=0.5, family=LOAD_FAMILY)
    try:
        instances = sample_instances(e2e_workspace, LOAD_FAMILY, 2)
        with LoadGenerator(server.url, instances) as load:
            load.wait_for(v1, 20)
            _promote_model_dag(airflow, {"version": v2, "action": "manual"})
            load.wait_for(v2, 20)
            _promote_model_dag(airflow, {"action": "rollback"})
            load.wait_for(v1, 20)
        assert load.crashes == [], load.crashes
        assert load.failures == [], f"{len(load.failures)} failed requests of {len(load.answers)}: {load.failures[:5]}"
        assert set(load.answers) == {v1, v2}
    finally:
        server.stop()
    assert current_alias_version(client, LOAD_FAMILY, "champion") == v1, "the rollback holds"


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
    # its image (bentoml.images.Image) holds what an ONNX tabular family needs, pinned as in the lock
    pins = _pins((bento_dir / "env/python/requirements.txt").read_text())
    lock = _pins((Path(__file__).resolve().parents[2] / "requirements.lock").read_text())
    assert {"bentoml", "onnxruntime", "mlflow", "scikit-learn"} <= set(pins)
    assert {name: v for name, v in pins.items() if lock.get(name) != v} == {}, "a pin differs from the lock"
    assert not {"apache-airflow", "apache-airflow-core", "torch", "apache-tvm", "dvc", "optuna"} & set(pins)


def _pins(text: str) -> dict[str, str]:
    """{normalised name: version} of a requirements file's `name==version` lines."""
    pairs = (line.split("==", 1) for line in text.split() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def test_kill_9_under_load_loses_no_answered_request(family_ws, instances):
    """SIGKILL the server while clients send requests: each answered request is in the log,
    and a restarted server answers again."""
    import psutil

    server = _serve(family_ws, 13300)
    answered: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load():
        try:
            with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as client:
                for _ in range(5000):  # bounded; the kill ends it much earlier
                    if stop.is_set():
                        return
                    try:
                        response = client.post("/predict", json={"instances": instances[:1]})
                    except httpx.HTTPError:
                        return  # the server is gone
                    if response.status_code == 200:
                        answered.append(response.json()["request_id"])
        except BaseException as exc:  # an unexpected failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while len(answered) < 200 and time.time() < deadline:
            time.sleep(0.05)
        tree = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
        for process in tree:
            os.kill(process.pid, signal.SIGKILL)
        psutil.wait_procs(tree, timeout=10)
        for t in threads:
            t.join(timeout=30)
    finally:
        stop.set()
        server.stop()
    assert not errors, errors
    assert len(answered) >= 200, "the load generator got answers before the kill"
    logged = set(InferenceLog.for_family(family_ws.home, FAMILY).read()["_request_id"])
    missing = [r for r in answered if r not in logged]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests are not in the inference log"
    restarted = _serve(family_ws, 13300)
    try:
        with httpx.Client(base_url=restarted.url, trust_env=False, timeout=30) as client:
            assert client.post("/predict", json={"instances": instances[:1]}).status_code == 200
    finally:
        restarted.stop()
