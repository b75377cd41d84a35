"""Airflow UI plugin: loopml's pages on Airflow's api-server and links to them.

- `/loopml/...` (plugins/loopml_ui.py): a run's advice with Accept / Dismiss and the
  search-space editor, a family's search-space versions; the Families pages
  (plugins/loopml_families.py: lineage, scores, approvals, promote / roll back / batch
  inference as DAG runs); and a redirect to the MLflow UI
  of the running stack (read per request: `loopml run` and `loopml up` start it on
  different ports, so an address fixed at import time would point at a dead port).
- Navigation: the model families and the MLflow UI; on a DAG run's page, "Advisor" and
  "Study" tabs (plugins/loopml_study.py: the trials with filters and the advisor's plots).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from loopml_families import router as families_router
from loopml_study import router as study_router
from loopml_ui import app

app.include_router(families_router)
app.include_router(study_router)


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
            "name": "Model families",
            "href": "/loopml/families",
            "destination": "nav",
            "url_route": "loopml-families",
        },
        {
            "name": "Advisor",
            "href": "/loopml/advisor/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "loopml-advisor",
        },
        {
            "name": "Study",
            "href": "/loopml/study/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "loopml-study",
        },
    ]
