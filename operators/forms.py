"""The trigger forms of `automl_tasks.pipelines.forms` as Airflow Params, for the DAG files.

The rules (type, limits, choices) are the field's JSON schema, the same rules the request
classes check; title, description, section and examples only change how the form looks.
"""

from __future__ import annotations

from airflow.sdk import Param

from automl_tasks.pipelines.forms import FORMS, Field


def param(field: Field) -> Param:
    """One form field as an Airflow Param."""
    shown = {
        "title": field.title,
        "description": field.description,
        "section": field.section,
        "examples": list(field.examples),
    }
    return Param(field.default, **field.json_schema(), **{k: v for k, v in shown.items() if v})


def form_params(dag_id: str) -> dict[str, Param]:
    """The `params=` of DAG `dag_id`: its form's fields as Params, in the form's order."""
    return {field.name: param(field) for field in FORMS[dag_id]}
