"""The task estimator: final training of the best configuration, export, deployment
measurement and registration as a new version of the model family.

Steps: retrain the best trial's configuration on train+validation; score it on the
held-out test split; export to ONNX and check parity with the native model; measure
ONNX Runtime latency; log model, ONNX file, feature schema and metrics to MLflow;
register a new version of the family, score it on the family's fixed evaluation data and
let the promotion gate decide champion / challenger.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from automl_tasks.core.code_version import code_version
from automl_tasks.core.errors import UserError
from automl_tasks.core.labels import LABEL_SPEC_FILE, LabelSpec, load_label_spec
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    BEST_TRIAL_TAG,
    CODE_VERSION_TAG,
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    DEFAULT_CONFIG_SCORE_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    IS_DEFAULT_CONFIG_TAG,
    KIND_TAG,
    LABEL_KIND_TAG,
    METRIC_TAG,
    ORIGIN_TAG,
    PARENT_VERSION_TAG,
    RUN_ID_TAG,
    SEARCH_SCORE_TAG,
    SPACE_HASH_TAG,
    STUDY_TAG,
    TARGET_TAG,
)
from automl_tasks.core.tracking import clean_params, mlflow_client
from automl_tasks.deploy.runtime import export_or_fallback
from automl_tasks.estimators import TabularEstimator
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.aliases import CHALLENGER, CHAMPION
from automl_tasks.families.artifacts import FEATURE_SCHEMA_FILE
from automl_tasks.families.promotion import evaluation_data_uri, family_lock, promote
from automl_tasks.families.refit_check import fit_final_model
from automl_tasks.search.storage import load_study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredModel:
    """Result of the task estimator (JSON-able for XCom)."""

    family: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    test_score: float
    metric: str
    onnx_parity_max_abs_diff: float | None  # None when the version is served by the native runtime
    latency_single_ms: float
    runtime: str = "onnxruntime"
    warning: str = ""  # set when the version should not be trusted as it stands (see the run log)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ("scikit-learn", "lightgbm", "torch", "onnxruntime", "pandas", "numpy")
    return [f"{n}=={version(n)}" for n in names]


def _family_evaluation(ws: Workspace, client, family: str, estimator: TabularEstimator) -> tuple[str, Any]:
    """(URI, frame) of the family's fixed evaluation data; the first version's test rows create it.

    Under the family lock, so two first runs of a new family cannot each set their own."""
    import pandas as pd

    from automl_tasks.data import DatasetStore

    store = DatasetStore(ws.datasets, ws.dvc_remote)
    with family_lock(ws, family):
        uri = evaluation_data_uri(client, family)
        if uri:
            return uri, store.read(uri)
        frame = pd.read_parquet(estimator.data.path).iloc[estimator.test_rows]
        stored = store.put(f"{family}.eval", frame)
        client.set_registered_model_tag(family, EVAL_URI_TAG, stored.uri)
    log.info("family %s evaluates every version on %s (%d rows)", family, stored.uri, len(frame))
    return stored.uri, frame


def _evaluation_score(estimator: TabularEstimator, frame, metric: Metric) -> float | None:
    """The new model's metric on the family's evaluation data; None if its columns differ."""
    from automl_tasks.families.evaluation import missing_columns, score_pipeline

    if missing_columns(frame, estimator.schema_, estimator.data.target):
        log.warning("the family's evaluation data lacks this model's columns; it cannot be compared")
        return None
    return score_pipeline(estimator.pipeline_, frame, estimator.schema_, estimator.data.target, metric)


def _baseline_score(estimator: TabularEstimator, frame, metric: Metric) -> float | None:
    """The trivial baseline (fitted on the target of this model's fit rows) on the evaluation data."""
    from automl_tasks.families.evaluation import trivial_baseline_score

    target = estimator.data.target
    if target not in frame.columns:
        return None
    fit_rows, _ = estimator._rows()
    return trivial_baseline_score(estimator.target_[fit_rows], frame, target, metric, estimator.data.task_type)


def _search_comparison_tags(study, best) -> dict[str, str]:
    """The search's default configuration (the trial enqueued as `default`) against the best one."""
    from optuna.trial import TrialState

    defaults = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(ORIGIN_TAG) == "default"
    ]
    tags = {SEARCH_SCORE_TAG: f"{best.value:.8g}"}
    if defaults:
        tags[DEFAULT_CONFIG_SCORE_TAG] = f"{defaults[0].value:.8g}"
    is_default = best.user_attrs.get(ORIGIN_TAG) == "default" or any(t.params == best.params for t in defaults)
    tags[IS_DEFAULT_CONFIG_TAG] = str(is_default).lower()
    return tags


def _label_spec(plan: Any, estimator: TabularEstimator) -> LabelSpec:
    """The label spec data_preprocess (or drift_retrain) logged with the pipeline run, with the
    classes the model learned; inferred from the training target for runs made without one."""
    spec = load_label_spec(plan.parent_run_id) or LabelSpec.infer(estimator.target_, plan.data.task_type)
    classes = getattr(estimator.pipeline_, "classes_", None)
    return spec.with_classes(spec.decode(classes)) if classes is not None else spec


def train_and_register(
    ws: Workspace,
    study_name: str,
    *,
    dag_run_id: str,
    dataset_version: str,
    parent_version: str | None = None,
    auto_promote: bool = True,
    pipeline: str = "nocode_pipeline",
) -> RegisteredModel:
    """Final-train the study's best configuration and register it in the family.

    `parent_version` names the family version this model derives from (a retrained or
    distilled model); it is recorded as lineage. With `auto_promote` the promotion gate
    runs at once; without it the version becomes `challenger` and a later gate decides.
    """
    import mlflow
    from mlflow.models import infer_signature

    study, plan = load_study(ws.optuna_uri, study_name)
    try:
        best = study.best_trial
    except ValueError:
        raise UserError(f"study {study_name} has no completed trial; nothing to train (see worker logs)") from None
    from automl_tasks.algorithms import require

    require(ws, plan.algorithm, "deployable")  # an algorithm that only searches is never registered as a model
    metric = Metric(plan.metric)
    workdir = ws.runs / study_name / "final"
    started = time.perf_counter()
    final = fit_final_model(
        TabularEstimator,
        data=plan.data,
        config=best.params,
        validated=float(best.value),
        metric=metric,
        workdir=workdir,
    )
    estimator = final.estimator
    log.info(
        "final model (trial %d config, %s) %s on test split: %.5g",
        best.number,
        final.source,
        metric.name,
        final.test_score,
    )

    test_features = estimator.features_.iloc[estimator.test_rows]
    labels = _label_spec(plan, estimator)
    deployment = export_or_fallback(estimator.pipeline_, estimator.schema_, workdir, test_features, labels)
    latency = deployment.latency
    (workdir / FEATURE_SCHEMA_FILE).write_text(json.dumps(estimator.schema_.to_dict()))
    (workdir / LABEL_SPEC_FILE).write_text(labels.to_json())

    client = mlflow_client(ws)
    metrics = {
        f"test_{metric.name}": final.test_score,
        "best_search_score": float(best.value),
        "train_seconds": time.perf_counter() - started,
        **final.metrics(),
        **deployment.metrics,
    }
    tags = {
        DATASET_URI_TAG: plan.dataset_uri,
        DATASET_VERSION_TAG: dataset_version,
        STUDY_TAG: study_name,
        SPACE_HASH_TAG: plan.space_hash,
        DAG_RUN_TAG: dag_run_id,
        CODE_VERSION_TAG: code_version(),
        METRIC_TAG: metric.name,
        TARGET_TAG: plan.data.target,
        **({PARENT_VERSION_TAG: parent_version} if parent_version else {}),
        BEST_TRIAL_TAG: str(best.number),
        **final.tags(),
        **_search_comparison_tags(study, best),
    }
    sample = test_features.head(5)
    with mlflow.start_run(
        experiment_id=plan.experiment_id,
        run_name="task_estimator",
        tags={"mlflow.parentRunId": plan.parent_run_id, KIND_TAG: "final_model", **tags},
    ) as run:
        mlflow.log_params(clean_params(best.params))
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(workdir / FEATURE_SCHEMA_FILE))
        mlflow.log_artifact(str(workdir / LABEL_SPEC_FILE))
        if deployment.onnx_path is not None:
            mlflow.log_artifact(str(deployment.onnx_path), artifact_path="onnx")
        info = mlflow.sklearn.log_model(
            estimator.pipeline_,
            name="model",
            signature=infer_signature(sample, estimator.pipeline_.predict(sample)),
            input_example=sample,
            registered_model_name=plan.family,
            pip_requirements=_pip_requirements(),
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    eval_uri, eval_frame = _family_evaluation(ws, client, plan.family, estimator)
    eval_score = _evaluation_score(estimator, eval_frame, metric)
    baseline = _baseline_score(estimator, eval_frame, metric)
    version_tags = {
        **tags,
        f"test_{metric.name}": f"{final.test_score:.6g}",
        RUN_ID_TAG: run.info.run_id,
        EVAL_URI_TAG: eval_uri,
        "latency_single_ms": f"{latency['latency_single_ms']:.6g}",
        LABEL_KIND_TAG: labels.kind,
        **deployment.tags(),
    }
    if "onnx_size_kb" in metrics:
        version_tags["onnx_size_kb"] = f"{metrics['onnx_size_kb']:.6g}"
    if eval_score is not None:
        version_tags[EVAL_SCORE_TAG] = f"{eval_score:.8g}"
    if baseline is not None:
        version_tags |= {BASELINE_SCORE_TAG: f"{baseline:.8g}", BASELINE_URI_TAG: eval_uri}
    for key, value in version_tags.items():
        client.set_model_version_tag(plan.family, version, key, value)
    warning = "" if final.promotable else f"refit integrity check failed: {final.reason}"
    if auto_promote:
        decision = promote(ws, plan.family, version, mode="auto", triggered_by=f"{pipeline} run {dag_run_id}")
        promoted = decision["promoted"]
        if not promoted and not decision.get("champion"):
            warning = (
                f"family {plan.family} has NO champion: v{version} stays {CHALLENGER} because {decision['reason']}; "
                "nothing is served until a version passes the gate (or is promoted by hand)"
            )
    else:
        with family_lock(ws, plan.family):
            client.set_registered_model_alias(plan.family, CHALLENGER, version)
        promoted = False
        log.info("family %s v%s registered as %s; the promotion gate decides next", plan.family, version, CHALLENGER)
    if warning:
        log.warning("%s", warning)
    return RegisteredModel(
        family=plan.family,
        version=version,
        alias=CHAMPION if promoted else CHALLENGER,
        run_id=run.info.run_id,
        model_uri=f"models:/{plan.family}/{version}",
        test_score=final.test_score,
        metric=metric.name,
        onnx_parity_max_abs_diff=deployment.parity.max_abs_diff if deployment.parity else None,
        latency_single_ms=latency["latency_single_ms"],
        runtime=deployment.runtime,
        warning=warning,
    )
