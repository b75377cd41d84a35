"""One real embedded Airflow stack (api-server, scheduler, dag-processor) for the e2e tests."""

from __future__ import annotations

import os

import pytest

from automl_tasks.core.settings import Workspace
from loopml.airflow_client import AirflowClient
from loopml.embedded import AirflowStack, ensure_stack


@pytest.fixture(scope="session")
def e2e_workspace(tmp_path_factory) -> Workspace:
    return Workspace.at(tmp_path_factory.mktemp("e2e") / "ws").ensure()


#: Airflow settings for the test stacks only (what a user gets is in loopml/embedded.py). The
#: DAG files do not change during a test session, so the dag-processor parses each one once
#: instead of every 30 s (seven files, about 3 s of CPU each time, on a 2-core machine).
TEST_AIRFLOW_ENV = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"}

_shared_stack: dict[str, AirflowStack] = {}


@pytest.fixture(scope="session", autouse=True)
def _test_airflow_settings():
    saved = {key: os.environ.get(key) for key in TEST_AIRFLOW_ENV}
    os.environ.update(TEST_AIRFLOW_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def airflow(e2e_workspace):
    # scheduled drift checks would fire at the next hour boundary and race the drift tests;
    # they trigger drift_check by hand, the schedule itself is checked in test_dag_integrity
    os.environ["LOOPML_DRIFT_SCHEDULE"] = "none"
    stack = ensure_stack(e2e_workspace, port=18080)
    _shared_stack["stack"] = stack
    client = AirflowClient(stack.url)
    client.wait_for_dag("nocode_pipeline")
    client.unpause("nocode_pipeline")
    yield client
    _stop_shared_stack()


def _stop_shared_stack() -> None:
    stack = _shared_stack.pop("stack", None)
    if stack:
        stack.stop()


def pytest_runtest_teardown(item, nextitem):
    """Stop the shared stack right after the last test that uses it, whatever the order: an
    idle stack (scheduler loop, dag-processor, api-server) would otherwise take CPU from
    every test after it, the stack-supervision test's own stack and the unit tests included."""
    if "stack" not in _shared_stack:
        return
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any("airflow" in getattr(i, "fixturenames", ()) for i in later):
        _stop_shared_stack()


def run_pipeline(
    client: AirflowClient, conf: dict, timeout_s: float = 900, dag_id: str = "nocode_pipeline"
) -> tuple[str, str]:
    run_id = client.trigger(dag_id, conf)
    return run_id, client.wait_for_run(dag_id, run_id, timeout_s=timeout_s)


def states(client: AirflowClient, run_id: str, dag_id: str = "nocode_pipeline") -> dict[str, str]:
    out = {}
    for ti in client.task_instances(dag_id, run_id):
        key = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        out[key] = ti["state"]
    return out


def pytest_collection_modifyitems(items):
    """Every test that uses the shared Airflow stack is an `e2e` test, whatever its module's
    marks say (a serving module can hold one test that goes through an Airflow DAG)."""
    for item in items:
        if "airflow" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
