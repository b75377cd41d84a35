"""A version whose export fails is registered, served natively and explained (issue #18/#11).

In-process (no Airflow): data_preprocess, a one-trial search and the task estimator on a
table whose labels are text, with the ONNX conversion made to fail. The run succeeds;
the version carries the runtime and the reason; the loader serves it natively with
labels in the user's type; the advisor repeats the reason.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from automl_tasks.core.errors import ExportError
from automl_tasks.core.tags import EXPORT_FALLBACK_TAG, LABEL_KIND_TAG, NATIVE_PACKAGES_TAG, RUNTIME_TAG
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.deploy import runtime
from automl_tasks.deploy.runtime import NATIVE_RUNTIME, ONNX_RUNTIME
from automl_tasks.estimators.features import feature_frame
from automl_tasks.families.loading import load_predictor
from automl_tasks.pipelines.advisor import export_notes
from serving.image import family_packages
from tests.family_builder import LINEAR_SPACE, add_version


def _table(path, labels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    codes = (x[:, 0] + x[:, 1] > 0).astype(int)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(target=[labels[c] for c in codes])
    frame.to_csv(path, index=False)
    return frame


def test_failed_export_registers_a_native_version_with_the_reason(workspace, tmp_path, monkeypatch):
    frame = _table(tmp_path / "yesno.csv", ["no", "yes"])

    def no_converter(*args, **kwargs):
        raise ExportError("ONNX conversion of LogisticRegression failed: no converter (test)")

    monkeypatch.setattr(runtime, "export_pipeline", no_converter)
    registered = add_version(workspace, "yesno", n_trials=1, space=LINEAR_SPACE, dataset=str(tmp_path / "yesno.csv"))
    assert registered.runtime == NATIVE_RUNTIME and registered.onnx_parity_max_abs_diff is None
    version = mlflow_client(workspace).get_model_version("yesno", registered.version)
    assert version.tags[RUNTIME_TAG] == NATIVE_RUNTIME
    assert "no converter (test)" in version.tags[EXPORT_FALLBACK_TAG]
    assert version.tags[LABEL_KIND_TAG] == "str"
    # a native linear model needs scikit-learn only: its Bento's image gets no torch or CatBoost
    assert version.tags[NATIVE_PACKAGES_TAG] == "scikit-learn"
    assert family_packages([version]) == ()
    # and restoring its logged model's environment installs no other model's library either
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/yesno/{registered.version}")).read_text()
    names = {line.split("==")[0] for line in requirements.split()}
    assert "scikit-learn" in names and not names & {"torch", "catboost", "lightgbm", "xgboost-cpu"}, names

    predictor = load_predictor(workspace, "yesno")
    assert predictor.runtime == NATIVE_RUNTIME
    labels, proba = predictor.predict_fn(feature_frame(frame.head(20), predictor.schema))
    assert set(labels.tolist()) <= {"no", "yes"} and proba.shape == (20, 2)

    study = version.tags["loopml.study"]
    notes = export_notes(workspace, "yesno", study)
    assert len(notes) == 1 and "no converter (test)" in notes[0]["text"]


def test_bool_labels_are_served_as_bools_by_onnx_runtime(workspace, tmp_path):
    frame = _table(tmp_path / "flag.csv", [False, True])
    registered = add_version(workspace, "flag", n_trials=1, space=LINEAR_SPACE, dataset=str(tmp_path / "flag.csv"))
    assert registered.runtime == ONNX_RUNTIME
    predictor = load_predictor(workspace, "flag")
    assert predictor.runtime == ONNX_RUNTIME
    labels, _ = predictor.predict_fn(feature_frame(frame.head(20), predictor.schema))
    assert {type(v) for v in labels.tolist()} == {bool}
    assert (
        export_notes(workspace, "flag", mlflow_client(workspace).get_model_version("flag", "1").tags["loopml.study"])
        == []
    )


FOREST_SPACE = """
params:
  - {name: scaling, type: string, range: [zscore]}
  - name: model
    type: string
    range: [random_forest]
    submodule:
      random_forest:
        - {name: n_estimators, type: int, range: [10, 12], default: 10}
        - {name: max_depth, type: int_cat, range: [4, 8], default: 4}
        - {name: min_samples_leaf, type: int, range: [1, 2], default: 1}
"""


def test_serving_fast_path_runs_a_float64_forest_and_answers_in_the_users_type(workspace, tmp_path):
    """The service's array path (no DataFrame) must feed the input type the ONNX file declares
    (float64 for forests) and decode labels like the frame path does."""
    import json

    from serving.loader import load_served_model
    from serving.request_model import RequestModel, features_runner, served_schema

    frame = _table(tmp_path / "forest.csv", ["no", "yes"])
    add_version(workspace, "forest", n_trials=1, space=FOREST_SPACE, dataset=str(tmp_path / "forest.csv"))
    model = load_served_model(workspace, "forest")
    assert model.runtime == ONNX_RUNTIME and model.onnx_model.numeric_dtype is np.float64
    rows = frame.drop(columns="target").head(30).to_dict(orient="records")
    _, features = RequestModel(served_schema(model)).parse(json.dumps({"instances": rows}).encode())
    run = features_runner(model.predict_fn, served_schema(model), model.onnx_model, model.labels)
    fast_labels, fast_proba = run(features)
    frame_labels, frame_proba = model.predict_fn(feature_frame(frame.head(30), model.schema))
    assert list(fast_labels) == list(frame_labels) and set(fast_labels) <= {"no", "yes"}
    np.testing.assert_allclose(fast_proba, frame_proba, atol=1e-6)
