"""A small client for Airflow's REST API v2: trigger a DAG run and follow it to the end.

While the stack restarts a component (the supervisor in loopml.supervisor), the API may
refuse connections for a while: calls retry connection errors with backoff for `retry_s`
seconds, say so once ("Airflow API unavailable, retrying for N s"), and go on where they
were. Every other failure is an `AirflowApiError` whose message names the call and
Airflow's own explanation, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from loopml.transient_db import retry_transient_db

TERMINAL = ("success", "failed")
#: answers of a proxy or a starting server: the call is retried like a refused connection
RETRY_STATUS = (502, 503, 504)
DEFAULT_RETRY_S = 300.0


class AirflowApiError(RuntimeError):
    """Airflow answered a call with an error (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AirflowUnavailable(AirflowApiError):
    """The API did not answer within the retry budget (or the stack stopped)."""


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _detail(response: httpx.Response) -> str:
    """Airflow's explanation of an error answer (FastAPI's `detail`), as one line."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    if isinstance(detail, list):  # pydantic validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    elif isinstance(detail, dict):
        detail = detail.get("reason") or detail.get("message") or str(detail)
    return " ".join(str(detail).split())[:500]


#: An answer within about one scheduler loop of the task parking itself can lose a race in
#: Airflow 3.3: the scheduler re-queues the resumed task, then reads the parked run's exit
#: ("success", same try number) and marks the task failed ("state changed externally").
#: A person never answers that fast; a script waits this long after the task started (with 3 s
#: an approval on a loaded 2-core CI run failed the task, most likely this race).
HITL_SETTLE_S = 8.0


def hitl_settled(started: datetime | None) -> bool:
    """Whether a human-in-the-loop task that started at `started` has waited `HITL_SETTLE_S`."""
    return started is not None and time.time() - started.timestamp() >= HITL_SETTLE_S


class TokenAuth(httpx.Auth):
    """Airflow 3's login for API clients: POST /auth/token with a user's name and password
    gives a JWT, sent as a bearer token; fetched again once when Airflow answers 401 (it expired).
    An httpx auth flow rather than a generated client: the rest of this client is httpx too."""

    def __init__(self, base_url: str, username: str = "", password: str = "", *, token: str | None = None) -> None:
        self.base_url, self.username, self.password = base_url, username, password
        self.token = token  # a ready token (LOOPML_AIRFLOW_TOKEN): used as it is, never renewed

    def _login(self) -> str:
        # a refused connection propagates: the client's calls retry it like any other
        answer = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
            trust_env=False,
        )
        if answer.status_code >= 400:
            raise AirflowApiError(
                f"Airflow refused the login of user {self.username!r} (LOOPML_AIRFLOW_USER): {_detail(answer)}",
                answer.status_code,
            )
        return answer.json()["access_token"]

    def auth_flow(self, request: httpx.Request):
        if self.token is None:
            self.token = self._login()
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401 and self.username:
            self.token = self._login()
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


def auth_from_env(base_url: str, environ: dict[str, str] | None = None) -> httpx.Auth | None:
    """The login the environment gives: LOOPML_AIRFLOW_USER and LOOPML_AIRFLOW_PASSWORD, or a
    ready token in LOOPML_AIRFLOW_TOKEN; None for the embedded stack, which needs none."""
    env = os.environ if environ is None else environ
    if env.get("LOOPML_AIRFLOW_TOKEN"):
        return TokenAuth(base_url, token=env["LOOPML_AIRFLOW_TOKEN"])
    if env.get("LOOPML_AIRFLOW_USER"):
        return TokenAuth(base_url, env["LOOPML_AIRFLOW_USER"], env.get("LOOPML_AIRFLOW_PASSWORD", ""))
    return None


class AirflowClient:
    """REST calls the CLI and the tests need; every error names the call that failed.

    `retry_s`: how long a call keeps retrying a refused/broken connection (default from
    LOOPML_API_RETRY_S, else 300 s); `say` prints the retry notices; `give_up` returns a
    reason to stop retrying at once (e.g. the stack's supervisor gave up), else None.
    `auth`: how to log in to an Airflow that requires it (default: `auth_from_env`).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        *,
        retry_s: float | None = None,
        say: Callable[[str], None] = _stderr,
        give_up: Callable[[], str | None] | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, trust_env=False, auth=auth or auth_from_env(self.base_url)
        )
        self.retry_s = float(os.environ.get("LOOPML_API_RETRY_S", DEFAULT_RETRY_S)) if retry_s is None else retry_s
        self.say = say
        self.give_up = give_up

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call, retried with backoff while the API is unreachable.

        A non-idempotent call (POST) is retried only when the connection was refused
        (the request never reached Airflow), so a run is never triggered twice.
        """
        retry_any = method.upper() != "POST"
        deadline = time.time() + self.retry_s
        delay, announced = 1.0, False
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
                if response.status_code not in RETRY_STATUS:
                    if announced:
                        self.say("Airflow API is back")
                    return response
                problem = f"{response.status_code} {_detail(response)[:200]}"
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = str(exc) or type(exc).__name__
            except httpx.TransportError as exc:
                if not retry_any:
                    raise AirflowUnavailable(
                        f"Airflow {method} {path}: connection lost ({exc}); the call may or may not have "
                        f"been applied: check the Airflow UI before repeating it"
                    ) from None
                problem = str(exc) or type(exc).__name__
            reason = self.give_up() if self.give_up else None
            if reason:
                raise AirflowUnavailable(f"Airflow API unavailable: {reason}")
            if time.time() + delay > deadline:
                raise AirflowUnavailable(
                    f"Airflow API at {self.base_url} unavailable ({problem}) "
                    f"{'for ' + format(self.retry_s, '.0f') + ' s' if self.retry_s else ''}".rstrip()
                )
            if not announced:
                self.say(f"Airflow API unavailable ({problem}), retrying for {self.retry_s:.0f} s")
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; GET/PATCH/PUT/DELETE are repeated on a transient metadata-DB error."""
        if method.upper() == "POST":
            return self._call_once(method, path, **kwargs)
        return retry_transient_db(lambda: self._call_once(method, path, **kwargs), on_retry=_say_retry)

    def _call_once(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(
                f"Airflow {method} {path} -> {response.status_code}: {_detail(response)}", response.status_code
            )
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
            response = self._request("GET", f"/api/v2/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            if response.status_code != 404:  # 404: not parsed yet; anything else is an answer
                raise AirflowApiError(
                    f"Airflow GET /api/v2/dags/{dag_id} -> {response.status_code}: {_detail(response)}",
                    response.status_code,
                )
            time.sleep(1)
        errors = self._call("GET", "/api/v2/importErrors").get("import_errors", [])
        detail = "; ".join(f"{e['filename']}: {e['stack_trace'][-300:]}" for e in errors) or "no import errors"
        raise AirflowApiError(f"DAG {dag_id!r} did not appear within {timeout_s:.0f}s ({detail})")

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a run with a run id chosen here, so that repeating the POST after a transient
        database error cannot start a second run (a 409 says the first attempt was committed).
        A conf the DAG's form rejects raises AirflowApiError with Airflow's reason."""
        run_id = f"manual__loopml_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        posted: list[bool] = []

        def post() -> str:
            try:
                return self._call_once("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]
            except AirflowApiError as exc:
                if posted and exc.status == 409:
                    return run_id
                if exc.status in (400, 422):
                    reason = str(exc).split(": ", 1)[-1]
                    raise AirflowApiError(f"Airflow refused the {dag_id} run: {reason}", exc.status) from None
                raise
            finally:
                posted.append(True)

        return retry_transient_db(post, on_retry=_say_retry)

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark a DAG run `failed` or `success` (as the UI's "Mark as" does)."""
        self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 1800, on_poll=None, poll_s: float = 0.5) -> str:
        """The run's final state; `on_poll(state)` is called at each poll (a GET on loopback: cheap)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            state = self.run_state(dag_id, run_id)
            if on_poll:
                on_poll(state)
            if state in TERMINAL:
                return state
            time.sleep(poll_s)
        raise TimeoutError(f"DAG run {dag_id}/{run_id} still running after {timeout_s:.0f}s")

    def answer(
        self, dag_id: str, run_id: str, task_id: str, option: str, *, map_index: int = -1, timeout_s: float = 300
    ) -> dict[str, Any]:
        """Answer a human-in-the-loop task (e.g. an approval: "Approve" or "Reject") once it
        waits for input, as a person does in Airflow's "Required actions" view."""
        deadline = time.time() + timeout_s
        while True:
            found = {ti["task_id"]: ti for ti in self.task_instances(dag_id, run_id)}.get(task_id) or {}
            started = found.get("start_date")
            settled = hitl_settled(datetime.fromisoformat(started) if started else None)
            if found.get("state") == "awaiting_input" and settled:
                break
            if time.time() > deadline or self.run_state(dag_id, run_id) in TERMINAL:
                raise AirflowApiError(f"{dag_id} run {run_id}: {task_id} is {found.get('state')}, not awaiting input")
            time.sleep(0.5)
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return self._call("PATCH", path, json={"chosen_options": [option]})

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
