"""The task estimator: final training of the best configuration, export, deployment
measurement and registration as a new version of the model family.

`train_and_register` runs seven steps; each is a small function with a typed result and
takes any `Estimator` (automl_tasks.estimators.base):

1. fit (`fit_final`) -> `FitResult`: the best trial's configuration trained on
   train+validation and scored on the held-out test split. The tabular estimator also gets
   the refit integrity check (families/refit_check), which needs its split internals, and
   when it passes, the model registered is the same recipe refitted on all rows.
2. export (`export_model`) -> `Deployment`: a scikit-learn pipeline goes to ONNX with
   parity and latency, or to the native runtime when ONNX cannot serve it; any other
   estimator exports itself (`Estimator.export_onnx`). `place_on_target` then compiles
   the ONNX model on the plan's deployment target, measures it there and, when it passes
   parity, makes the target's engine the version's runtime.
3. trust (`trust_step`) -> `TrustReport`: robustness to noise and to an adversarial
   attack, and membership-inference privacy (automl_tasks/trust), measured on the model
   the test score belongs to, whose test rows it never saw (a refit on all rows has none
   left). Here rather than in an Airflow task of its own because that model and its split
   exist only in this process: the registered version is the refit.
4. register (`log_version`) -> `Registration`: the MLflow run with params, metrics,
   artifacts (the trust report's JSON and plot among them) and the model, registered as
   a new version of the family; the trust numbers are MLflow model metrics of it.
5. measure (`measure_on_family`) -> `FamilyScores`: the version and the trivial baseline
   scored on the family's fixed evaluation data (after `register`: the first version of a
   family creates that data, and it is a tag of the registered model).
6. tag (`lineage_tags`, `version_tags`, `tag_version`): ONE set of version tags, with the
   same lineage keys and the same value truncation for every estimator and pipeline.
7. promote (`promote_version`) -> `Promotion`: the promotion gate at once, or `challenger`
   for a later gate. Only tabular versions meet the gate: it and the BentoML service read
   scikit-learn models; any other estimator's ONNX model is registered as `challenger`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from automl_tasks.core.code_version import code_version
from automl_tasks.core.labels import LABEL_SPEC_FILE, LabelSpec, load_label_spec
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ALGORITHM_TAG,
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    BEST_TRIAL_TAG,
    CODE_VERSION_TAG,
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    DEFAULT_CONFIG_SCORE_TAG,
    ENSEMBLE_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    FEATURE_PACKAGES_TAG,
    FEATURE_PIPELINE_TAG,
    IS_DEFAULT_CONFIG_TAG,
    KIND_TAG,
    LABEL_KIND_TAG,
    METRIC_TAG,
    NATIVE_PACKAGES_TAG,
    ORIGIN_TAG,
    PARENT_VERSION_TAG,
    RUN_ID_TAG,
    SEARCH_SCORE_TAG,
    SPACE_HASH_TAG,
    STUDY_TAG,
    TARGET_TAG,
)
from automl_tasks.core.tracking import clean_params, mlflow_client
from automl_tasks.deploy.runtime import ONNX_RUNTIME, Deployment, export_or_fallback, on_target
from automl_tasks.estimators import Estimator, TabularEstimator
from automl_tasks.estimators import tabular as _tabular
from automl_tasks.estimators.ensemble import EnsembleEstimator
from automl_tasks.estimators.metrics import Metric
from automl_tasks.families.aliases import CHALLENGER, CHAMPION
from automl_tasks.families.artifacts import FEATURE_SCHEMA_FILE
from automl_tasks.families.promotion import evaluation_data_uri, family_lock, promote
from automl_tasks.families.refit_check import FinalModel, fit_final_model, on_all_rows, refits_on_all_rows
from automl_tasks.features.pipeline import FILE_NAME as FEATURE_PIPELINE_FILE
from automl_tasks.pipelines.ensembling import EnsembleChoice, choose_ensemble
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.predictions import drop_predictions
from automl_tasks.search.storage import open_study

log = logging.getLogger(__name__)

#: longest tag value written on a version (MLflow refuses values over 5000 characters)
TAG_VALUE_LIMIT = 4900


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
    latency_single_ms: float | None  # None when not measured (an estimator's own ONNX export)
    runtime: str = "onnxruntime"
    warning: str = ""  # set when the version should not be trusted as it stands (see the run log)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_tabular(estimator: Any) -> bool:
    """Whether `estimator` (a class or an instance) is the tabular estimator: a fitted
    scikit-learn pipeline over a feature schema, which the steps below can check, export
    with a native fallback, score on the family's evaluation data and promote."""
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return issubclass(cls, _tabular.TabularEstimator)


# --- 1. fit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """The fit step: the final model of a study's best configuration and its test score."""

    estimator: Estimator  # fitted
    trial: Any  # the study's best optuna FrozenTrial
    metric: Metric
    test_score: float
    workdir: Path
    check: FinalModel | None = None  # the refit integrity check (tabular estimator only)
    ensemble: EnsembleChoice | None = None  # set when the model is an ensemble of trials

    @property
    def scored(self) -> Estimator:
        """The model `test_score` was measured on; scores on held-out rows use it, since the
        registered `estimator` may be its refit on all rows (families/refit_check)."""
        return self.check.scored if self.check is not None else self.estimator

    @property
    def awaits_all_rows_refit(self) -> bool:
        """Whether its checked refit is still to be fitted on all rows (`fit_final(all_rows=False)`)."""
        return self.check is not None and refits_on_all_rows(self.check)

    def refitted_on_all_rows(self) -> FitResult:
        """This fit with its checked refit fitted again on every row as the model to register
        (families/refit_check.on_all_rows); call it when `awaits_all_rows_refit`."""
        final = on_all_rows(self.check)
        return replace(self, estimator=final.estimator, check=final)

    @property
    def warning(self) -> str:
        """Why the version should not be promoted as it stands; empty when nothing says so."""
        if self.check is None or self.check.promotable:
            return ""
        return f"refit integrity check failed: {self.check.reason}"

    def metrics(self, *, train_seconds: float) -> dict[str, float]:
        ensemble: dict[str, float] = {}
        if self.ensemble is not None:
            ensemble = {"ensemble_search_score": self.ensemble.score, "ensemble_members": len(self.ensemble.trials)}
        return {
            f"test_{self.metric.name}": self.test_score,
            "best_search_score": float(self.trial.values[0]),
            "train_seconds": train_seconds,
            **ensemble,
            **(self.check.metrics() if self.check else {}),
        }

    def tags(self) -> dict[str, str]:
        ensemble = {ENSEMBLE_TAG: self.ensemble.describe()} if self.ensemble is not None else {}
        return {BEST_TRIAL_TAG: str(self.trial.number), **ensemble, **(self.check.tags() if self.check else {})}


def best_trial(study: Any, plan: SearchPlan | None = None) -> Any:
    """The study's best feasible trial (within the plan's latency budget on its deployment
    target; the best score on the Pareto front when latency was traded off); a clear error
    when no trial completed or none is feasible (`search.deployment.chosen_trial`)."""
    from automl_tasks.search.deployment import chosen_trial

    return chosen_trial(study, plan)


def fit_final(
    estimator_cls: type[Estimator],
    plan: SearchPlan,
    trial: Any,
    workdir: Path,
    ensemble: EnsembleChoice | None = None,
    *,
    all_rows: bool = True,
) -> FitResult:
    """Train `trial`'s configuration (or the `ensemble` of trials) as the final trainer
    (train+validation, scored on test).

    The tabular estimator is refit under the refit integrity check, which may fall back to
    the trial's own model (see families/refit_check), and a refit that passes is fitted
    again on all rows (`all_rows=False` leaves that to `FitResult.refitted_on_all_rows`); any other
    estimator runs once, with the plan's fidelity."""
    metric = Metric(plan.metric)
    if _is_tabular(estimator_cls):
        final = fit_final_model(
            EnsembleEstimator if ensemble is not None else estimator_cls,
            data=plan.data,
            config=ensemble.config if ensemble is not None else trial.params,
            # the score (a trade-off study has latency second); an ensemble's on the same rows
            validated=ensemble.score if ensemble is not None else float(trial.values[0]),
            metric=metric,
            workdir=workdir,
            all_rows=all_rows,
        )
        fit = FitResult(final.estimator, trial, metric, final.test_score, workdir, final, ensemble)
        source = final.source if ensemble is None else f"ensemble of {len(ensemble.trials)} trials, {final.source}"
    else:
        estimator = estimator_cls(
            run_epochs=plan.run_epochs,
            data=plan.data,
            is_trainer=True,
            model_args=trial.params,
            metric=metric,
            output_dir=workdir,
        )
        fit = FitResult(estimator, trial, metric, estimator.run().score, workdir)
        source = "refit"
    log.info(
        "final model (trial %d config, %s) %s on test split: %.5g", trial.number, source, metric.name, fit.test_score
    )
    return fit


def label_spec(plan: SearchPlan, fit: FitResult) -> LabelSpec | None:
    """The label spec data_preprocess (or drift_retrain) logged with the pipeline run, with the
    classes the model learned; inferred from the training target for runs made without one.
    None for estimators other than the tabular one (their labels are their own business)."""
    estimator = fit.estimator
    if not _is_tabular(estimator):
        return None
    spec = load_label_spec(plan.parent_run_id) or LabelSpec.infer(estimator.target_, plan.data.task_type)
    classes = getattr(estimator.pipeline_, "classes_", None)
    return spec.with_classes(spec.decode(classes)) if classes is not None else spec


# --- 2. export ---------------------------------------------------------------------------


def _test_features(estimator: Any) -> Any:
    return estimator.features_.iloc[estimator.test_rows]


def export_model(fit: FitResult, labels: LabelSpec | None = None) -> Deployment:
    """The runtime the version is served with.

    Tabular: ONNX with parity and latency on the test rows, or the native model when ONNX
    cannot serve it (deploy/runtime). Any other estimator: its own ONNX export."""
    estimator = fit.estimator
    if _is_tabular(estimator):
        return export_or_fallback(
            estimator.pipeline_, estimator.schema_, fit.workdir, _test_features(estimator), labels
        )
    onnx_path = Path(estimator.export_onnx(fit.workdir / "model.onnx"))
    return Deployment(ONNX_RUNTIME, onnx_path, None, {})


#: the target a version is placed on when its plan names none
DEFAULT_TARGET = "cloud-cpu"
#: test rows fed to the target's engine for its parity check and latency runs
TARGET_FEED_ROWS = 16


def place_on_target(ws: Workspace, plan: SearchPlan, fit: FitResult, deployment: Deployment) -> Deployment:
    """The exported version on the plan's deployment target (cloud-cpu when none was asked
    for): compiled on its engine, checked, measured, and served by it when it passes
    (`deploy.runtime.on_target`). Other estimators and native versions are left as they are."""
    if not _is_tabular(fit.estimator) or deployment.onnx_path is None:
        return deployment
    from automl_tasks.deploy.targets import get_target
    from automl_tasks.estimators.onnx.conversion import numeric_dtype, onnx_inputs

    estimator = fit.estimator
    target = get_target(plan.deploy_target or DEFAULT_TARGET, ws.home)
    rows = _test_features(estimator).head(TARGET_FEED_ROWS)
    return on_target(
        deployment, target, onnx_inputs(rows, estimator.schema_.graph_fed, numeric_dtype(estimator.pipeline_))
    )


# --- 3. trust ----------------------------------------------------------------------------


def trust_step(plan: SearchPlan, fit: FitResult, deployment: Deployment | None = None) -> Any:
    """The version's trust report (automl_tasks.trust), or None when the plan asks for none
    or the model has no trust adapter (said in the log and in the version's tags).

    A black-box attack queries the scored model's ONNX export: the `deployment`'s file when
    the scored model is the registered one, else one made in the fit's folder unless the
    registered model's export time says making it costs more than the attack saves."""
    if not plan.trust_report:
        log.info("trust report: not asked for (the form's trust_report is off)")
        return None
    from automl_tasks.trust.report import measure_trust
    from automl_tasks.trust.subject import subject_for

    same_model = deployment is not None and fit.scored is fit.estimator
    exported = deployment.onnx_path if same_model else None
    # a registered model whose export failed is not exported again for the attack
    workdir = None if same_model and exported is None else fit.workdir / "trust"
    export_s = deployment.export_s if deployment is not None and deployment.export_s else None
    try:
        subject = subject_for(fit.scored, fit.metric, workdir=workdir, onnx_path=exported, export_s=export_s)
    except NotImplementedError as exc:
        log.warning("trust report: not measured: %s", exc)
        return None
    return measure_trust(subject, seed=plan.seed)


def trust_tags(plan: SearchPlan, fit: FitResult, report: Any) -> dict[str, str]:
    """The report's version tags, or why there is no report."""
    from automl_tasks.core.tags import TRUST_DP_EPSILON_TAG, TRUST_SKIPPED_TAG
    from automl_tasks.trust.subject import dp_epsilon_of

    epsilon = dp_epsilon_of(fit.estimator)  # the registered model's own (a refit spends its own budget)
    privacy = {TRUST_DP_EPSILON_TAG: f"{epsilon:.4g}"} if epsilon is not None else {}
    if report is not None:
        return report.tags() | privacy
    why = "not asked for" if not plan.trust_report else f"no trust report for {type(fit.scored).__name__} models"
    return {TRUST_SKIPPED_TAG: why} | privacy


# --- 4. register -------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """The register step: the MLflow run that built the version, and the version."""

    run_id: str
    version: str


def feature_packages(estimator: Any) -> tuple[str, ...]:
    """The distributions a tabular model's feature pipeline computes its features with, beyond
    pandas, NumPy and scikit-learn (sentence embeddings: torch, transformers, their model)."""
    derive = estimator.schema_.derive
    return derive.packages() if derive is not None else ()


def _pip_requirements(distributions: Iterable[str]) -> list[str]:
    """The logged model's pip requirements, pinned as installed here: pandas, NumPy and
    `distributions` (its model's and its features' libraries; MLflow adds itself). Every
    model library for every version made an environment restored from a LightGBM model
    install torch and CatBoost."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in sorted({"pandas", "numpy", *distributions})]


def log_version(
    plan: SearchPlan,
    fit: FitResult,
    deployment: Deployment,
    *,
    labels: LabelSpec | None,
    tags: dict[str, str],
    metrics: dict[str, float],
    trust: Any = None,
) -> Registration:
    """Log the final model's MLflow run (child of the pipeline run) and register it in the family.

    Tabular: the scikit-learn pipeline (with signature and input example), its feature
    schema, label spec and ONNX file. Any other estimator: its ONNX model."""
    import mlflow

    with mlflow.start_run(
        experiment_id=plan.experiment_id,
        run_name="task_estimator",
        tags={"mlflow.parentRunId": plan.parent_run_id, KIND_TAG: "final_model", **tags},
    ) as run:
        mlflow.log_params(clean_params(fit.trial.params))
        mlflow.log_metrics(metrics)
        if _is_tabular(fit.estimator):
            info = _log_pipeline(plan, fit, deployment, labels)
        else:
            import onnx

            info = mlflow.onnx.log_model(
                onnx.load(str(deployment.onnx_path)), name="model", registered_model_name=plan.family
            )
        if deployment.target_metrics:  # MLflow 3 model metrics: on the logged model, and on the run
            mlflow.log_metrics(deployment.target_metrics, model_id=info.model_id)
        if trust is not None:
            _log_trust(trust, fit.workdir, info.model_id)
    return Registration(run.info.run_id, str(info.registered_model_version))


def _log_trust(report: Any, workdir: Path, model_id: str) -> None:
    """Inside the active run: the trust report as model metrics, its JSON and its plot."""
    import mlflow

    from automl_tasks.trust.report import PLOT_FILE, REPORT_FILE

    mlflow.log_metrics(report.metrics(), model_id=model_id)
    mlflow.log_text(report.to_json(), f"trust/{REPORT_FILE}")
    mlflow.log_artifact(str(report.plot(workdir / PLOT_FILE)), artifact_path="trust")


def _log_pipeline(plan: SearchPlan, fit: FitResult, deployment: Deployment, labels: LabelSpec | None) -> Any:
    """Inside the active run: the tabular model's artifacts and its scikit-learn model."""
    import mlflow
    from mlflow.models import infer_signature

    estimator, workdir = fit.estimator, fit.workdir
    (workdir / FEATURE_SCHEMA_FILE).write_text(json.dumps(estimator.schema_.to_dict()))
    mlflow.log_artifact(str(workdir / FEATURE_SCHEMA_FILE))
    if estimator.schema_.derive is not None:  # also inside the schema; here on its own, to read
        mlflow.log_text(estimator.schema_.derive.to_json(), FEATURE_PIPELINE_FILE)
    if labels is not None:
        (workdir / LABEL_SPEC_FILE).write_text(labels.to_json())
        mlflow.log_artifact(str(workdir / LABEL_SPEC_FILE))
    if deployment.onnx_path is not None:
        mlflow.log_artifact(str(deployment.onnx_path), artifact_path="onnx")
    sample = _test_features(estimator).head(5)
    return mlflow.sklearn.log_model(
        estimator.pipeline_,
        name="model",
        signature=infer_signature(sample, estimator.pipeline_.predict(sample)),
        input_example=sample,
        registered_model_name=plan.family,
        pip_requirements=_pip_requirements(
            (*_tabular.native_packages(estimator.feature_configs()), *feature_packages(estimator))
        ),
        serialization_format="cloudpickle",
    )


# --- 5. measure --------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyScores:
    """The measure step: the version and the trivial baseline on the family's evaluation data."""

    eval_uri: str = ""  # empty when the version was not measured (not a tabular model)
    eval_score: float | None = None  # None when the evaluation data lacks the model's columns
    baseline_score: float | None = None


def measure_on_family(ws: Workspace, client: Any, family: str, fit: FitResult) -> FamilyScores:
    """Score the version on the family's fixed evaluation data (created from this model's
    test rows by the family's first version), and the trivial baseline beside it.

    The score is the checked model's (`FitResult.scored`): a refit on all rows has seen the
    test rows, so its score there would flatter it against later challengers. Only tabular
    models are measured: the evaluation reads scikit-learn pipelines."""
    if not _is_tabular(fit.estimator):
        return FamilyScores()
    scored = fit.scored
    eval_uri, frame = _family_evaluation(ws, client, family, scored)
    return FamilyScores(
        eval_uri,
        _evaluation_score(scored, frame, fit.metric),
        _baseline_score(scored, frame, fit.metric),
    )


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


# --- 6. tag ------------------------------------------------------------------------------


def _search_comparison_tags(study, best) -> dict[str, str]:
    """The search's default configuration (the trial enqueued as `default`) against the best one."""
    from optuna.trial import TrialState

    defaults = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(ORIGIN_TAG) == "default"
    ]
    tags = {SEARCH_SCORE_TAG: f"{best.values[0]:.8g}"}
    if defaults:
        tags[DEFAULT_CONFIG_SCORE_TAG] = f"{defaults[0].values[0]:.8g}"
    is_default = best.user_attrs.get(ORIGIN_TAG) == "default" or any(t.params == best.params for t in defaults)
    tags[IS_DEFAULT_CONFIG_TAG] = str(is_default).lower()
    return tags


def _feature_pipeline_tag(estimator: Any) -> dict[str, str]:
    """The feature pipeline version the model was trained with (lineage: data -> features -> model)."""
    derive = getattr(getattr(estimator, "schema_", None), "derive", None)
    return {FEATURE_PIPELINE_TAG: derive.lineage_version} if derive is not None else {}


def lineage_tags(
    study: Any,
    plan: SearchPlan,
    fit: FitResult,
    *,
    dataset_version: str,
    dag_run_id: str,
    parent_version: str | None = None,
) -> dict[str, str]:
    """Where a version comes from: data, study, code, run, checks. The same keys for every
    estimator and pipeline; they go on the final model's MLflow run and on the version."""
    return {
        DATASET_URI_TAG: plan.dataset_uri,
        DATASET_VERSION_TAG: dataset_version,
        STUDY_TAG: study.study_name,
        SPACE_HASH_TAG: plan.space_hash,
        ALGORITHM_TAG: plan.algorithm,
        DAG_RUN_TAG: dag_run_id,
        CODE_VERSION_TAG: code_version(),
        METRIC_TAG: fit.metric.name,
        TARGET_TAG: plan.data.target,
        **({PARENT_VERSION_TAG: parent_version} if parent_version else {}),
        **_feature_pipeline_tag(fit.estimator),
        **fit.tags(),
        **_search_comparison_tags(study, fit.trial),
    }


def version_tags(
    lineage: dict[str, str],
    fit: FitResult,
    registration: Registration,
    deployment: Deployment,
    scores: FamilyScores,
    labels: LabelSpec | None,
) -> dict[str, str]:
    """Every tag of a new version: its lineage, test score, run, runtime and what was measured."""
    tags = {
        **lineage,
        f"test_{fit.metric.name}": f"{fit.test_score:.6g}",
        RUN_ID_TAG: registration.run_id,
        **deployment.tags(),
    }
    if scores.eval_uri:
        tags[EVAL_URI_TAG] = scores.eval_uri
    if "latency_single_ms" in deployment.latency:
        tags["latency_single_ms"] = f"{deployment.latency['latency_single_ms']:.6g}"
    if labels is not None:
        tags[LABEL_KIND_TAG] = labels.kind
    if _is_tabular(fit.estimator):  # what a native fallback's serving image must install
        tags[NATIVE_PACKAGES_TAG] = ",".join(_tabular.native_packages(fit.estimator.feature_configs()))
        if packages := feature_packages(fit.estimator):  # what serving it needs, whatever the runtime
            tags[FEATURE_PACKAGES_TAG] = ",".join(packages)
    if "onnx_size_kb" in deployment.metrics:
        tags["onnx_size_kb"] = f"{deployment.metrics['onnx_size_kb']:.6g}"
    if scores.eval_score is not None:
        tags[EVAL_SCORE_TAG] = f"{scores.eval_score:.8g}"
    if scores.baseline_score is not None:
        tags |= {BASELINE_SCORE_TAG: f"{scores.baseline_score:.8g}", BASELINE_URI_TAG: scores.eval_uri}
    return tags


def tag_version(client: Any, family: str, version: str, tags: dict[str, str]) -> None:
    """Write `tags` on the version, every value cut to `TAG_VALUE_LIMIT` characters."""
    for key, value in tags.items():
        client.set_model_version_tag(family, version, key, str(value)[:TAG_VALUE_LIMIT])


# --- 7. promote --------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """The promote step: the alias the version holds now, and what the user must know."""

    alias: str
    warning: str = ""


def promote_version(
    ws: Workspace, client: Any, family: str, version: str, *, auto_promote: bool, triggered_by: str, warning: str = ""
) -> Promotion:
    """The promotion gate at once (`auto_promote`), or the `challenger` alias for a later gate.

    `warning` (e.g. a failed refit check) is kept unless the gate leaves the family without
    a champion, which the user must hear first."""
    if auto_promote:
        decision = promote(ws, family, version, mode="auto", triggered_by=triggered_by)
        promoted = decision["promoted"]
        if not promoted and not decision.get("champion"):
            warning = (
                f"family {family} has NO champion: v{version} stays {CHALLENGER} because {decision['reason']}; "
                "nothing is served until a version passes the gate (or is promoted by hand)"
            )
    else:
        with family_lock(ws, family):
            client.set_registered_model_alias(family, CHALLENGER, version)
        promoted = False
        log.info("family %s v%s registered as %s; the promotion gate decides next", family, version, CHALLENGER)
    if warning:
        log.warning("%s", warning)
    return Promotion(CHAMPION if promoted else CHALLENGER, warning)


# --- the task estimator ------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """Steps 1-3 from a checked fit: the fit to register (its refit on all rows when there
    is one), its labels, its deployment, its trust report, and when the deployment was placed
    (`time.perf_counter()`): the end of the version's training time, which the trust report
    running beside it does not count in."""

    fit: FitResult
    labels: LabelSpec | None
    deployment: Deployment
    trust: Any
    placed_at: float


def deploy_beside_trust(ws: Workspace, plan: SearchPlan, fit: FitResult) -> Deployed:
    """The all-rows refit, its export and placement, and the trust report of a checked fit.

    The trust report measures the checked model, which the all-rows refit, its export and
    its placement leave alone, so when there is a refit the report runs in a thread beside
    them: the fits and ONNX Runtime's calls of either side release the GIL (a thread, not a
    process: LightGBM's OpenMP pool does not survive a fork). Without a refit the report
    queries the registered model's own export, so it follows it."""
    if not fit.awaits_all_rows_refit:
        labels, deployment, placed_at = _export_and_place(ws, plan, fit)
        return Deployed(fit, labels, deployment, trust_step(plan, fit, deployment), placed_at)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trust-report") as pool:
        trust = pool.submit(trust_step, plan, fit)
        fit = fit.refitted_on_all_rows()
        labels, deployment, placed_at = _export_and_place(ws, plan, fit)
        return Deployed(fit, labels, deployment, trust.result(), placed_at)


def _export_and_place(ws: Workspace, plan: SearchPlan, fit: FitResult) -> tuple[LabelSpec | None, Deployment, float]:
    """The registered model's labels, its export placed on the target, and when it was placed."""
    labels = label_spec(plan, fit)
    deployment = place_on_target(ws, plan, fit, export_model(fit, labels))
    return labels, deployment, time.perf_counter()


def train_and_register(
    ws: Workspace,
    study_name: str,
    *,
    dag_run_id: str,
    dataset_version: str,
    parent_version: str | None = None,
    auto_promote: bool = True,
    pipeline: str = "nocode_pipeline",
    estimator_cls: type[Estimator] | None = None,
) -> RegisteredModel:
    """Final-train the study's best configuration and register it in the family.

    `estimator_cls` is the tabular estimator unless given (the HPO pipeline passes its
    algorithm's). `parent_version` names the family version this model derives from (a
    retrained or distilled model); it is recorded as lineage. With `auto_promote` the
    promotion gate runs at once; without it (and for any estimator but the tabular one)
    the version becomes `challenger` and a later gate decides.
    """
    from automl_tasks.algorithms import require

    study, plan = open_study(ws, study_name)
    trial = best_trial(study, plan)
    require(ws, plan.algorithm, "deployable")  # an algorithm that only searches is never registered as a model
    estimator_cls = estimator_cls or TabularEstimator
    started = time.perf_counter()
    # members are built as the built-in estimator, so a subclass (an HPO algorithm) gets none
    ensemble = choose_ensemble(ws, study, plan, tabular=estimator_cls is _tabular.TabularEstimator)
    fit = fit_final(estimator_cls, plan, trial, ws.runs / study_name / "final", ensemble, all_rows=False)
    deployed = deploy_beside_trust(ws, plan, fit)
    fit, labels, deployment, trust = deployed.fit, deployed.labels, deployed.deployment, deployed.trust
    metrics = {**fit.metrics(train_seconds=deployed.placed_at - started), **deployment.metrics}
    lineage = lineage_tags(
        study, plan, fit, dataset_version=dataset_version, dag_run_id=dag_run_id, parent_version=parent_version
    )
    registration = log_version(plan, fit, deployment, labels=labels, tags=lineage, metrics=metrics, trust=trust)
    client = mlflow_client(ws)
    scores = measure_on_family(ws, client, plan.family, fit)
    tags = version_tags(lineage, fit, registration, deployment, scores, labels) | trust_tags(plan, fit, trust)
    tag_version(client, plan.family, registration.version, tags)
    promotion = promote_version(
        ws,
        client,
        plan.family,
        registration.version,
        auto_promote=auto_promote and _is_tabular(fit.estimator),
        triggered_by=f"{pipeline} run {dag_run_id}",
        warning=fit.warning,
    )
    drop_predictions(ws, study_name)
    return RegisteredModel(
        family=plan.family,
        version=registration.version,
        alias=promotion.alias,
        run_id=registration.run_id,
        model_uri=f"models:/{plan.family}/{registration.version}",
        test_score=fit.test_score,
        metric=fit.metric.name,
        onnx_parity_max_abs_diff=deployment.parity.max_abs_diff if deployment.parity else None,
        latency_single_ms=deployment.latency.get("latency_single_ms"),
        runtime=deployment.runtime,
        warning=promotion.warning,
    )
