"""Export correctness as a property (issue #18, #11 item 1).

Every model branch of the default tabular space (and digits_cnn) x every label
representation a user or the feedback path can produce x binary / multiclass /
regression (targets near 1 and near 1e6), on tiny tables whose values sit on a coarse
grid, so many rows lie exactly on split points. For each case the ONNX model loads in
ONNX Runtime and agrees with the native model (labels exactly, in the user's type;
probabilities and regression values within the scale-relative tolerance), or the
version falls back to the native runtime and says why. Every case of the default space
is expected to export (the fallback is exercised by a model without a converter).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.labels import LabelSpec, normalise_feedback_labels, normalise_target
from automl_tasks.deploy.onnx_model import OnnxModel
from automl_tasks.deploy.runtime import NATIVE_RUNTIME, ONNX_RUNTIME, export_or_fallback
from automl_tasks.estimators.features import FeatureSchema, feature_frame
from automl_tasks.estimators.onnx.conversion import export_pipeline
from automl_tasks.estimators.preprocessing import ENCODINGS
from automl_tasks.estimators.tabular import MODELS, make_pipeline
from automl_tasks.monitoring import InferenceLog, InferenceRecord
from automl_tasks.search_space import load_search_space
from serving.loader import ServedModel

N = 160
TINY = {
    "lightgbm": {"model.lightgbm.n_estimators": 8, "model.lightgbm.min_child_samples": 2},
    "xgboost": {
        "model.xgboost.n_estimators": 8,
        "model.xgboost.max_leaves": 16,
        "model.xgboost.min_child_weight": 0.01,
    },
    "catboost": {"model.catboost.n_estimators": 8, "model.catboost.depth": 4},
    "random_forest": {"model.random_forest.n_estimators": 6, "model.random_forest.max_depth": 0},
    "extra_trees": {"model.extra_trees.n_estimators": 6, "model.extra_trees.max_depth": 0},
    "linear": {"model.linear.C": 1.0},
    "mlp": {"model.mlp.epochs": 3, "model.mlp.hidden_units": 8, "model.mlp.n_layers": 1},
}
SCALINGS = ("zscore", "minmax", "log")
CLASS_KINDS = ("int", "float_ints", "bool", "string", "categorical", "feedback_json")
REGRESSION_KINDS = ("float", "int", "feedback_json")


def _features(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            # coarse grids: many equal values, so split thresholds fall between neighbours
            "grid": rng.integers(0, 12, N) * 0.25,
            "money": np.round(rng.normal(3e5, 1e5, N), 2),
            "small": np.round(rng.normal(0, 1, N), 1),
            "colour": rng.choice(["red", "green", "blue"], N),
        }
    )


def _classes(kind: str, n_classes: int) -> list:
    base = list(range(n_classes))
    if kind in ("int", "feedback_json"):
        return [c * 2 + 1 for c in base]
    if kind == "float_ints":
        return [float(c) for c in base]
    if kind == "bool":
        return [False, True]
    return [f"class_{'abc'[c]}" for c in base]


def _through_feedback(labels: list) -> pd.Series:
    """Labels as drift_retrain reads them: posted as JSON to /feedback, stored in the
    inference log and read back as a window in which one request has no label yet (the
    NaN turns integer labels into float64: the cause of issue #18)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        log = InferenceLog(Path(folder) / "log.sqlite", "f")
        request_id = uuid.uuid4().hex
        log.append(InferenceRecord(request_id, "1", "champion", {"x": i}, None, 0.0) for i in range(len(labels)))
        log.add_labels(request_id, json.loads(json.dumps(labels)))
        log.append([InferenceRecord("unlabelled", "1", "champion", {"x": -1}, None, 0.0)])
        window = log.read()
    assert window["_label"].isna().sum() == 1
    return window["_label"]


def _table(task: str, kind: str, scale: float, seed: int) -> tuple[pd.DataFrame, LabelSpec, pd.Series]:
    """(canonical table, spec, the labels as the user gave them)."""
    frame = _features(seed)
    signal = frame["grid"] + (frame["colour"] == "red") + frame["small"]
    if task == "regression":
        target = (signal * scale).round(3)
        raw = target.round().astype(int) if kind == "int" else target
    else:
        n_classes = 2 if task == "binary" else 3
        codes = pd.qcut(signal.rank(method="first"), n_classes, labels=False).to_numpy()
        values = _classes(kind, n_classes)
        raw = pd.Series([values[c] for c in codes])
        if kind == "categorical":
            raw = raw.astype("category")
    if kind == "feedback_json":
        labels = _through_feedback(raw.tolist())
        spec = LabelSpec.infer(raw, task)  # the champion's spec, from its original table
        # one more row than labels were sent for: the unlabelled request
        window = pd.concat([frame, frame.head(1)], ignore_index=True).assign(target=labels.to_numpy())
        table = normalise_feedback_labels(window, "target", spec, source="feedback")
        return table.reset_index(drop=True), spec, raw
    table, spec = normalise_target(frame.assign(target=raw), "target", task, source="table")
    return table, spec, raw


def _cases():
    cases = []
    for i, model in enumerate(MODELS):
        for j, task in enumerate(("binary", "multiclass")):
            for k, kind in enumerate(CLASS_KINDS):
                if kind == "bool" and task == "multiclass":
                    continue
                cases.append((model, task, kind, 1.0, SCALINGS[(i + j + k) % 3], ENCODINGS[(j + k) % 3]))
        for k, kind in enumerate(REGRESSION_KINDS):
            for scale in (1.0, 1e6):
                cases.append((model, "regression", kind, scale, SCALINGS[(i + k) % 3], ENCODINGS[k % 3]))
    # the forests on every scaling: float32 scaling once flipped rows on split points
    cases += [(m, "binary", "int", 1.0, s, "onehot") for m in ("random_forest", "extra_trees") for s in SCALINGS]
    return cases


def test_the_cases_cover_every_model_a_space_can_name():
    """Every model of the tabular pipeline (the default space's, and XGBoost and CatBoost,
    which a user's space can add) is exported in every case."""
    space = load_search_space(Path("automl_tasks/search_space/default_tabular.yaml").read_text())
    branches = set(next(p for p in space.params if p.name == "model").range)
    assert branches < set(MODELS) == {c[0] for c in _cases()}


@pytest.mark.parametrize(("model", "task", "kind", "scale", "scaling", "encoding"), _cases())
def test_export_agrees_or_falls_back_with_a_reason(model, task, kind, scale, scaling, encoding, tmp_path):
    table, spec, raw = _table(task, kind, scale, seed=len(model) + len(kind))
    features = table.drop(columns=["target"])
    schema = FeatureSchema.infer(features)
    x = feature_frame(features, schema)
    y = table["target"].to_numpy()
    if task != "regression":
        assert y.dtype == (np.int64 if spec.integer_canonical else object), y.dtype
    config = {"model": model, "scaling": scaling, "imputation": "median", "categorical_encoding": encoding}
    pipeline = make_pipeline(config | TINY[model], schema, task).fit(x, y)

    deployment = export_or_fallback(pipeline, schema, tmp_path, x, spec)

    assert deployment.runtime == ONNX_RUNTIME, deployment.fallback_reason
    assert deployment.parity.ok and deployment.parity.share_within_tolerance == 1.0
    if task == "regression":
        return
    # the service answers in the user's type, whichever runtime serves the version
    run = OnnxModel(deployment.onnx_path, schema).run if deployment.onnx_path else None
    predicted, proba = run(x) if run else (pipeline.predict(x), pipeline.predict_proba(x))
    answer = ServedModel(None, "f", "1", "champion", deployment.runtime, schema, None).answer(
        spec.decode(predicted), proba
    )
    answer = json.loads(json.dumps(answer))
    original = {json.dumps(v) for v in pd.Series(raw).astype(object).tolist()}
    assert {json.dumps(v) for v in answer["predictions"]} <= original, (answer["predictions"][:3], original)


def test_native_encoding_splits_lightgbm_on_categories_and_exports_unseen_ones_with_parity(tmp_path):
    """LightGBM under the `native` encoding makes categorical splits (not thresholds on
    codes), and its ONNX model routes a category it never saw as LightGBM does."""
    rng = np.random.default_rng(0)
    frame = _features(0).assign(shop=rng.choice([f"s{i}" for i in range(20)], N))
    effect = {f"s{i}": rng.normal() for i in range(20)}
    y = frame["shop"].map(effect).to_numpy() + frame["small"].to_numpy()
    schema = FeatureSchema.infer(frame)
    x = feature_frame(frame, schema)
    config = {"model": "lightgbm", "categorical_encoding": "native"} | TINY["lightgbm"]
    pipeline = make_pipeline(config, schema, "regression").fit(x, y)
    assert json.dumps(pipeline.steps[-1][1].booster_.dump_model()).count('"decision_type": "=="') > 0
    unseen = x.head(20).assign(shop="never-seen", colour="purple")
    deployment = export_or_fallback(pipeline, schema, tmp_path, pd.concat([x, unseen]), None)
    assert deployment.runtime == ONNX_RUNTIME, deployment.fallback_reason
    assert deployment.parity.ok and deployment.parity.share_within_tolerance == 1.0


@pytest.mark.parametrize("scaling", SCALINGS)
def test_lightgbm_exports_with_float64_features_and_thresholds(scaling, tmp_path):
    """Values 0.01 apart near 1e6 are one float32 apart at best (its step there is 0.0625):
    LightGBM splits between them in float64, so its ONNX model must impute, scale and
    compare in float64 too, or rows cross split points (ames disagreed on 3.6% of rows)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"reading": 1e6 + rng.integers(0, 400, 600) * 0.01, "noise": rng.normal(size=600)})
    y = np.sin(frame["reading"].to_numpy() * 3.0) + 0.1 * frame["noise"].to_numpy()
    schema = FeatureSchema.infer(frame)
    x = feature_frame(frame, schema)
    config = {"model": "lightgbm", "scaling": scaling, "model.lightgbm.num_leaves": 64}
    pipeline = make_pipeline(config | TINY["lightgbm"] | {"model.lightgbm.n_estimators": 40}, schema, "regression")
    pipeline.fit(x, y)
    deployment = export_or_fallback(pipeline, schema, tmp_path, x, None)
    assert deployment.runtime == ONNX_RUNTIME, deployment.fallback_reason
    assert deployment.parity.ok and deployment.parity.share_within_tolerance == 1.0


def test_a_model_that_cannot_be_exported_is_served_natively_with_the_reason(tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    table, spec, _ = _table("binary", "string", 1.0, seed=0)
    features = table.drop(columns=["target"])
    schema = FeatureSchema.infer(features)
    x = feature_frame(features, schema)
    pipeline = make_pipeline({"model": "linear"}, schema, "binary")
    pipeline = Pipeline([pipeline.steps[0], ("model", DummyClassifier())]).fit(x, table["target"].to_numpy())
    deployment = export_or_fallback(pipeline, schema, tmp_path, x, spec)
    assert deployment.runtime == NATIVE_RUNTIME and deployment.onnx_path is None
    assert "ONNX conversion of DummyClassifier failed" in deployment.fallback_reason
    assert deployment.tags()["loopml.export_fallback_reason"] == deployment.fallback_reason
    assert deployment.latency["latency_single_ms"] > 0


def test_root_cause_of_issue_18_mlp_trained_on_feedback_float_labels_exports(tmp_path):
    """Reference int64 labels + feedback labels read from the inference log (one request
    unlabelled) concatenate to float64; the MLP then has classes [0.0, 1.0]. The old
    converter gathered them as strings under an int64 declared output, and ONNX Runtime
    refused the file (Ga_Gather type error). Unnormalised on purpose here."""
    frame = _features(1)
    reference = (frame["grid"] > 1.5).astype(int)
    feedback = _through_feedback(reference.tolist()[:40])
    combined = pd.concat([reference, feedback], ignore_index=True)
    assert combined.dtype == np.float64
    labelled = combined.notna()
    x_all = pd.concat([frame, frame.head(41)], ignore_index=True)[labelled.to_numpy()]
    schema = FeatureSchema.infer(x_all)
    x = feature_frame(x_all, schema)
    pipeline = make_pipeline({"model": "mlp", **TINY["mlp"]}, schema, "binary").fit(x, combined[labelled].to_numpy())
    assert pipeline.classes_.dtype == np.float64
    model = OnnxModel(export_pipeline(pipeline, schema, tmp_path / "m.onnx"), schema)
    labels, _ = model.run(x)
    assert np.array_equal(labels, pipeline.predict(x).astype(np.int64))


@pytest.mark.parametrize("kind", CLASS_KINDS)
def test_digits_cnn_exports_with_every_label_kind(kind, tmp_path):
    from automl_tasks.data import bundled_frame
    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.digits_cnn import DigitsCNNEstimator
    from automl_tasks.estimators.metrics import Metric

    digits = bundled_frame("digits").head(300)
    values = {
        "int": lambda d: d,
        "feedback_json": lambda d: d,
        "float_ints": lambda d: float(d),
        "bool": lambda d: d % 2 == 1,
        "string": lambda d: f"digit_{d}",
        "categorical": lambda d: f"digit_{d}",
    }[kind]
    raw = pd.Series([values(int(d)) for d in digits["target"]])
    if kind == "categorical":
        raw = raw.astype("category")
    task = "binary" if kind == "bool" else "multiclass"
    table, spec = normalise_target(digits.assign(target=raw), "target", task, source="digits")
    if kind == "feedback_json":
        labels = _through_feedback(raw.tolist())
        window = digits.assign(target=labels[: len(digits)].to_numpy())
        table = normalise_feedback_labels(window, "target", spec, source="feedback")
    path = tmp_path / "digits.parquet"
    table.to_parquet(path)
    config = {"depth": 1, "block1": "dense", "block1.dense.width": 16, "epochs": 1}
    estimator = DigitsCNNEstimator(
        run_epochs=1,
        data=DataSpec(str(path), "target", task),
        is_trainer=False,
        model_args=config,
        metric=Metric("accuracy"),
    )
    estimator.train()
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(estimator.export_onnx(tmp_path / "cnn.onnx")), providers=["CPUExecutionProvider"]
    )
    onnx_labels = estimator.onnx_labels(session.run(None, estimator.onnx_feed(table)))
    native = estimator.predict(table)
    assert np.array_equal(spec.decode(onnx_labels), spec.decode(native))
    decoded = spec.decode(onnx_labels).tolist()
    assert {type(v) for v in decoded} == {type(v) for v in pd.Series(raw).astype(object).tolist()}


@pytest.mark.parametrize("model", MODELS)
def test_columns_named_as_users_name_them_export_with_parity(model, tmp_path):
    """Names that start with a digit, hold spaces, symbols or accents: the ONNX graph is fed
    the model's own column names (skl2onnx once renamed `1st_value` to `_1st_value`, every
    such version fell back to the native runtime)."""
    frame = _features(3).rename(
        columns={"grid": "1st value", "money": "price ($)", "small": "año", "colour": "2nd colour"}
    )
    frame["_1st value"] = frame["año"] * 2  # what skl2onnx renames `1st_value` to, taken
    y = ((frame["1st value"] + frame["año"]) > 1.5).astype(int).to_numpy()
    schema = FeatureSchema.infer(frame)
    x = feature_frame(frame, schema)
    pipeline = make_pipeline({"model": model} | TINY[model], schema, "binary").fit(x, y)
    deployment = export_or_fallback(pipeline, schema, tmp_path, x, None)
    assert deployment.runtime == ONNX_RUNTIME, deployment.fallback_reason
    assert deployment.parity.ok and deployment.parity.share_within_tolerance == 1.0
