"""Deployment targets: built-ins, workspace YAML, clear errors naming the field, metrics of a check."""

from __future__ import annotations

import pytest

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.core.tags import DEPLOY_ENGINE_TAG, DEPLOY_TARGET_TAG, DEPLOY_VERDICT_TAG
from automl_tasks.deploy.backends import evaluate
from automl_tasks.deploy.targets import TARGETS_FILE, evaluate_on_target, get_target, load_targets, target_metrics
from automl_tasks.testing.backends import tiny_feed, tiny_mlp_onnx


def test_built_in_targets_name_their_engine_and_settings():
    targets = load_targets()
    assert {n: t.engine for n, t in targets.items()} == {
        "cloud-cpu": "onnxruntime",
        "edge-cpu": "openvino",
        "gpu": "tensorrt",
        "auto-cpu": "auto",
    }
    assert targets["edge-cpu"].options.threads == 1
    assert targets["gpu"].options.precision == "fp16"


def test_workspace_yaml_adds_and_replaces_targets(tmp_path):
    (tmp_path / TARGETS_FILE).write_text(
        "targets:\n  edge-cpu: {engine: tvm, options: {threads: 1}}\n  big: {engine: onnxruntime, options: {threads: 2}}\n"
    )
    targets = load_targets(tmp_path)
    assert targets["edge-cpu"].engine == "tvm" and targets["big"].options.threads == 2
    assert targets["cloud-cpu"].engine == "onnxruntime"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "targets:\n  t: {engine: tflite}\n",
            r"targets\.t\.engine: unknown deployment engine 'tflite'; known engines: ",
        ),
        ("targets:\n  t: {engine: onnxruntime, options: {thread: 1}}\n", r"targets\.t\.options: unknown engine option"),
        ("targets:\n  t: {engine: onnxruntime, options: {precision: fp16}}\n", r"does not offer precision 'fp16'"),
        ("targets:\n  t: {engine: onnxruntime, options: {threads: -1}}\n", r"threads must be >= 1"),
        ("targets:\n  t: {engin: onnxruntime}\n", r"targets\.t: unknown field\(s\) \['engin'\]"),
        ("- a\n- b\n", r"expected a top-level 'targets:' mapping"),
    ],
)
def test_a_bad_target_file_names_the_file_target_and_field(tmp_path, yaml_text, message):
    (tmp_path / TARGETS_FILE).write_text(yaml_text)
    with pytest.raises(ConfigurationError, match=message) as info:
        load_targets(tmp_path)
    assert TARGETS_FILE in str(info.value)


def test_an_unknown_target_name_lists_the_known_ones():
    with pytest.raises(
        ConfigurationError, match="unknown deployment target 'edge'; known targets: auto-cpu, cloud-cpu, edge-cpu, gpu"
    ):
        get_target("edge")


def test_the_gpu_target_says_why_it_cannot_run_on_a_cpu_machine():
    reason = get_target("gpu").unavailable_reason()
    if reason is None:
        pytest.skip("this machine can run TensorRT")
    assert "NVIDIA GPU" in reason


def test_a_check_on_a_target_gives_model_metrics_and_tags():
    target = get_target("cloud-cpu")
    result = evaluate_on_target(target, tiny_mlp_onnx(), tiny_feed(), repeats=5, warmup=1)
    metrics, tags = target_metrics(target, result)
    assert metrics["deploy_parity_ok"] == 1.0 and metrics["deploy_latency_p50_ms_b1"] > 0
    assert {"deploy_latency_p99_ms_b32", "deploy_model_size_kb", "deploy_peak_memory_mb"} <= set(metrics)
    assert tags[DEPLOY_ENGINE_TAG] == "onnxruntime" and tags[DEPLOY_TARGET_TAG] == "cloud-cpu"
    assert tags[DEPLOY_VERDICT_TAG].startswith("onnxruntime: ok")


def test_an_auto_target_chooses_the_fastest_deployable_engine_by_measurement():
    """Every available engine is compiled, checked and measured; the fastest one that passes
    parity is chosen, and the version's tags name it (TensorRT is not a candidate here)."""
    from automl_tasks.deploy.targets import candidate_engines

    target = get_target("auto-cpu")
    assert target.unavailable_reason() is None
    candidates = candidate_engines(target.options)
    assert {"onnxruntime", "openvino", "tvm"} <= set(candidates) and "tensorrt" not in candidates
    chosen = evaluate_on_target(target, tiny_mlp_onnx(), tiny_feed(), repeats=20, warmup=3, batch_sizes=(1,))
    assert chosen.verdict.deployable and chosen.verdict.engine in candidates
    each = {
        name: evaluate(name, tiny_mlp_onnx(), tiny_feed(), options=target.options, measure=True, batch_sizes=(1,))
        for name in candidates
    }
    fastest = min(each.values(), key=lambda r: r.measurement.latency[1].p50_ms).measurement.latency[1].p50_ms
    # measured again, the choice is within noise of the fastest engine (and never a slow outlier)
    assert each[chosen.verdict.engine].measurement.latency[1].p50_ms <= 3 * fastest + 0.05
    _, tags = target_metrics(target, chosen)
    assert tags["loopml.deploy.engine"] == chosen.verdict.engine and tags["loopml.deploy.target"] == "auto-cpu"


def test_an_auto_target_serves_a_model_only_onnx_runtime_runs_on_onnx_runtime(tmp_path):
    """A forest (TreeEnsemble) fails on OpenVINO and TVM: the choice is ONNX Runtime."""
    from tests.tabular_models import fitted_estimator, small_table

    frame = small_table("multiclass")
    frame.to_parquet(tmp_path / "t.parquet")
    forest = {"model": "random_forest", "n_estimators": 5, "max_depth": 3, "min_samples_leaf": 1, "max_features": 1.0}
    estimator = fitted_estimator(tmp_path / "t.parquet", "multiclass", forest)
    model = estimator.export_onnx(tmp_path / "forest.onnx")
    chosen = evaluate_on_target(get_target("auto-cpu"), model, estimator.onnx_feed(frame.head(8)), batch_sizes=(1,))
    assert chosen.verdict.engine == "onnxruntime" and chosen.verdict.deployable
