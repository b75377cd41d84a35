"""Run a DAG on the embedded stack and follow it to the end: shared by the CLI commands
and the drift demo, which both print the run's progress to the terminal."""

from __future__ import annotations

import time
from typing import Any

from automl_tasks.core.settings import Workspace


def say(text: str) -> None:
    print(text, flush=True)


def _print_failure(client, dag_id: str, run_id: str) -> None:
    for ti in client.task_instances(dag_id, run_id):
        if ti["state"] != "failed":
            continue
        where = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        say(f"  task {where} failed; last log lines:")
        try:
            text = client.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti.get("map_index", -1))
        except Exception as exc:  # logs are a courtesy; the state is what counts
            text = f"(could not read the log: {exc})"
        lines = [line for line in text.splitlines() if line.strip()]
        for line in lines[-15:]:
            say(f"    {line[:400]}")


def follow_run(client, dag_id: str, run_id: str, *, timeout_s: float, url: str = "") -> str:
    """Wait for a DAG run, printing each task's state changes; print the failed tasks' logs."""
    started = time.time()
    if url:
        say(f"triggered {dag_id} run {run_id}; follow it at {url}/dags/{dag_id}/runs/{run_id}")
    seen: dict[str, str] = {}

    def report(_state: str) -> None:
        for ti in client.task_instances(dag_id, run_id):
            key = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            if ti["state"] and seen.get(key) != ti["state"]:
                seen[key] = ti["state"]
                say(f"  {key}: {ti['state']}")

    # each poll lists the task instances: once a second keeps the metadata DB quiet
    state = client.wait_for_run(dag_id, run_id, timeout_s=timeout_s, on_poll=report, poll_s=1.0)
    say(f"{dag_id} run {run_id}: {state} after {time.time() - started:.0f}s")
    if state != "success":
        _print_failure(client, dag_id, run_id)
    return state


def run_dag(ws: Workspace, dag_id: str, conf: dict[str, Any], *, port: int, timeout_s: float) -> tuple[str, Any]:
    """Trigger `dag_id` on the embedded stack and wait; return (state, the `end` task's XCom).

    The stack (reused or started here) may restart a component meanwhile: the client
    retries while the API is away and picks the run up again.
    """
    from loopml.airflow_client import AirflowApiError, AirflowClient
    from loopml.embedded import ensure_stack

    say(f"workspace: {ws.home}")
    started = time.time()
    stack = ensure_stack(ws, port, say=say)
    how = "given by LOOPML_AIRFLOW_URL" if stack.external_url else "reused" if not stack.owned else "started"
    say(f"Airflow {how} at {stack.url} ({time.time() - started:.0f}s)")
    try:
        client = AirflowClient(stack.url, say=say, give_up=stack.failure)
        client.wait_for_dag(dag_id)
        client.unpause(dag_id)
        run_id = client.trigger(dag_id, conf)
        state = follow_run(client, dag_id, run_id, timeout_s=timeout_s, url=stack.url)
        if state != "success":
            return state, None
        try:
            return state, client.xcom(dag_id, run_id, "end")
        except AirflowApiError:
            return state, None
    finally:
        stack.stop()
