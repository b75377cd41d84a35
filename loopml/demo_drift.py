"""`loopml demo-drift`: close the monitoring loop on a served family, printing each step.

1. serve the family's champion with BentoML;
2. send it a stream of shifted requests and, later, their true labels (POST /feedback);
3. run drift_check for the family through Airflow: drift is detected;
4. follow the drift_retrain run it triggers: a new version, then the promotion gate;
5. wait for the endpoint to answer with the new champion and resend the same requests.
"""

from __future__ import annotations

import time
from typing import Any

from automl_tasks.core.settings import Workspace
from loopml.dag_runs import say

BATCH = 20
#: the retrained model learns the old and the shifted regime, so it is larger than the
#: champion; the demo allows up to 10x the size (the gate's default is 2x) and says so
DEMO_SIZE_RATIO = 10.0


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{url}{path}", json=body, timeout=60, trust_env=False)
    if response.status_code != 200:
        raise RuntimeError(f"{url}{path} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def _send_stream(url: str, frame, target: str, columns: list[str], *, feedback: bool) -> tuple[float, set[str]]:
    """Send `frame` in requests of BATCH rows; optionally post the labels; return accuracy and versions."""
    right, versions = 0, set()
    for start in range(0, len(frame), BATCH):
        chunk = frame.iloc[start : start + BATCH]
        answer = _post(url, "/predict", {"instances": chunk[columns].to_dict(orient="records")})
        versions.add(str(answer["model"]["version"]))
        truth = chunk[target].tolist()
        right += sum(int(p == t) for p, t in zip(answer["predictions"], truth, strict=True))
        if feedback:
            _post(url, "/feedback", {"request_id": answer["request_id"], "labels": truth})
    return right / len(frame), versions


def _ensure_family(ws: Workspace, family: str, *, port: int, timeout_s: float) -> bool:
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.families.aliases import CHAMPION, current_alias_version
    from loopml.dag_runs import run_dag

    try:
        if current_alias_version(mlflow_client(ws), family, CHAMPION):
            return True
    except Exception:  # a new workspace has no registry yet
        pass
    say(f"family {family} has no champion yet: running the NoCode pipeline on the bundled breast_cancer table")
    conf = {"dataset": "breast_cancer", "family": family, "n_trials": 8, "n_workers": 2, "time_budget_s": 600}
    state, _ = run_dag(ws, "nocode_pipeline", conf, port=port, timeout_s=timeout_s)
    return state == "success"


def run_drift_demo(
    ws: Workspace, family: str, *, port: int, serve_port: int, rows: int, trials: int, timeout_s: float
) -> int:
    """The closed loop, step by step; 0 when the endpoint ends up answering with a retrained champion."""
    from automl_tasks.data import bundled_frame
    from loopml.airflow_client import AirflowClient
    from loopml.dag_runs import follow_run
    from loopml.drift_stream import shift_columns, shifted
    from loopml.embedded import ensure_stack
    from loopml.serve import start_server

    if not _ensure_family(ws, family, port=port, timeout_s=timeout_s):
        return 1
    reference = bundled_frame("breast_cancer")
    target = "target"
    columns = [c for c in reference.columns if c != target]
    stream = shifted(reference, target, rows, seed=7)
    log_path = ws.home / "bentoml-demo-drift.log"
    with log_path.open("ab") as log_file:
        server = start_server(ws, family, serve_port, log_file=log_file, extra_env={"LOOPML_RELOAD_S": "2"})
        stack = None
        try:
            server.wait_ready()
            before = _post(server.url, "/model", {})["champion"]["version"]
            say(f"\n[1] serving {family}@champion = v{before} at {server.url}")
            moved = shift_columns(reference, target, 12)
            say(
                f"[2] sending {rows} requests' worth of shifted rows ({len(moved)} columns moved by 3 std, "
                f"labels flipped in the moved region) in batches of {BATCH}, then their true labels to /feedback"
            )
            accuracy, _ = _send_stream(server.url, stream, target, columns, feedback=True)
            say(f"    v{before} was right on {accuracy:.0%} of them")

            stack = ensure_stack(ws, port)
            client = AirflowClient(stack.url, give_up=stack.failure)
            for dag_id in ("drift_check", "drift_retrain"):
                client.wait_for_dag(dag_id)
                client.unpause(dag_id)
            conf = {"family": family, "window_hours": 1, "n_trials": trials, "max_size_ratio": DEMO_SIZE_RATIO}
            say(f"[3] drift_check for {family} (last hour of the inference log); conf {conf}")
            check_id = client.trigger("drift_check", conf)
            if follow_run(client, "drift_check", check_id, timeout_s=timeout_s, url=stack.url) != "success":
                return 1
            verdict = client.xcom("drift_check", check_id, "check_drift", map_index=0)
            say(f"    verdict: {verdict['status'].upper()}")
            for reason in verdict["reasons"]:
                say(f"      - {reason}")
            say(f"    Evidently report: {verdict['report_path']} (also in MLflow run {verdict['mlflow_run_id']})")
            if verdict["status"] != "drift":
                say("no drift was detected, so nothing was retrained")
                return 1

            retrain_id = client.xcom("drift_check", check_id, "trigger_retrain", key="trigger_run_id", map_index=0)
            say(f"[4] drift_check triggered drift_retrain run {retrain_id}")
            if follow_run(client, "drift_retrain", retrain_id, timeout_s=timeout_s, url=stack.url) != "success":
                return 1
            summary = client.xcom("drift_retrain", retrain_id, "end")
            say(
                f"    registered {family} v{summary['version']} (parent v{summary['parent_version']}, "
                f"data {summary['dataset_uri']}): {'PROMOTED' if summary['promoted'] else 'not promoted'} "
                f"- {summary['reason']}"
            )
            if not summary["promoted"]:
                return 1

            say(f"[5] waiting for the endpoint to pick up v{summary['version']} by itself")
            deadline = time.time() + 60
            while _post(server.url, "/model", {})["champion"]["version"] != summary["version"]:
                if time.time() > deadline:
                    say("    the endpoint did not switch within 60 s")
                    return 1
                time.sleep(1)
            accuracy, versions = _send_stream(server.url, stream, target, columns, feedback=False)
            say(f"    the same shifted rows, answered by v{sorted(versions)}: right on {accuracy:.0%}")
            say(f"\nloop closed: drift detected -> retrained -> v{summary['version']} promoted -> served")
            return 0
        finally:
            server.stop()
            if stack is not None:
                stack.stop()
