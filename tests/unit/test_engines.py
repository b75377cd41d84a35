"""The deployment-engine seam: parity verdicts, unknown names, options, reuse of TVM tuning logs.

The engines themselves are checked by the shipped contract (tests/unit/test_backend_contract.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from automl_tasks.core.errors import BackendUnavailableError, ConfigurationError, UnknownBackendError
from automl_tasks.deploy.backends import (
    FAILED,
    OK,
    PARITY_FAILED,
    UNAVAILABLE,
    BackendOptions,
    DeploymentBackend,
    Runner,
    backend_names,
    compare_engines,
    evaluate,
    get_backend,
)
from automl_tasks.deploy.backends.ort import OnnxRuntimeBackend
from automl_tasks.deploy.backends.verdict import max_abs_diff, reference_outputs
from automl_tasks.deploy.measure import batch_feed
from automl_tasks.testing.backends import tiny_feed, tiny_mlp_onnx

MODEL = tiny_mlp_onnx()
FEED = tiny_feed()


class Shifted(OnnxRuntimeBackend):
    """ONNX Runtime whose outputs are moved by `shift` (a wrong engine)."""

    name = "shifted"

    def __init__(self, shift: float, tolerance: float = 1e-4) -> None:
        self.shift, self.tolerances = shift, {"fp32": tolerance}

    def _compile(self, model, example_feed, options):
        inner = super()._compile(model, example_feed, options)
        shift = np.float32(self.shift)

        class Moved(Runner):
            def run(self, feed):
                return [out + shift for out in inner.run(feed)]

        return Moved()


class Broken(DeploymentBackend):
    name = "broken"

    def _compile(self, model, example_feed, options):
        raise NotImplementedError("operator TreeEnsembleClassifier is not supported")


class LocatedError(DeploymentBackend):
    """Fails as OpenVINO does: the cause comes after lines that only locate the C++ source."""

    name = "located"

    def _compile(self, model, example_feed, options):
        raise RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:105:\n"
            "Check 'false' failed at src/frontends/common/src/report.cpp:151:\n"
            "-- No conversion rule found for operations: ai.onnx.ml.Imputer\n"
        )


class Absent(DeploymentBackend):
    name = "absent"

    def unavailable_reason(self):
        return "needs a device this machine does not have"

    def _compile(self, model, example_feed, options):  # pragma: no cover - never reached
        raise AssertionError("compile of an unavailable engine must not run")


def test_the_built_in_engines_are_registered_by_name():
    assert backend_names()[:4] == ["onnxruntime", "openvino", "tvm", "tensorrt"]
    assert {name: get_backend(name).name for name in backend_names()[:4]} == {n: n for n in backend_names()[:4]}


def test_an_unknown_engine_name_is_a_clear_error_naming_the_known_ones():
    with pytest.raises(UnknownBackendError) as info:
        get_backend("tensorflow-lite")
    message = str(info.value)
    assert "unknown deployment engine 'tensorflow-lite'" in message
    assert "onnxruntime, openvino, tvm, tensorrt" in message
    with pytest.raises(UnknownBackendError):
        evaluate("tensorflow-lite", MODEL, FEED)


def test_an_engine_that_answers_differently_fails_parity_with_the_numbers():
    reference = reference_outputs(MODEL, FEED)
    scale = max(1.0, max(float(np.abs(r).max()) for r in reference))
    wrong = evaluate(Shifted(0.01 * scale), MODEL, FEED).verdict
    assert wrong.status == PARITY_FAILED and not wrong.deployable
    assert wrong.max_abs_diff == pytest.approx(0.01 * scale, rel=1e-3)
    assert str(wrong).startswith(f"shifted: parity failed: max abs diff {wrong.max_abs_diff:.3g} > tol ")
    # the same shift inside a tolerance that allows it is ok: the tolerance is the engine's stated one
    loose = evaluate(Shifted(0.01 * scale, tolerance=0.02), MODEL, FEED).verdict
    assert loose.status == OK and loose.deployable
    assert str(loose).startswith("shifted: ok (max abs diff")


def test_parity_is_checked_against_given_native_outputs():
    native = reference_outputs(MODEL, FEED)
    native[1] = native[1] + 0.5  # the native probabilities disagree with what every engine computes
    verdict = evaluate("onnxruntime", MODEL, FEED, reference=native).verdict
    assert verdict.status == PARITY_FAILED and verdict.max_abs_diff == pytest.approx(0.5, rel=1e-5)


def test_a_compile_error_is_a_failed_verdict_that_keeps_the_error():
    verdict = evaluate(Broken(), MODEL, FEED).verdict
    assert verdict.status == FAILED and not verdict.deployable
    assert str(verdict) == (
        "broken: failed: compile: NotImplementedError: operator TreeEnsembleClassifier is not supported"
    )


def test_a_compile_error_keeps_its_cause_not_the_engines_source_location():
    verdict = str(evaluate(LocatedError(), MODEL, FEED).verdict)
    assert "No conversion rule found for operations: ai.onnx.ml.Imputer" in verdict
    assert "core.cpp" not in verdict and "report.cpp" not in verdict


def test_an_unavailable_engine_says_why_and_refuses_to_compile():
    verdict = evaluate(Absent(), MODEL, FEED).verdict
    assert verdict.status == UNAVAILABLE
    assert str(verdict) == "absent: unavailable: needs a device this machine does not have"
    with pytest.raises(BackendUnavailableError, match="'absent' is unavailable: needs a device"):
        Absent().compile(MODEL, FEED)


def test_compare_engines_gives_one_verdict_per_engine_in_order():
    verdicts = compare_engines(MODEL, FEED, engines=["onnxruntime", "tensorrt"])
    assert [v.engine for v in verdicts] == ["onnxruntime", "tensorrt"]
    assert verdicts[0].status == OK and verdicts[0].max_abs_diff == 0.0


def test_options_reject_unknown_keys_bad_values_and_unoffered_precisions():
    assert BackendOptions.coerce({"threads": 1, "work_dir": "/tmp/x"}).work_dir.name == "x"
    with pytest.raises(ConfigurationError, match=r"unknown engine option\(s\) \['thread'\]"):
        BackendOptions.coerce({"thread": 1})
    with pytest.raises(ConfigurationError, match="threads must be >= 1"):
        BackendOptions.coerce({"threads": 0})
    with pytest.raises(ConfigurationError, match="'onnxruntime' does not offer precision 'fp16'"):
        get_backend("onnxruntime").compile(MODEL, FEED, {"precision": "fp16"})


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        evaluate("onnxruntime", tmp_path / "missing.onnx", FEED)


def test_max_abs_diff_counts_nan_and_missing_outputs_as_infinite():
    one = [np.array([1.0, 2.0])]
    assert max_abs_diff(one, [np.array([1.0, 2.5])]) == 0.5
    assert max_abs_diff(one, [np.array([1.0, np.nan])]) == float("inf")
    assert max_abs_diff(one, []) == float("inf")


def test_text_labels_are_compared_for_equality():
    """A classifier with string classes outputs its labels as text, beside numeric probabilities."""
    labels, proba = np.array(["no", "yes"], dtype=object), np.array([[0.7, 0.3], [0.2, 0.8]], dtype=np.float32)
    assert max_abs_diff([labels, proba], [labels.copy(), proba + 1e-3]) == pytest.approx(1e-3, rel=1e-3)
    assert max_abs_diff([labels, proba], [np.array(["no", "no"], dtype=object), proba]) == float("inf")


def test_batch_feed_tiles_rows_to_the_batch_size():
    tiled = batch_feed(FEED, 10)
    assert tiled["x"].shape == (10, 6)
    assert np.array_equal(tiled["x"][4], FEED["x"][0])
    assert batch_feed(FEED, 1)["x"].shape == (1, 6)


def test_a_tuned_tvm_build_reuses_the_kept_tuning_logs(tmp_path, monkeypatch):
    """A tuning folder that is marked finished is used as it is: no tuner runs again."""
    from automl_tasks.deploy.backends import tvm_relax

    def no_tuning(*args, **kwargs):
        raise AssertionError("tuned again although the tuning logs were kept")

    monkeypatch.setattr(tvm_relax, "tune_in_child", no_tuning)
    shapes = {name: tuple(value.shape) for name, value in FEED.items()}
    folder = tvm_relax.tuning_dir(tmp_path, MODEL, shapes, tvm_relax.host_target(1))
    folder.mkdir(parents=True)
    for name in ("database_workload.json", "database_tuning_record.json"):  # MetaSchedule's JSON database
        (folder / name).write_text("")
    (folder / tvm_relax.TUNED_MARKER).write_text(json.dumps({"tune_seconds": 1.5, "rounds": 1, "tasks": 3}))
    result = evaluate("tvm", MODEL, FEED, options={"tune_seconds": 5, "work_dir": tmp_path, "threads": 1})
    assert result.verdict.status == OK, str(result.verdict)
    (report,) = result.runner.tuning.values()
    assert report == {"tune_seconds": 1.5, "rounds": 1, "tasks": 3, "reused": True}


def test_a_tuned_tvm_build_without_a_work_dir_is_refused():
    verdict = evaluate("tvm", MODEL, FEED, options={"tune_seconds": 1}).verdict
    assert verdict.status == FAILED and "needs options.work_dir" in verdict.detail


def test_tvm_pads_batches_to_a_few_static_shapes_and_answers_every_row():
    """Relax builds static shapes: batches of 3, 4 and 5 rows run at 4 and 8 rows, so a
    server builds a few shapes, not one per batch size; the padding rows are cut off."""
    result = evaluate("tvm", MODEL, FEED, options={"threads": 1})
    runner, built = result.runner, set(result.runner.machines)
    rows = np.random.default_rng(3).normal(size=(5, FEED["x"].shape[1])).astype(np.float32)
    for n in (3, 4, 5):
        feed = {"x": rows[:n]}
        for got, want in zip(runner.run(feed), reference_outputs(MODEL, feed), strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    new_shapes = {dict(key)["x"][0] for key in set(runner.machines) - built}
    assert new_shapes <= {4, 8} and 8 in new_shapes
