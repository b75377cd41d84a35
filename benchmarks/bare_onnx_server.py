"""The baseline for the serving benchmark: a bare FastAPI + ONNX Runtime server.

Same model file, same feature conversion, no validation, no logging, no batching.

    LOOPML_BARE_ONNX=model.onnx LOOPML_BARE_SCHEMA=feature_schema.json uvicorn benchmarks.bare_onnx_server:app
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
from fastapi import FastAPI

from automl_tasks.deploy.onnx_model import OnnxModel
from automl_tasks.estimators.features import FeatureSchema, feature_frame

SCHEMA = FeatureSchema.from_dict(json.loads(open(os.environ["LOOPML_BARE_SCHEMA"]).read()))
MODEL = OnnxModel(os.environ["LOOPML_BARE_ONNX"], SCHEMA)
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> dict:
    # MODEL.schema: what the file is fed (its graph computes some derived columns itself)
    frame = feature_frame(pd.DataFrame(body["instances"], columns=list(SCHEMA.input_columns)), MODEL.schema)
    labels, proba = MODEL.run(frame)
    out = {"predictions": labels.tolist()}
    if proba is not None:
        out["probabilities"] = np.round(proba, 6).tolist()
    return out


@app.get("/readyz")
def ready() -> dict:
    return {"ok": True}
