"""The baseline of the text serving benchmark: a bare FastAPI + ONNX Runtime server.

Same ONNX file and tokenizer as the served version; no validation, no logging, no batching.

    LOOPML_BARE_ONNX=model.onnx LOOPML_BARE_BUNDLE=serving/ uvicorn benchmarks.bare_text_server:app
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from automl_tasks.deploy.text_model import load_text_onnx

MODEL = load_text_onnx(Path(os.environ["LOOPML_BARE_ONNX"]), Path(os.environ["LOOPML_BARE_BUNDLE"]))
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> dict:
    ids, _ = MODEL.tokenise([row["text"] for row in body["instances"]])
    proba = MODEL.proba_of_ids(ids)
    labels = MODEL.decode(MODEL.classes_[proba.argmax(axis=1)])
    return {"predictions": [str(v) for v in labels], "probabilities": np.round(proba, 6).tolist()}


@app.get("/readyz")
def ready() -> dict:
    return {"ok": True}
