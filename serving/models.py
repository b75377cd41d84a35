"""Load any family version for serving: a tabular model (`serving.loader`) or a text model
(`serving.text_model`), told apart by the version's `loopml.modality` tag."""

from __future__ import annotations

from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import MODALITY_TAG
from automl_tasks.core.tracking import mlflow_client
from serving.loader import load_served_model
from serving.text_model import load_text_model


def load_model(ws: Workspace, family: str, alias: str) -> Any:  # ServedModel | TextServedModel
    """The version behind `family@alias`, ready to predict."""
    version = mlflow_client(ws).get_model_version_by_alias(family, alias)
    if version.tags.get(MODALITY_TAG) == "text":
        return load_text_model(ws, family, alias, version)
    return load_served_model(ws, family, alias)
