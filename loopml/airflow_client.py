"""A small client for Airflow's REST API v2: trigger a DAG run and follow it to the end."""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import httpx

from loopml.transient_db import retry_transient_db

TERMINAL = ("success", "failed")


class AirflowClient:
    """REST calls the CLI and the tests need; every error names the call that failed."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; GET/PATCH/PUT/DELETE are repeated on a transient metadata-DB error."""
        if method.upper() == "POST":
            return self._call_once(method, path, **kwargs)
        return retry_transient_db(lambda: self._call_once(method, path, **kwargs), on_retry=_say_retry)

    def _call_once(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"Airflow {method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def healthy(self) -> bool:
        try:
            health = self.http.get("/api/v2/monitor/health", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        return health.get("metadatabase", {}).get("status") == "healthy" and (
            health.get("scheduler", {}).get("status") == "healthy"
        )

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed `dag_id`; fail with its import errors."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            response = self.http.get(f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            time.sleep(1)
        errors = self._call("GET", "/api/v2/importErrors").get("import_errors", [])
        detail = "; ".join(f"{e['filename']}: {e['stack_trace'][-300:]}" for e in errors) or "no import errors"
        raise RuntimeError(f"DAG {dag_id!r} did not appear within {timeout_s:.0f}s ({detail})")

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a run with a run id chosen here, so that repeating the POST after a transient
        database error cannot start a second run (a 409 says the first attempt was committed)."""
        run_id = f"manual__loopml_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}

        def post() -> str:
            try:
                return self._call_once("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]
            except RuntimeError as exc:
                if posted and " -> 409" in str(exc):
                    return run_id
                raise
            finally:
                posted.append(True)

        posted: list[bool] = []
        return retry_transient_db(post, on_retry=_say_retry)

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 1800, on_poll=None) -> str:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            state = self.run_state(dag_id, run_id)
            if on_poll:
                on_poll(state)
            if state in TERMINAL:
                return state
            time.sleep(2)
        raise TimeoutError(f"DAG run {dag_id}/{run_id} still running after {timeout_s:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        data = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return data["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        data = self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        content = data.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(_log_line(item) for item in content)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        data = self._call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True},
        )
        return data["value"]


def _say_retry(exc: BaseException, delay_s: float) -> None:
    """One stderr line per repeat, so a soak run shows how often the database was busy."""
    print(f"Airflow metadata DB busy ({str(exc)[:120]}); repeating the call in {delay_s:g} s", file=sys.stderr)


def _log_line(item: Any) -> str:
    """One structured task-log entry as text, with the exception message when it has one."""
    if not isinstance(item, dict):
        return str(item)
    line = str(item.get("event", item))
    for detail in item.get("error_detail") or []:
        if isinstance(detail, dict) and detail.get("exc_value"):
            line += f"\n{detail.get('exc_type', 'Error')}: {detail['exc_value']}"
    return line
