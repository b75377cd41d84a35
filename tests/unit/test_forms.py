"""The trigger forms of the DAG files and the request checks agree, field by field.

For every field of a form, Airflow (the DAG's Param, with its JSON schema) and the
request class that the DAG's start task builds are given the same probe values: the
default, each bound and one step past it, each choice and one that is not, an empty
string, a value of the wrong type. Both must accept or both refuse. The request
classes' fields are exactly the form's, with the form's defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from automl_tasks.core.errors import LoopmlError
from automl_tasks.pipelines.forms import (
    BUNDLED_DATASETS,
    BUNDLED_TEXT_DATASETS,
    DRIFT_CHECK_FORM,
    FORMS,
    HPO_FORM,
    NOCODE_FORM,
    RETRAIN_OVERRIDES,
    strategy_choices,
)
from automl_tasks.pipelines.requests import HpoRequest, NoCodeRequest, RetrainRequest

REPO = Path(__file__).resolve().parents[2]
WINDOW = "dataset://fam.window@0123456789"


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    """The DAG files as the scheduler parses them."""
    home = tmp_path_factory.mktemp("airflow")
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_HOME", str(home))
    patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    patch.setenv("LOOPML_HOME", str(home / "ws"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    patch.undo()
    assert bag.import_errors == {}
    return bag.dags


def _probes(schema: dict[str, Any], default: Any) -> list[Any]:
    """Values on and just past every rule of a field's JSON schema."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    values: list[Any] = [default, "", 2.5, "text", 10**9]
    step = 1 if "integer" in types else 0.01
    if "minimum" in schema:
        values += [schema["minimum"], schema["minimum"] - step]
    if "maximum" in schema:
        values += [schema["maximum"], schema["maximum"] + step]
    if "null" in types:
        values += [None]
    if "integer" in types:
        values += [3.0]  # a whole number sent as a float (JSON clients do)
    values += list(schema.get("enum") or []) + (["not-a-choice"] if "enum" in schema else [])
    return values


def _airflow_accepts(param: Any, value: Any) -> bool:
    from airflow.sdk.exceptions import ParamValidationError

    try:
        copy.deepcopy(param).resolve(value)  # resolve() keeps the value it checked
    except ParamValidationError:
        return False
    return True


def _request_accepts(build: Any, name: str, value: Any) -> tuple[bool, str]:
    try:
        build(name, value)
    except (LoopmlError, ValueError) as exc:  # a clean refusal; anything else is a bug and fails the test
        return False, str(exc)
    return True, ""


def _nocode(name: str, value: Any) -> Any:
    return NoCodeRequest.from_conf({"dataset": "iris", name: value})


def _hpo(name: str, value: Any) -> Any:
    return HpoRequest.from_conf({name: value})


def _retrain(data_file: Path):
    def build(name: str, value: Any) -> Any:
        conf: dict[str, Any] = {"family": "fam", "window_uri": WINDOW}
        if name in ("window_uri", "data_path"):  # exactly one of them: the other one when the probe is empty
            conf = {"family": "fam"}
            if value in ("", None):
                conf.update({"data_path": str(data_file)} if name == "window_uri" else {"window_uri": WINDOW})
        return RetrainRequest.from_conf({**conf, name: value})

    return build


def _names(message: str, field: str) -> bool:
    return field in message or field.replace("_", " ") in message  # 'search space error at ...'


def _check_agreement(dag: Any, names: tuple[str, ...], build: Any) -> int:
    compared = 0
    for name in names:
        param = dag.params.get_param(name)
        further = FORMS[dag.dag_id][name].further_check
        for value in _probes(param.schema, param.value):
            airflow_ok = _airflow_accepts(param, value)
            request_ok, why = _request_accepts(build, name, value)
            if further and airflow_ok and not request_ok:  # a rule the form cannot express, declared in the spec
                assert _names(why, name), f"the refusal of {name}={value!r} does not name it: {why}"
                continue
            assert airflow_ok == request_ok, (
                f"{dag.dag_id}.{name}={value!r}: the form {'accepts' if airflow_ok else 'refuses'} it, "
                f"the request {'accepts' if request_ok else 'refuses'} it {why}"
            )
            if not request_ok:
                assert _names(why, name), f"the refusal of {name}={value!r} does not name it: {why}"
            compared += 1
    return compared


@pytest.mark.parametrize(
    ("dag_id", "request_class"),
    [("nocode_pipeline", NoCodeRequest), ("hpo_pipeline", HpoRequest), ("drift_retrain", RetrainRequest)],
)
def test_request_fields_are_the_form_fields_with_its_defaults(dags, dag_id, request_class):
    form = FORMS[dag_id]
    params = dags[dag_id].params
    fields = {f.name: f for f in dataclasses.fields(request_class)}
    assert list(params) == list(form.names())
    assert set(fields) == set(form.names())
    for spec in form:
        field = fields[spec.name]
        if spec.required:
            assert field.default is dataclasses.MISSING, f"{dag_id}.{spec.name} is required in the form only"
        else:
            assert field.default == params[spec.name] == spec.default, f"{dag_id}.{spec.name}: defaults differ"


@pytest.mark.parametrize("dag_id", ["nocode_pipeline", "hpo_pipeline", "drift_retrain"])
def test_the_form_and_the_request_accept_and_refuse_the_same_values(dags, dag_id, tmp_path):
    data_file = tmp_path / "recent.csv"
    data_file.write_text("a,target\n1,0\n")
    build = {"nocode_pipeline": _nocode, "hpo_pipeline": _hpo, "drift_retrain": _retrain(data_file)}[dag_id]
    assert _check_agreement(dags[dag_id], FORMS[dag_id].names(), build) >= 5 * len(FORMS[dag_id].names())


def test_drift_check_retrain_fields_follow_the_retrain_rules(dags):
    """drift_check passes its retrain fields to drift_retrain (empty ones left out)."""

    def build(name: str, value: Any) -> Any:
        given = {name: value} if value is not None else {}  # what drift_check's retrain_requests passes on
        return RetrainRequest.from_conf({"family": "fam", "window_uri": WINDOW, **given})

    assert set(RETRAIN_OVERRIDES) <= set(DRIFT_CHECK_FORM.names())
    assert _check_agreement(dags["drift_check"], RETRAIN_OVERRIDES, build) > 0
    for name in RETRAIN_OVERRIDES:
        assert dags["drift_check"].params[name] is None  # empty: drift_retrain's own default


def test_promotion_form_follows_the_gate_rules(dags):
    from automl_tasks.families.promotion import GateConfig

    names = tuple(f.name for f in dataclasses.fields(GateConfig))
    for dag_id in ("promote_model", "drift_retrain"):
        params = dags[dag_id].params
        for name in names:
            assert params[name] == getattr(GateConfig(), name), f"{dag_id}.{name}: default differs from GateConfig"
            param = params.get_param(name)
            for value in (param.schema["minimum"], param.schema["minimum"] - 0.01, 10**9):
                assert (
                    _airflow_accepts(param, value)
                    == _request_accepts(lambda n, v: GateConfig(**{n: v}), name, value)[0]
                ), f"{dag_id}.{name}={value}"


def test_strategy_choices_come_from_the_registry(dags):
    from automl_tasks.search.strategies import STRATEGIES

    single = [n for n, s in STRATEGIES.items() if not s.multi_objective]
    assert strategy_choices(fidelity=True) == ("auto", *single)
    assert strategy_choices(fidelity=False) == ("auto", *(n for n in single if not STRATEGIES[n].needs_fidelity))
    assert dags["nocode_pipeline"].params.get_param("strategy").schema["enum"] == list(NOCODE_FORM["strategy"].enum)
    assert dags["hpo_pipeline"].params.get_param("strategy").schema["enum"] == list(HPO_FORM["strategy"].enum)
    assert {"hyperband", "asha"} <= set(HPO_FORM["strategy"].enum) - set(NOCODE_FORM["strategy"].enum)


def test_bundled_dataset_names_are_the_bundled_tables():
    from automl_tasks.data.bundled import BUNDLED

    assert sorted(BUNDLED_DATASETS + BUNDLED_TEXT_DATASETS) == sorted(BUNDLED)


def test_a_request_refuses_out_of_range_values_naming_the_field_and_the_rule():
    with pytest.raises(LoopmlError, match=r"The 'repeats' parameter must be an integer in \[2, 20\]. Got 21 instead"):
        HpoRequest(repeats=21)
    with pytest.raises(LoopmlError, match=r"'eval_fraction' parameter must be a number in \[0.05, 0.8\]. Got 0.9"):
        RetrainRequest(family="fam", window_uri=WINDOW, eval_fraction=0.9)
    with pytest.raises(LoopmlError, match=r"'strategy' parameter must be one of \['auto', "):
        NoCodeRequest(dataset="iris", strategy="hyperband")  # needs a fidelity; the tabular search has none


def test_the_forms_module_imports_no_ml_library_and_is_fast():
    probe = (
        "import json, sys, time; t = time.perf_counter(); import automl_tasks.pipelines.forms; "
        "print(json.dumps([time.perf_counter() - t, sorted(m.split('.')[0] for m in sys.modules)]))"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds, modules = json.loads(out.stdout)
    heavy = {"numpy", "pandas", "sklearn", "optuna", "mlflow", "torch", "scipy", "lightgbm", "onnx", "airflow"}
    assert heavy.isdisjoint(modules), sorted(heavy & set(modules))
    assert seconds < 1.0 and time.perf_counter() - started < 30


# ---- the deployment goal (issue #12): target, latency budget, trade-off -----------------


def test_deployment_target_proposals_are_the_built_in_targets():
    from automl_tasks.deploy.targets import BUILTIN_TARGETS
    from automl_tasks.pipelines.forms import DEPLOY_TARGET_PROPOSALS

    assert DEPLOY_TARGET_PROPOSALS == ("", *BUILTIN_TARGETS)


@pytest.mark.parametrize("build", [lambda **kw: NoCodeRequest(dataset="iris", **kw), lambda **kw: HpoRequest(**kw)])
def test_a_bad_deployment_goal_is_refused_naming_the_field(build, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path))
    (tmp_path / "deploy_targets.yaml").write_text("targets:\n  my-edge: {engine: openvino, options: {threads: 1}}\n")
    with pytest.raises(LoopmlError, match=r"'deploy_target' parameter must be a known deployment target") as info:
        build(deploy_target="edge")
    assert all(name in str(info.value) for name in ("cloud-cpu", "edge-cpu", "gpu", "my-edge"))  # the YAML's too
    with pytest.raises(LoopmlError, match=r"The 'latency_budget_ms' parameter must be a number >= 0. Got -1"):
        build(deploy_target="edge-cpu", latency_budget_ms=-1)
    with pytest.raises(LoopmlError, match=r"'latency_budget_ms' parameter needs a 'deploy_target'"):
        build(latency_budget_ms=5)
    with pytest.raises(LoopmlError, match=r"'trade_off_latency' parameter needs a 'deploy_target'"):
        build(trade_off_latency=True)
    accepted = build(deploy_target="my-edge", latency_budget_ms=2.5, trade_off_latency=True)
    assert accepted.deploy_target == "my-edge"


def test_an_unavailable_engine_is_refused_before_any_trial_with_its_reason(tmp_path, monkeypatch):
    from automl_tasks.deploy.backends.registry import get_backend

    monkeypatch.setenv("LOOPML_HOME", str(tmp_path))
    reason = get_backend("tensorrt").unavailable_reason()
    if reason is None:  # a GPU machine: the gpu target is accepted there
        assert NoCodeRequest(dataset="iris", deploy_target="gpu").deploy_target == "gpu"
        return
    with pytest.raises(LoopmlError) as info:
        NoCodeRequest(dataset="iris", deploy_target="gpu", latency_budget_ms=1)
    message = str(info.value)
    assert "'deploy_target'" in message and "'tensorrt'" in message and reason in message


def test_trade_off_refuses_strategies_that_optimise_one_objective(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path))
    for strategy in ("hyperband", "asha", "cmaes"):
        with pytest.raises(LoopmlError, match=rf"The 'strategy' parameter '{strategy}' optimises one objective"):
            HpoRequest(strategy=strategy, deploy_target="cloud-cpu", trade_off_latency=True)
    assert HpoRequest(strategy="hyperband", deploy_target="cloud-cpu", latency_budget_ms=3).strategy == "hyperband"
    assert HpoRequest(strategy="tpe", deploy_target="cloud-cpu", trade_off_latency=True).trade_off_latency
