"""Airflow UI plugin: loopml's pages on Airflow's api-server and links to them.

- `/loopml/...` (plugins/loopml_ui.py): a run's advice with Accept / Dismiss and the
  search-space editor, a family's search-space versions, and a redirect to the MLflow UI
  of the running stack (read per request: `loopml run` and `loopml up` start it on
  different ports, so an address fixed at import time would point at a dead port).
- Navigation: the MLflow UI; on a DAG run's page, an "Advisor" tab for that run.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from loopml_ui import app


class LoopmlPlugin(AirflowPlugin):
    name = "loopml"
    fastapi_apps = [{"app": app, "url_prefix": "/loopml", "name": "loopml"}]
    external_views = [
        {
            "name": "MLflow (runs, models, advisor plots)",
            "href": "/loopml/go/mlflow",
            "destination": "nav",
            "url_route": "loopml-mlflow",
        },
        {
            "name": "Advisor",
            "href": "/loopml/advisor/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "loopml-advisor",
        },
    ]
