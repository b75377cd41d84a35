"""A version whose export fails is registered, served natively and explained (issue #18/#11).

In-process (no Airflow): data_preprocess, a one-trial search and the task estimator on a
table whose labels are text, with the ONNX conversion made to fail. The run succeeds;
the version carries the runtime and the reason; the loader serves it natively with
labels in the user's type; the advisor repeats the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from automl_tasks.advisor import export_notes
from automl_tasks.errors import ExportError
from automl_tasks.estimators.features import feature_frame
from automl_tasks.export import runtime
from automl_tasks.export.runtime import EXPORT_FALLBACK_TAG, NATIVE_RUNTIME, ONNX_RUNTIME, RUNTIME_TAG
from automl_tasks.labels import LABEL_KIND_TAG
from automl_tasks.model_store import load_predictor
from automl_tasks.tracking import mlflow_client
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
