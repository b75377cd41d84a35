"""Retries of Airflow API calls that hit a transient metadata-DB error (SQLite lock)."""

from __future__ import annotations

import httpx
import pytest

from loopml.airflow_client import AirflowClient
from loopml.transient_db import is_transient_db_error, retry_transient_db

DB_ERROR = {"detail": {"reason": "Database error", "statement": "hidden", "orig_error": "hidden"}}


def test_only_a_500_database_error_is_transient():
    assert is_transient_db_error(RuntimeError(f"Airflow PATCH /api/v2/dags/x -> 500: {DB_ERROR}"))
    assert not is_transient_db_error(RuntimeError("Airflow PATCH /api/v2/dags/x -> 500: something else"))
    assert not is_transient_db_error(RuntimeError("Airflow POST /x -> 422: Database error in a param"))


def test_retry_gives_up_after_its_budget_and_raises_the_error():
    calls = []

    def always_locked():
        calls.append(1)
        raise RuntimeError("Airflow GET /x -> 500: database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        retry_transient_db(always_locked, delays_s=(0, 0))
    assert len(calls) == 3


def _client(handler) -> AirflowClient:
    client = AirflowClient("http://airflow.invalid")
    client.http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(handler))
    return client


def test_unpause_is_repeated_after_a_database_error(monkeypatch):
    monkeypatch.setattr("loopml.transient_db.time.sleep", lambda s: None)
    answers = iter([httpx.Response(500, json=DB_ERROR), httpx.Response(200, json={"is_paused": False})])
    seen = []

    def handler(request):
        seen.append(request.method)
        return next(answers)

    _client(handler).unpause("nocode_pipeline")
    assert seen == ["PATCH", "PATCH"]


def test_a_trigger_committed_before_the_error_is_not_started_twice(monkeypatch):
    """The run id is chosen by the client: a 409 on the repeat means the first POST was committed."""
    monkeypatch.setattr("loopml.transient_db.time.sleep", lambda s: None)
    bodies = []

    def handler(request):
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(500, json=DB_ERROR)
        return httpx.Response(409, json={"detail": {"reason": "Unique constraint violation"}})

    run_id = _client(handler).trigger("nocode_pipeline", {"n_trials": 2})
    assert len(bodies) == 2 and bodies[0] == bodies[1], "the repeat posts the same run id"
    assert run_id.encode() in bodies[0]


def test_a_409_on_the_first_trigger_is_an_error():
    def handler(request):
        return httpx.Response(409, json={"detail": "exists"})

    with pytest.raises(RuntimeError, match="409"):
        _client(handler).trigger("nocode_pipeline", {})
