"""Feature pipelines (issue #15): column roles, SQL steps, automatic steps and their parity
between training (whole table) and serving (rows one at a time, from the JSON asset)."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd
import pytest

from automl_tasks.core.errors import FeaturePipelineError
from automl_tasks.core.settings import Workspace
from automl_tasks.features.pipeline import FeaturePipeline, fit_feature_pipeline
from automl_tasks.features.roles import (
    CONSTANT,
    DATETIME,
    HIGH_CARDINALITY,
    IDENTIFIER,
    LEAK,
    NUMERIC,
    TEXT,
    column_roles,
)
from automl_tasks.features.sql_steps import SqlStep, check_sql_step, parse_sql_steps, run_sql_step

WORDS = ["good", "bad", "great", "awful", "fine", "okay", "terrible", "superb", "meh", "nice", "late", "fast"]


def table(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """Rows with a timestamp, free text, a high-cardinality category, numbers and a binary target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2021-03-01", periods=n, freq="5h").strftime("%Y-%m-%d %H:%M").to_numpy(),
            "note": [" ".join(rng.choice(WORDS, 6)) for _ in range(n)],
            "city": rng.choice([f"city{i}" for i in range(80)], n),
            "a": rng.normal(size=n),
            "b": rng.uniform(1, 2, size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    signal = frame["a"] * frame["b"] + frame["note"].str.count("good") - frame["note"].str.count("bad")
    frame["target"] = (signal + rng.normal(scale=0.3, size=n) > 0.3).astype(int)
    return frame


def roles_of(frame: pd.DataFrame, task: str = "binary") -> dict[str, str]:
    return {r.column: r.role for r in column_roles(frame, "target", task)}


# --- column understanding ------------------------------------------------------------------


def test_roles_of_ordinary_columns():
    roles = roles_of(table())
    assert roles == {
        "when": DATETIME,
        "note": TEXT,
        "city": HIGH_CARDINALITY,
        "a": NUMERIC,
        "b": NUMERIC,
        "colour": "categorical",
    }


def test_identifiers_constants_and_leaks_are_flagged_and_left_out():
    frame = table()
    rng = np.random.default_rng(1)
    frame["row_number"] = np.arange(len(frame)) + 1000  # a dense run of integers
    frame["order_key"] = np.cumsum(rng.uniform(0.5, 1.5, len(frame)))  # monotone with the row order
    frame["code"] = [f"X{i:06d}" for i in rng.permutation(len(frame))]  # unique text codes
    frame["same"] = 7
    frame["answer"] = np.where(frame["target"] == 1, "yes", "no")  # the target recoded
    roles = roles_of(frame)
    assert roles["row_number"] == IDENTIFIER and roles["order_key"] == IDENTIFIER and roles["code"] == IDENTIFIER
    assert roles["same"] == CONSTANT and roles["answer"] == LEAK
    assert roles["a"] == NUMERIC  # a continuous feature is unique per row, and no identifier

    pipeline = fit_feature_pipeline(frame, "target", "binary", np.arange(600), automatic=False)
    assert set(pipeline.excluded) == {"row_number", "order_key", "code", "same", "answer"}
    out = pipeline.transform(frame.drop(columns="target"))
    assert not set(pipeline.excluded) & set(out.columns)

    kept = fit_feature_pipeline(frame, "target", "binary", np.arange(600), automatic=False, keep=("row_number",))
    assert "row_number" not in kept.excluded and kept.kept == ("row_number",)


def test_a_monotone_transform_of_a_regression_target_is_a_leak():
    frame = table()
    frame["target"] = frame["a"] * 3 + np.random.default_rng(2).normal(size=len(frame))
    frame["log_target"] = np.log1p(frame["target"] - frame["target"].min())
    roles = roles_of(frame, "regression")
    assert roles["log_target"] == LEAK and roles["a"] == NUMERIC


def test_a_single_column_that_predicts_the_target_is_a_leak():
    frame = table()
    frame["score_after"] = frame["target"] * 10 + np.random.default_rng(3).uniform(0, 1, len(frame))
    assert roles_of(frame)["score_after"] == LEAK


def test_keep_columns_must_name_feature_columns():
    with pytest.raises(FeaturePipelineError, match="keep_columns names \\['nope'\\]"):
        fit_feature_pipeline(table(), "target", "binary", np.arange(100), keep=("nope",))


# --- SQL steps -----------------------------------------------------------------------------


def test_a_valid_sql_step_adds_its_columns():
    frame = table(50)
    step = SqlStep("per_b", "SELECT a / NULLIF(b, 0) AS a_per_b, upper(colour) AS loud FROM input")
    assert check_sql_step(frame, step) == ["a_per_b", "loud"]
    out = run_sql_step(frame, step)
    assert list(out.index) == list(frame.index)
    np.testing.assert_allclose(out["a_per_b"], frame["a"] / frame["b"])
    assert (out["loud"] == frame["colour"].str.upper()).all()


def test_a_sql_syntax_error_names_the_step_and_duckdbs_message():
    with pytest.raises(FeaturePipelineError, match=r"SQL feature step 'broken': Parser Error: syntax error"):
        check_sql_step(table(20), SqlStep("broken", "SELEC a FROM input"))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT a, (SELECT count(*) FROM read_parquet('/tmp/loopml-any.parquet')) AS n FROM input",
        "ATTACH '/tmp/loopml-attack.db' AS other",
        "COPY input TO '/tmp/loopml-leak.csv'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ],
)
def test_sql_that_reaches_files_databases_or_settings_is_refused(sql, tmp_path):
    with pytest.raises(FeaturePipelineError, match="SQL feature step 'bad'") as refused:
        check_sql_step(table(20), SqlStep("bad", sql))
    message = str(refused.value)
    assert "Permission Error" in message or "must be a SELECT" in message


def test_sql_that_changes_the_row_count_is_refused():
    with pytest.raises(FeaturePipelineError, match="returned .* rows for 20 input rows"):
        check_sql_step(table(20), SqlStep("fewer", "SELECT a AS only_positive FROM input WHERE a > 0"))
    with pytest.raises(FeaturePipelineError, match="returned 3 rows"):
        check_sql_step(table(20), SqlStep("grouped", "SELECT colour AS c2, avg(a) AS m FROM input GROUP BY colour"))


def test_sql_whose_rows_depend_on_other_rows_is_refused():
    with pytest.raises(FeaturePipelineError, match="different features alone than among other rows"):
        check_sql_step(table(40), SqlStep("centred", "SELECT a - avg(a) OVER () AS a_centred FROM input"))


def test_sql_steps_from_the_form():
    steps = parse_sql_steps([{"name": "x", "sql": "SELECT 1 AS one FROM input"}])
    assert steps == (SqlStep("x", "SELECT 1 AS one FROM input"),)
    with pytest.raises(FeaturePipelineError, match="used twice"):
        parse_sql_steps([{"name": "x", "sql": "SELECT 1"}, {"name": "x", "sql": "SELECT 2"}])
    with pytest.raises(FeaturePipelineError, match=r"sql_features\[0\] must be an object"):
        parse_sql_steps(["SELECT 1"])


# --- automatic steps: training vs serving --------------------------------------------------


def fitted(frame: pd.DataFrame, **options) -> FeaturePipeline:
    return fit_feature_pipeline(frame, "target", "binary", np.arange(int(len(frame) * 0.8)), **options)


def served(pipeline: FeaturePipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """The pipeline read back from its JSON asset, applied to one JSON-like row at a time
    (numbers as floats or None, timestamps as text), as the serving endpoint does."""
    asset = FeaturePipeline.from_dict(json.loads(pipeline.to_json()))
    assert asset.version == pipeline.version
    rows = json.loads(json.dumps(frame.to_dict(orient="records")))
    return pd.concat([asset.transform(pd.DataFrame([row])) for row in rows], ignore_index=True)


def test_every_automatic_step_gives_serving_the_training_features():
    frame = table()
    sql = (SqlStep("ratio", "SELECT a / NULLIF(b, 0) AS a_per_b FROM input"),)
    pipeline = fitted(frame, sql_steps=sql)
    assert set(pipeline.datetimes) == {"when"} and set(pipeline.texts) == {"note"}
    assert set(pipeline.frequencies) == {"city"} and pipeline.interactions
    training = pipeline.transform(frame.drop(columns="target")).reset_index(drop=True)
    serving = served(pipeline, frame.drop(columns="target").head(60))
    pd.testing.assert_frame_equal(serving, training.head(60), check_dtype=False, atol=1e-12, rtol=1e-9)
    # derived groups are there, the raw date and text are not
    assert {"when__month", "when__hour_sin", "city__freq", "note__svd0", "a_per_b"} <= set(training.columns)
    assert "when" not in training.columns and "note" not in training.columns


def test_datetime_parts_are_right_and_cycles_wrap():
    frame = pd.DataFrame({"when": ["2024-12-31 23:00", "2025-01-01 01:00", None]})
    pipeline = FeaturePipeline(inputs={"when": "value"}, datetimes={"when": "%Y-%m-%d %H:%M"})
    out = pipeline.transform(frame)
    assert out["when__year"].tolist()[:2] == [2024, 2025] and out["when__dayofweek"].iloc[0] == 1  # a Tuesday
    assert np.isnan(out["when__month"].iloc[2])  # a missing date stays missing
    december, january = out.iloc[0], out.iloc[1]
    assert abs(december["when__month_cos"] - january["when__month_cos"]) < 0.14  # neighbours on the circle


def test_unseen_and_missing_categories_have_frequency_zero_or_their_share():
    from automl_tasks.features.steps import fit_frequencies

    shares = fit_frequencies(pd.Series(["a", "a", "b", None]))
    assert shares == {"a": 0.5, "b": 0.25, "missing": 0.25}
    pipeline = FeaturePipeline(inputs={"city": "value"}, frequencies={"city": shares})
    out = pipeline.transform(pd.DataFrame({"city": ["a", "zzz", None]}))
    assert out["city__freq"].tolist() == [0.5, 0.0, 0.25]


def test_a_missing_input_column_is_named():
    pipeline = fitted(table())
    with pytest.raises(FeaturePipelineError, match=r"needs input column\(s\) \['note'\]"):
        pipeline.transform(table().drop(columns=["target", "note"]))


def test_the_search_chooses_feature_groups():
    pipeline = fitted(table())
    names = {p["name"] for p in pipeline.search_params("binary")}
    assert names == {"datetime_cycles", "text_components", "interactions", "high_cardinality_encoding"}
    multiclass = {p["name"]: p for p in pipeline.search_params("multiclass")}
    assert "target" not in multiclass["high_cardinality_encoding"]["range"]  # no ONNX converter for it
    unused = pipeline.unused_columns({"datetime_cycles": False, "text_components": 0, "interactions": 0})
    assert set(pipeline.cyclic_columns) <= unused and set(pipeline.text_columns()) <= unused
    assert "city" in unused  # frequency encoding (the default) reads city__freq, not the category


def test_without_automatic_steps_nothing_is_derived():
    pipeline = fitted(table(), automatic=False)
    out = pipeline.transform(table().drop(columns="target"))
    assert list(out.columns) == ["when", "note", "city", "a", "b", "colour"]
    assert pipeline.search_params("binary") == []


def test_the_content_hash_is_the_version():
    a, b = fitted(table()), fitted(table())
    assert a.version == b.version
    assert fitted(table(seed=5)).version != a.version


# --- the model and its ONNX export read the derived columns ----------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"model": "lightgbm", "high_cardinality_encoding": "target", "interactions": 1, "text_components": 4},
        {"model": "random_forest", "model.random_forest.n_estimators": 20, "high_cardinality_encoding": "codes"},
        {"model": "linear", "high_cardinality_encoding": "frequency", "datetime_cycles": False},
        {"model": "extra_trees", "model.extra_trees.n_estimators": 20, "categorical_encoding": "onehot"},
        {"model": "linear", "text_embedding": True, "text_components": 0},
    ],
    ids=["lightgbm-target", "forest-codes", "linear-frequency", "extra_trees-onehot", "linear-embeddings"],
)
def test_onnx_export_of_a_model_on_derived_features_agrees_with_it(config, tmp_path):
    import onnxruntime

    frame = table(600)
    estimator = derived_feature_estimator(frame, config, tmp_path, embed_text="text_embedding" in config)
    if "text_embedding" in config:
        assert "note__emb0" in estimator.schema_.numeric and "note__svd0" not in estimator.schema_.numeric
    session = onnxruntime.InferenceSession(str(estimator.export_onnx(tmp_path / "model.onnx")))
    # the graph computes the frequencies and interactions from the columns they derive from
    names = estimator.schema_.model_names
    computed = {names[c] for c in estimator.schema_.derive.graph_steps if c in names}
    assert computed and not computed & {i.name for i in session.get_inputs()}
    raw = frame.drop(columns="target").iloc[estimator.test_rows]
    labels, proba = session.run(None, estimator.onnx_feed(raw))
    assert (labels == estimator.predict(raw)).all()
    np.testing.assert_allclose(
        proba, estimator.pipeline_.predict_proba(estimator.features_.iloc[estimator.test_rows]), atol=1e-5
    )


def derived_feature_estimator(frame: pd.DataFrame, config: dict, folder, embed_text=False, **pipeline_fields):
    """A trained TabularEstimator reading `frame` through its fitted feature pipeline
    (with `pipeline_fields` replaced)."""
    from dataclasses import replace

    from automl_tasks.data.splits import make_splits
    from automl_tasks.estimators.base import DataSpec
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.estimators.tabular import TabularEstimator

    frame.to_parquet(folder / "t.parquet")
    splits = make_splits(frame["target"], "binary", seed=0)
    fit_rows = np.concatenate([splits.train, splits.valid])
    pipeline = replace(
        fit_feature_pipeline(frame, "target", "binary", fit_rows, embed_text=embed_text), **pipeline_fields
    )
    (folder / "fp.json").write_text(pipeline.to_json())
    data = DataSpec(str(folder / "t.parquet"), "target", "binary", feature_pipeline=str(folder / "fp.json"))
    estimator = TabularEstimator(
        run_epochs=None, data=data, is_trainer=True, model_args=config, metric=Metric("roc_auc"), output_dir=folder
    )
    assert estimator.run().score > 0.7
    return estimator


@pytest.mark.parametrize("engine", ["openvino", "tvm"])
def test_openvino_and_tvm_run_the_graphs_feature_steps(engine, tmp_path):
    """Frequencies (a string lookup) and interactions in the graph lower to standard ops,
    which OpenVINO and TVM compile and run with parity against ONNX Runtime."""
    from automl_tasks.deploy.backends import OK, evaluate

    frame = table(600)
    config = {"model": "linear", "high_cardinality_encoding": "frequency", "interactions": 2, "text_components": 0}
    both = (("a", "x", "b", 0.1), ("b", "per", "a", 0.05))  # a product and a ratio, whatever the screening says
    estimator = derived_feature_estimator(frame, config, tmp_path, interactions=both)
    assert estimator.schema_.derive.interactions == both and estimator.schema_.derive.frequencies
    model = estimator.export_onnx(tmp_path / "model.onnx").read_bytes()
    feed = estimator.onnx_feed(frame.drop(columns="target").head(16))
    assert "city" in feed and "city__freq" not in feed and not [c for c in feed if "__x__" in c or "__per__" in c]
    result = evaluate(engine, model, feed)  # parity against ONNX Runtime on the same file
    assert result.verdict.status == OK, result.verdict


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_onnx_graph_computes_frequencies_and_interactions_as_the_pipeline_does(dtype):
    """Unseen and missing categories, a zero divisor, a missing number and an overflowing
    product: the graph's columns equal the Python steps' (float64: exactly)."""
    import onnxruntime
    from onnx import TensorProto, helper

    from automl_tasks.estimators.features import FeatureSchema, feature_frame
    from automl_tasks.estimators.onnx.conversion import onnx_inputs
    from automl_tasks.estimators.onnx.feature_steps import embed_feature_steps

    interactions = (("a", "x", "b", 0.1), ("a", "per", "b", 0.05))
    pipeline = FeaturePipeline(
        inputs={"a": "number", "b": "number", "city": "value"},
        frequencies={"city": {"x": 0.5, "y": 0.3, "missing": 0.2}},
        interactions=interactions,
    )
    rows = pd.DataFrame(
        {
            # 1e300 * 1e300 overflows float64 (NaN in both); a float32 graph reads 1e18 * 1e18
            "a": [1.5, 2.0, np.nan, 1e300 if dtype is np.float64 else 1e18, -3.0, 0.0],
            "b": [2.0, 0.0, 1.0, 1e300 if dtype is np.float64 else 1e18, 0.1, 0.0],
            "city": ["x", "y", None, "unseen", "x", "y"],
        }
    )
    schema = replace_schema(FeatureSchema.infer(pipeline.transform(rows)), pipeline)
    derived = ["city__freq", "a__x__b", "a__per__b"]
    assert set(derived) <= set(schema.numeric) and set(schema.graph_fed.numeric) == {"a", "b"}
    kind = TensorProto.DOUBLE if dtype is np.float64 else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(n, kind, [None, 1]) for n in schema.model_numeric]
    inputs += [helper.make_tensor_value_info(n, TensorProto.STRING, [None, 1]) for n in schema.model_categorical]
    out = helper.make_tensor_value_info("out", kind, [None, len(derived)])
    graph = helper.make_graph([helper.make_node("Concat", derived, ["out"], axis=1)], "g", inputs, [out])
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    embed_feature_steps(onx, schema)
    session = onnxruntime.InferenceSession(onx.SerializeToString())
    assert {i.name for i in session.get_inputs()} == {"a", "b", "city"}
    got = session.run(None, onnx_inputs(feature_frame(rows, schema), schema.graph_fed, dtype))[0]
    expected = feature_frame(rows, schema)[derived].to_numpy(dtype=dtype)
    np.testing.assert_array_equal(got, expected)  # NaN where the Python steps give NaN, too


def replace_schema(schema, pipeline):
    from dataclasses import replace

    return replace(schema, derive=pipeline)


# --- sentence embeddings of text columns -------------------------------------------------------


@pytest.fixture(scope="module")
def embedded() -> tuple[pd.DataFrame, FeaturePipeline]:
    frame = table(400)
    return frame, fit_feature_pipeline(frame, "target", "binary", np.arange(320), embed_text=True)


def test_sentence_embeddings_are_read_from_the_memo_and_served_from_the_model(embedded, tmp_path, monkeypatch):
    from dataclasses import replace

    from automl_tasks.features import embeddings

    frame, pipeline = embedded
    chosen = pipeline.pruned([{"text_embedding": True}])
    assert set(chosen.embedding_columns()) == {f"note__emb{i}" for i in range(16)}
    chosen.memoise(frame, tmp_path)
    raw = frame.drop(columns="target")

    def no_model(texts):
        raise AssertionError(f"encoded {len(texts)} texts although the memo holds them")

    with monkeypatch.context() as patch:  # the table's texts come from the memo, not the model
        patch.setattr(embeddings, "encode", no_model)
        training = replace(chosen, memo_dir=str(tmp_path)).transform(raw).reset_index(drop=True)
    embeddings._memo.clear()  # serving: no memo; each row's text encoded alone
    serving = served(chosen, frame.drop(columns="target").head(25))
    columns = list(chosen.embedding_columns())
    np.testing.assert_allclose(serving[columns], training[columns].head(25), atol=1e-5)
    assert training[columns].std().min() > 0.01  # the components vary from text to text


def test_embeddings_are_a_search_choice_and_leave_other_pipelines_as_they_were(embedded):
    frame, pipeline = embedded
    params = {p["name"]: p for p in pipeline.search_params("binary")}
    assert params["text_embedding"]["default"] is False
    assert set(pipeline.embedding_columns()) <= pipeline.unused_columns({})  # opt-in
    assert not set(pipeline.embedding_columns()) & pipeline.unused_columns({"text_embedding": True})
    assert pipeline.pruned([{}]).embeddings == {} and pipeline.pruned([{"text_embedding": True}]).embeddings
    plain = fitted(frame)
    assert "embeddings" not in json.loads(plain.to_json())  # versions of pipelines without them are unchanged


def test_a_pipeline_embedded_with_another_model_is_refused(embedded):
    from dataclasses import replace

    _, pipeline = embedded
    state = pipeline.embeddings["note"] | {"digest": "0" * 16}
    other = replace(pipeline, embeddings={"note": state})
    with pytest.raises(FeaturePipelineError, match="was embedded with all-MiniLM-L6-v2 0000000000000000"):
        other.transform(pd.DataFrame([{**table(1).drop(columns="target").iloc[0].to_dict(), "note": "never seen"}]))


# --- serving takes the raw columns ------------------------------------------------------------


def test_the_request_model_takes_raw_rows_and_derives_the_training_features():
    from dataclasses import replace

    from automl_tasks.estimators.features import FeatureSchema, feature_frame
    from serving.loader import BadRequest, instances_to_frame
    from serving.request_model import RequestModel

    frame = table()
    frame["row_number"] = np.arange(len(frame))
    pipeline = fitted(frame)
    assert "row_number" in pipeline.excluded
    raw = frame.drop(columns="target")
    schema = replace(FeatureSchema.infer(pipeline.transform(raw)), derive=pipeline)
    model = RequestModel(schema)
    rows = json.loads(json.dumps(raw.head(5).to_dict(orient="records")))  # row_number too: ignored
    _, features = model.parse(json.dumps({"instances": rows}).encode())
    expected = feature_frame(raw.head(5), schema)
    np.testing.assert_allclose(features.numeric, expected[list(schema.model_numeric)].to_numpy(float), rtol=1e-12)
    assert (features.categorical == expected[list(schema.model_categorical)].to_numpy(object)).all()
    pd.testing.assert_frame_equal(instances_to_frame(rows, schema), expected.reset_index(drop=True))

    for row, message in [
        ({k: v for k, v in rows[0].items() if k != "when"}, "missing columns \\['when'\\]"),
        ({**rows[0], "a": "1.5"}, "a must be a number"),
        ({**rows[0], "surprise": 1}, "unknown columns \\['surprise'\\]"),
    ]:
        with pytest.raises(BadRequest, match=message):
            model.parse(json.dumps({"instances": [row]}).encode())


# --- data_preprocess: fitted, recorded, reused; a bad step stores nothing ---------------------


def test_a_failing_sql_step_stops_data_preprocess_and_stores_nothing(workspace, tmp_path):
    from automl_tasks.pipelines.intake import preprocess
    from automl_tasks.pipelines.requests import NoCodeRequest

    path = tmp_path / "orders.csv"
    table(200).to_csv(path, index=False)
    request = NoCodeRequest(dataset=str(path), sql_features="- {name: bad, sql: 'SELECT nope * 2 AS x FROM input'}")
    with pytest.raises(FeaturePipelineError, match="SQL feature step 'bad': Binder Error: .*nope"):
        preprocess(workspace, request, dag_run_id="t1")
    assert not (workspace.datasets / "orders").exists()


def test_data_preprocess_records_the_pipeline_and_a_later_run_reuses_it(workspace, tmp_path):
    from automl_tasks.core.tracking import mlflow_client
    from automl_tasks.features.store import load_feature_pipeline, read_feature_pipeline
    from automl_tasks.pipelines.intake import PreprocessResult, preprocess
    from automl_tasks.pipelines.requests import NoCodeRequest

    path = tmp_path / "orders.csv"
    table(300).to_csv(path, index=False)
    sql = "- {name: ratio, sql: 'SELECT a / NULLIF(b, 0) AS a_per_b FROM input'}"
    pre = preprocess(workspace, NoCodeRequest(dataset=str(path), sql_features=sql), dag_run_id="t1")
    roles = {r["column"]: r["role"] for r in pre.profile()["column_roles"]}
    assert roles["when"] == DATETIME and roles["note"] == TEXT and roles["a_per_b"] == NUMERIC
    recorded = load_feature_pipeline(workspace, pre.feature_pipeline)
    assert recorded.sql_steps == (SqlStep("ratio", "SELECT a / NULLIF(b, 0) AS a_per_b FROM input"),)
    assert read_feature_pipeline(pre.feature_pipeline_path).version == pre.feature_pipeline
    assert (
        mlflow_client(workspace).get_run(pre.parent_run_id).data.tags["loopml.feature_pipeline"] == pre.feature_pipeline
    )
    # XCom carries ids and URIs only; a task on another host (its own folder, the same stores)
    # gets its own copies of the dataset, the profile and the feature pipeline from them
    xcom = json.loads(json.dumps(pre.to_dict()))
    assert not [v for v in xcom.values() if isinstance(v, str) and str(workspace.home) in v], xcom
    host2 = dataclasses.replace(Workspace.at(tmp_path / "host2").ensure(), mlflow_uri=workspace.mlflow_uri)
    host2 = dataclasses.replace(host2, dvc_remote_url=str(workspace.dvc_remote))
    there = PreprocessResult.from_dict(xcom, host2)
    assert all(
        p.startswith(str(host2.home)) for p in (there.dataset_path, there.profile_path, there.feature_pipeline_path)
    )
    assert there.profile() == pre.profile()
    pd.testing.assert_frame_equal(pd.read_parquet(there.dataset_path), pd.read_parquet(pre.dataset_path))
    assert read_feature_pipeline(there.feature_pipeline_path).version == pre.feature_pipeline

    again = preprocess(
        workspace, NoCodeRequest(dataset=str(path), feature_pipeline=pre.feature_pipeline), dag_run_id="t2"
    )
    assert again.feature_pipeline == pre.feature_pipeline
    with pytest.raises(FeaturePipelineError, match="no feature pipeline version 'feedface'"):
        preprocess(workspace, NoCodeRequest(dataset=str(path), feature_pipeline="feedface"), dag_run_id="t3")


def test_the_form_refuses_malformed_sql_features():
    from automl_tasks.core.errors import ConfigurationError
    from automl_tasks.pipelines.requests import NoCodeRequest

    with pytest.raises(ConfigurationError, match="'sql_features' parameter is not valid YAML"):
        NoCodeRequest(dataset="breast_cancer", sql_features="- {name: x, sql: [unclosed")
    with pytest.raises(FeaturePipelineError, match="must be a list"):
        NoCodeRequest(dataset="breast_cancer", sql_features="name: x")


def test_drift_is_measured_on_raw_columns_less_timestamps_and_texts():
    from dataclasses import replace

    from automl_tasks.estimators.features import FeatureSchema
    from automl_tasks.monitoring.drift_check import monitored_schema

    frame = table()
    pipeline = fitted(frame)
    schema = replace(FeatureSchema.infer(pipeline.transform(frame.drop(columns="target"))), derive=pipeline)
    monitored = monitored_schema(schema)
    assert monitored.numeric == ("a", "b") and monitored.categorical == ("city", "colour")


def test_a_model_keeps_only_the_feature_groups_it_reads():
    pipeline = fitted(table())
    one = pipeline.pruned([{"datetime_cycles": False, "text_components": 4, "interactions": 0}])
    assert one.fitted_version == pipeline.version and one.lineage_version == pipeline.version
    columns = set(one.transform(table().drop(columns="target")).columns)
    assert not set(pipeline.cyclic_columns) & columns and not set(pipeline.interaction_columns()) & columns
    assert {f"note__svd{i}" for i in range(4)} <= columns and "note__svd4" not in columns
    # an ensemble's members: the union of what they read
    both = pipeline.pruned([{"interactions": 1}, {"datetime_cycles": False, "interactions": 0}])
    assert both.cycles and len(both.interactions) == 1 and both.lineage_version == pipeline.version
    assert both.pruned([{"interactions": 0}]).lineage_version == pipeline.version


def test_a_pipeline_that_only_leaves_columns_out_is_served_on_the_fast_path():
    from dataclasses import replace

    from automl_tasks.estimators.features import FeatureSchema, feature_frame
    from serving.request_model import RequestModel

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(100), "x": rng.normal(size=100), "colour": rng.choice(["r", "g"], 100)})
    frame["target"] = (frame["x"] + rng.normal(size=100) > 0).astype(int)
    pipeline = fit_feature_pipeline(frame, "target", "binary", np.arange(80)).pruned([{}])
    assert pipeline.excluded == ("id",) and pipeline.passthrough
    schema = replace(FeatureSchema.infer(pipeline.transform(frame.drop(columns="target"))), derive=pipeline)
    rows = [{"id": 7, "x": 0.5, "colour": "r"}, {"x": -1.0, "colour": None}]
    _, features = RequestModel(schema).parse(json.dumps({"instances": rows}).encode())
    expected = feature_frame(pd.DataFrame(rows), schema)
    np.testing.assert_array_equal(features.numeric, expected[list(schema.model_numeric)].to_numpy(float))
    assert features.categorical.tolist() == [["r"], ["missing"]]


def test_datetime_parts_agree_with_pandas_before_and_after_1970():
    from automl_tasks.features.steps import datetime_parts

    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.uniform(0, 100 * 365 * 86400, 3000), unit="s")
    text = pd.Series(stamps.strftime("%Y-%m-%d %H:%M:%S"), dtype=object)
    text[[3, 7]] = [None, "not a date"]
    plain, _ = datetime_parts(text, "%Y-%m-%d %H:%M:%S", "d")
    parsed = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce").dt
    for part in ("year", "month", "day", "dayofweek", "dayofyear", "hour"):
        expected = getattr(parsed, part).to_numpy(dtype=float, na_value=np.nan)
        np.testing.assert_array_equal(plain[f"d__{part}"], expected, err_msg=part)


def test_a_row_index_is_found_on_the_search_rows_as_data_preprocess_passes_them():
    """data_preprocess fits on train + validation rows, concatenated: not in table order."""
    from automl_tasks.data.splits import make_splits

    frame = table()
    frame["row_key"] = np.cumsum(np.random.default_rng(4).uniform(0.5, 1.5, len(frame)))
    splits = make_splits(frame["target"], "binary", seed=0)
    pipeline = fit_feature_pipeline(frame, "target", "binary", np.concatenate([splits.train, splits.valid]))
    assert "row_key" in pipeline.excluded


def test_dates_with_missing_values_keep_their_format():
    frame = table()
    frame["shipped"] = pd.date_range("2022-01-01", periods=len(frame), freq="D").strftime("%d/%m/%Y %H:%M")
    frame.loc[frame.index[::5], "shipped"] = None  # 20% missing
    pipeline = fitted(frame)
    assert pipeline.datetimes["shipped"] == "%d/%m/%Y %H:%M"


def test_a_retrain_reuses_the_champions_pipeline_or_fits_one_like_it(embedded):
    from types import SimpleNamespace

    from automl_tasks.estimators.features import FeatureSchema
    from automl_tasks.pipelines.requests import RetrainRequest
    from automl_tasks.pipelines.retrain import retrain_features

    _, pipeline = embedded
    window = "dataset://fam.window@1"
    for derive, embedded_text in ((pipeline.pruned([{"text_embedding": True}]), True), (pipeline.pruned([{}]), False)):
        champion = SimpleNamespace(schema=FeatureSchema(("a",), (), derive=derive))
        new = retrain_features(champion, RetrainRequest(family="fam", window_uri=window, feature_pipeline="new"))
        assert new.embed_text is embedded_text and not new.reuse  # fitted like the champion's
        same = retrain_features(champion, RetrainRequest(family="fam", window_uri=window))
        assert same.reuse == pipeline.version  # the recorded version the champion's was cut from
    assert retrain_features(SimpleNamespace(schema=FeatureSchema(("a",), ())), RetrainRequest("fam", window)) is None


def test_a_runaway_sql_step_is_stopped_with_a_clear_error(monkeypatch):
    from automl_tasks.features import sql_steps

    monkeypatch.setattr(sql_steps, "SQL_TIMEOUT_S", 1.0)
    frame = table(20).drop(columns="target")
    forever = SqlStep("slow", "SELECT a, (SELECT count(*) FROM range(1000000000000)) AS n FROM input")
    started = time.monotonic()
    with pytest.raises(FeaturePipelineError, match=r"'slow' ran longer than 1 s on 20 rows and was stopped"):
        run_sql_step(frame, forever)
    assert time.monotonic() - started < 10
    # the connection still serves the next step
    assert (
        run_sql_step(frame, SqlStep("ok", "SELECT a * 2 AS a2 FROM input"))["a2"].tolist() == (frame["a"] * 2).tolist()
    )


def test_a_sql_step_that_needs_too_much_memory_is_refused(monkeypatch):
    from automl_tasks.features import sql_steps

    sql_steps.run_sql_step(
        table(2), SqlStep("warm", "SELECT a + 1 AS a_plus_one FROM input")
    )  # this thread's connection
    monkeypatch.setattr(sql_steps, "SQL_MEMORY_LIMIT", "100MB")
    monkeypatch.setattr(sql_steps._LOCAL, "pid", None)  # a new connection with the small limit, restored after
    monkeypatch.setattr(sql_steps._LOCAL, "con", None)
    greedy = SqlStep(
        "greedy", "SELECT a, (SELECT string_agg(i::VARCHAR, ',') FROM range(30000000) t(i)) AS s FROM input"
    )
    with pytest.raises(FeaturePipelineError, match=r"'greedy': Out of Memory"):
        run_sql_step(table(20).drop(columns="target"), greedy)


def test_a_pipeline_that_embeds_texts_names_what_computing_them_needs():
    """What a served model's image must install to encode each request's texts."""
    import importlib.metadata as metadata

    from automl_tasks.features.embeddings import SERVING_DISTRIBUTIONS

    frame = table(120)
    rows = np.arange(len(frame))
    embedded = fit_feature_pipeline(frame, "target", "binary", rows, embed_text=True)
    assert embedded.packages() == SERVING_DISTRIBUTIONS
    assert embedded.pruned([{"text_embedding": True}, {}]).packages() == SERVING_DISTRIBUTIONS
    assert embedded.pruned([{"text_embedding": False}]).packages() == ()  # a model that reads no embedding
    assert fit_feature_pipeline(frame, "target", "binary", rows).packages() == ()
    assert all(metadata.version(name) for name in SERVING_DISTRIBUTIONS)  # the image pins what is installed
