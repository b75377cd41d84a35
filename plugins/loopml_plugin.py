"""Airflow UI plugin: links from Airflow's navigation to loopml's other UIs.

The MLflow UI address comes from LOOPML_MLFLOW_UI_URL (set by `loopml up`); the
model-family and advisor pages arrive with the model-registry issue.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin

MLFLOW_UI_URL = os.environ.get("LOOPML_MLFLOW_UI_URL", "http://127.0.0.1:5000")


class LoopmlPlugin(AirflowPlugin):
    name = "loopml"
    external_views = [
        {
            "name": "MLflow (runs, models, advisor plots)",
            "href": MLFLOW_UI_URL,
            "destination": "nav",
            "url_route": "loopml-mlflow",
        },
    ]
