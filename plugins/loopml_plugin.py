"""Airflow UI plugin: loopml's pages on Airflow's api-server and links to them.

- `/loopml/...` (plugins/loopml_ui.py): a run's advice with Accept / Dismiss and the
  search-space editor, a family's search-space versions; the Families pages
  (plugins/loopml_families.py: lineage, scores, approvals, promote / roll back / batch
  inference as DAG runs); the Label page (plugins/loopml_label.py: label an active-learning
  batch, or upload its labels, then retrain); and a redirect to the MLflow UI
  of the running stack (read per request: `loopml run` and `loopml up` start it on
  different ports, so an address fixed at import time would point at a dead port).
- Every task links to its pipeline's MLflow run ("MLflow run" extra link).
- Navigation: the model families and the MLflow UI; on a DAG run's page, "Advisor" and
  "Study" tabs (plugins/loopml_study.py: the trials with filters and the advisor's plots).
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from loopml_families import router as families_router
from loopml_label import router as label_router
from loopml_study import router as study_router
from loopml_ui import app

for router in (families_router, study_router, label_router):
    app.include_router(router)


class MlflowRunLink(BaseOperatorLink):
    """A link on every task to the MLflow run of its pipeline run (through loopml's redirect,
    which finds the run by its DAG run tag and the MLflow UI of the running stack)."""

    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        return f"/loopml/go/mlflow/dagrun/{quote(ti_key.dag_id, safe='')}/{quote(ti_key.run_id, safe='')}"


class LoopmlPlugin(AirflowPlugin):
    name = "loopml"
    global_operator_extra_links = [MlflowRunLink()]
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
