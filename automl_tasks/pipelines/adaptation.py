"""The large-model adaptation pipeline (OmniForce §3.3, Figures 5 and 6), step by step.

data_preprocess -> smoke -> (baseline || search) -> adapt -> miniaturise -> compile ->
pareto_gate -> advisor. Three studies share one dataset version and split seed, as in
the HPO pipeline: `smoke` (one epoch of each chosen method on a small sample), `default`
(the baseline: a frozen encoder with a trained head) and `search` (the method is the root
of the space; epochs are the fidelity). The family holds the base model as its root
version and every model derived from it as a version naming its parent and derivation.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.adaptation.family import (
    FamilyVersion,
    RunContext,
    download_artifact,
    download_model,
    download_uri,
    register_base,
    register_version,
)
from automl_tasks.adaptation.pareto import Candidate, choose_champion, pareto_front, pareto_plot, table_markdown
from automl_tasks.adaptation.space import adaptation_space, method_default
from automl_tasks.adaptation.texts import TEXT_COLUMN, tokenise
from automl_tasks.adaptation.validation import text_profile, validate_texts
from automl_tasks.core.base_model import base_model_digest, load_tokenizer
from automl_tasks.core.errors import ConfigurationError, UserError
from automl_tasks.core.labels import load_label_spec, normalise_target
from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    ALGORITHM_TAG,
    BASE_DIGEST_TAG,
    BASELINE_SCORE_TAG,
    BASELINE_URI_TAG,
    CODE_VERSION_TAG,
    DAG_RUN_TAG,
    DATASET_URI_TAG,
    DATASET_VERSION_TAG,
    DEFAULT_CONFIG_SCORE_TAG,
    ERROR_TAG,
    EVAL_SCORE_TAG,
    EVAL_URI_TAG,
    IS_DEFAULT_CONFIG_TAG,
    KIND_TAG,
    METHODS_DROPPED_TAG,
    METRIC_TAG,
    MODALITY_TAG,
    ORIGIN_TAG,
    SEARCH_SCORE_TAG,
    STUDY_TAG,
    TARGET_TAG,
    TRUST_SKIPPED_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.data import DatasetStore, read_table
from automl_tasks.deploy.text_model import SERVING_ARTIFACT, ServingSpec, write_bundle
from automl_tasks.pipelines.intake import PipelineRunSpec, PreprocessResult, open_pipeline_run, source_path
from automl_tasks.pipelines.requests import AdaptationRequest

log = logging.getLogger(__name__)

#: the estimator every adaptation study runs
ADAPTER_ESTIMATOR = "automl_tasks.adaptation.estimator:TextAdapterEstimator"
#: the metric the pipeline optimises and the gate compares (text classification)
METRIC = "accuracy"
#: rows per class in the smoke sample: one tiny epoch of each method
SMOKE_ROWS_PER_CLASS = 16
SMOKE_MAX_SEQ_LEN = 32
#: label agreement the ONNX export of a candidate must keep with its torch model
PARITY_LABEL_SHARE = 0.99
#: the miniaturised students: half the layers; half the feed-forward neurons
DISTILL_LAYER_SHARE = 0.5
PRUNE_KEEP_SHARE = 0.5
#: a miniaturisation step faster than its parent by less than this is called out by the advisor
MIN_SPEEDUP = 1.1
#: full fine-tuning is searched only when one epoch of it on the whole table fits this share of the budget
FULL_BUDGET_SHARE = 0.25


# --- data_preprocess ----------------------------------------------------------------------


def prepare_adaptation(ws: Workspace, request: AdaptationRequest, *, dag_run_id: str) -> PreprocessResult:
    """Check the texts (Great Expectations), store them as a dataset version, open the MLflow run.

    The stored table has two columns, `text` and the label; nothing is written when a rule fails."""
    path = source_path(ws, request.dataset)
    frame = read_table(path)
    validate_texts(frame, source=str(path), text=request.text_column, target=request.target)
    if request.target == TEXT_COLUMN and request.text_column != TEXT_COLUMN:
        raise ConfigurationError(
            f"The 'target' parameter may not be named {TEXT_COLUMN!r} unless it is the text column; rename it"
        )
    table = frame[[request.text_column, request.target]].rename(columns={request.text_column: TEXT_COLUMN})
    task_type = "binary" if table[request.target].nunique() == 2 else "multiclass"
    table, labels = normalise_target(table, request.target, task_type, source=str(path))
    base = request.base_model_path()
    lengths = [len(ids) for ids in tokenise(load_tokenizer(base), table[TEXT_COLUMN].tolist(), 10_000)]
    profile = text_profile(table[TEXT_COLUMN], table[request.target], lengths)
    log.info(
        "%s: %d texts, %s; tokens p50 %.0f, p95 %.0f, max %.0f",
        path,
        len(table),
        profile["classes"],
        profile["tokens"]["p50"],
        profile["tokens"]["p95"],
        profile["tokens"]["max"],
    )
    stored = DatasetStore(ws.datasets, ws.dvc_remote).put(request.dataset_name, table)
    run = PipelineRunSpec(
        family=request.family_name,
        target=request.target,
        task_type=task_type,
        metric=METRIC,
        source=str(path),
        run_name=f"large_model_adaptation {dag_run_id}",
        dag_run_id=dag_run_id,
        params={
            "dataset": request.dataset,
            "text_column": request.text_column,
            "base_model": request.base_model,
            "methods": request.methods,
            "miniaturise": request.miniaturise,
            "deploy_target": request.deploy_target,
            "latency_budget_ms": request.latency_budget_ms,
            "n_trials": request.n_trials,
            "time_budget_s": request.time_budget_s,
        },
        labels=labels,
        tags={BASE_DIGEST_TAG: base_model_digest(base)},
        profile={**profile, "columns": 2},
    )
    pre = open_pipeline_run(ws, table, stored, run)
    client = mlflow_client(ws)
    client.set_tag(pre.parent_run_id, KIND_TAG, "large_model_adaptation")
    client.log_dict(pre.parent_run_id, profile, "data/text_profile.json")
    return pre


# --- the three studies ----------------------------------------------------------------------


def _smoke_sample(pre: PreprocessResult, folder: Path, seed: int) -> str:
    """A small stratified sample of the stored table for the smoke study (its own Parquet file)."""
    frame = pd.read_parquet(pre.dataset_path)
    sample = frame.groupby(pre.target, group_keys=False).sample(frac=1.0, random_state=seed)
    sample = sample.groupby(pre.target, group_keys=False).head(SMOKE_ROWS_PER_CLASS).reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "smoke_sample.parquet"
    sample.to_parquet(path, index=False)
    return str(path)


def plan_branch(
    ws: Workspace,
    request: AdaptationRequest,
    pre: PreprocessResult,
    branch: str,
    study_name: str,
    *,
    smoke_study: str | None = None,
) -> int:
    """Create the branch's study; return how many workers it gets. The search branch drops
    full fine-tuning when the smoke epochs (`smoke_study`) say the budget cannot afford it."""
    from automl_tasks.search import choose_strategy, start_search
    from automl_tasks.search.plan import build_plan
    from automl_tasks.search.storage import create_study
    from automl_tasks.search_space import load_search_space

    methods = request.method_list()
    if branch == "search" and smoke_study is not None:
        methods = affordable_methods(ws, methods, smoke_study, pre, request.time_budget_s)
    base = request.base_model_path()
    space_yaml = adaptation_space(methods if branch == "search" else (*methods, "head"), base)
    space = load_search_space(space_yaml)
    intake = pre
    epochs: int | None = request.max_epochs or None
    if branch == "smoke":
        intake = replace(pre, dataset_path=_smoke_sample(pre, ws.runs / study_name, request.seed))
        strategy, why, n_trials, workers, epochs = "random", "smoke test", len(methods), 1, 1
    elif branch == "default":
        strategy, why, n_trials, workers = "random", "baseline: frozen encoder, trained head", 1, 1
    else:
        n_trials, workers = request.n_trials, request.n_workers
        strategy, why = choose_strategy(request.strategy, space, n_trials, pre.profile(), fidelity=True)
    plan = build_plan(
        study_name,
        intake,
        metric=METRIC,
        space=space,
        space_yaml=space_yaml,
        n_trials=n_trials,
        n_workers=workers,
        time_budget_s=request.time_budget_s,
        seed=request.seed,
        strategy=strategy,
        algorithm=ADAPTER_ESTIMATOR,
        run_epochs=epochs,
    )
    if branch == "search":
        start_search(ws.optuna_uri, plan, space)
    else:
        study = create_study(ws.optuna_uri, plan)
        if not study.trials:
            if branch == "smoke":
                for method in methods:
                    config = method_default(space_yaml, method) | {"max_seq_len": SMOKE_MAX_SEQ_LEN, "batch_size": 8}
                    study.enqueue_trial(config, user_attrs={ORIGIN_TAG: f"smoke {method}"})
            else:
                study.enqueue_trial(method_default(space_yaml, "head"), user_attrs={ORIGIN_TAG: "default"})
    log.info(
        "%s branch: study %s, strategy %s (%s), %d trials, %d workers",
        branch,
        study_name,
        strategy,
        why,
        n_trials,
        workers,
    )
    return workers


def smoke_verdict(ws: Workspace, request: AdaptationRequest, pre: PreprocessResult, study_name: str) -> dict[str, Any]:
    """Stop the run, naming each failing method and its error, unless every chosen method
    completed its smoke epoch; refuse a time budget that cannot fit one epoch of any method."""
    from optuna.trial import TrialState

    from automl_tasks.search import open_study

    study, plan = open_study(ws, study_name)
    by_method = _smoke_trials(study)
    failures = [
        f"{method}: {trial.user_attrs.get(ERROR_TAG, trial.state.name)}"
        for method, trial in by_method.items()
        if trial.state != TrialState.COMPLETE or not math.isfinite(trial.value)
    ]
    missing = [m for m in request.method_list() if m not in by_method]
    if failures or missing:
        raise UserError(
            "smoke test: these adaptation methods cannot train on this data and base model: "
            + "; ".join(failures + [f"{m}: no smoke trial ran" for m in missing])
        )
    smoke_rows = len(pd.read_parquet(plan.data.path, columns=[plan.data.target]))
    seconds = {m: t.duration.total_seconds() for m, t in by_method.items() if t.duration is not None}
    refusal = budget_refusal(seconds, smoke_rows, pre.rows, request.time_budget_s)
    if refusal:
        raise UserError(refusal)
    return {"smoke_seconds": seconds, "epoch_estimate_s": epoch_estimates(seconds, smoke_rows, pre.rows)}


def _smoke_trials(study: Any) -> dict[str, Any]:
    """The smoke study's trial of each method (its first)."""
    by_method: dict[str, Any] = {}
    for trial in study.trials:
        by_method.setdefault(trial.params.get("method", "?"), trial)
    return by_method


def affordable_methods(
    ws: Workspace, methods: tuple[str, ...], smoke_study: str, pre: PreprocessResult, time_budget_s: float
) -> tuple[str, ...]:
    """`methods` without full fine-tuning when one epoch of it on the whole table (estimated from
    its smoke epoch) exceeds `FULL_BUDGET_SHARE` of the time budget: the issue's "full
    fine-tuning where the budget allows". The only method chosen is always kept."""
    from automl_tasks.search import open_study

    if "full" not in methods or len(methods) == 1:
        return methods
    study, plan = open_study(ws, smoke_study)
    trial = _smoke_trials(study).get("full")
    if trial is None or trial.duration is None:
        return methods
    smoke_rows = len(pd.read_parquet(plan.data.path, columns=[plan.data.target]))
    why = full_fine_tuning_refusal(trial.duration.total_seconds(), smoke_rows, pre.rows, time_budget_s)
    if why is None:
        return methods
    log.info(why)
    mlflow_client(ws).set_tag(pre.parent_run_id, METHODS_DROPPED_TAG, why)
    return tuple(m for m in methods if m != "full")


def full_fine_tuning_refusal(smoke_s: float, smoke_rows: int, rows: int, time_budget_s: float) -> str | None:
    """Why full fine-tuning does not fit the budget (one epoch on `rows`, estimated from its
    smoke epoch, over `FULL_BUDGET_SHARE` of it), or None."""
    epoch_s = epoch_estimates({"full": smoke_s}, smoke_rows, rows)["full"]
    if epoch_s <= FULL_BUDGET_SHARE * time_budget_s:
        return None
    return (
        f"full fine-tuning left out of the search: one epoch on {rows} texts is estimated at {epoch_s:.0f} s, "
        f"over {FULL_BUDGET_SHARE:.0%} of the {time_budget_s:g} s budget"
    )


def epoch_estimates(smoke_seconds: dict[str, float], smoke_rows: int, rows: int) -> dict[str, float]:
    """Seconds of one epoch on the whole table per method, from the smoke epoch on the sample,
    linear in the rows (an over-estimate: the smoke trial's fixed cost of loading the model scales too)."""
    return {m: s * rows / max(smoke_rows, 1) for m, s in smoke_seconds.items()}


def budget_refusal(smoke_seconds: dict[str, float], smoke_rows: int, rows: int, time_budget_s: float) -> str | None:
    """Why the time budget cannot fit one epoch (`epoch_estimates`) of even the cheapest method, or None."""
    estimate = epoch_estimates(smoke_seconds, smoke_rows, rows)
    if not estimate or min(estimate.values()) <= time_budget_s:
        return None
    return (
        f"time_budget_s={time_budget_s:g} is too small: one epoch of the cheapest method is estimated at "
        f"{min(estimate.values()):.0f} s on {rows} texts (smoke epochs on {smoke_rows} texts took "
        + ", ".join(f"{m} {s:.1f} s" for m, s in sorted(smoke_seconds.items()))
        + "). Raise the time budget or use a smaller base model."
    )


# --- adapt ----------------------------------------------------------------------------------


def _workdir(ws: Workspace, study_name: str) -> Path:
    return ws.runs / study_name / "adaptation"


def _eval_uri(pre: PreprocessResult, seed: int) -> str:
    """The family's evaluation data: the test split of this dataset version at this seed."""
    return f"{pre.dataset_uri}#test@seed{seed}"


def _onnx_parity(estimator: Any, onnx_path: Path, rows: np.ndarray) -> dict[str, float]:
    """Torch vs ONNX Runtime on the test texts: label agreement and max probability difference."""
    from automl_tasks.deploy.text_model import onnx_probabilities

    ids = [estimator.ids_[i] for i in rows]
    torch_proba = estimator.probabilities(ids)
    onnx_proba = onnx_probabilities(onnx_path, ids, estimator.pad_id_)
    agree = float(np.mean(torch_proba.argmax(1) == onnx_proba.argmax(1)))
    diff = float(np.abs(torch_proba - onnx_proba).max())
    if agree < PARITY_LABEL_SHARE:
        raise RuntimeError(
            f"ONNX export disagrees with torch on {1 - agree:.1%} of the test texts (max diff {diff:.3g})"
        )
    return {"onnx_parity_label_agreement": agree, "onnx_parity_max_abs_diff": diff}


def _majority_accuracy(test_target: np.ndarray) -> float:
    """The trivial baseline's accuracy on the test split: always the most frequent class."""
    return float(np.bincount(test_target).max() / len(test_target))


def _folder_kb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1024


def _lineage(pre: PreprocessResult, study: Any, dag_run_id: str, seed: int) -> dict[str, str]:
    from automl_tasks.core.code_version import code_version

    return {
        DATASET_URI_TAG: pre.dataset_uri,
        DATASET_VERSION_TAG: pre.dataset_version,
        STUDY_TAG: study.study_name,
        ALGORITHM_TAG: ADAPTER_ESTIMATOR,
        DAG_RUN_TAG: dag_run_id,
        CODE_VERSION_TAG: code_version(),
        METRIC_TAG: METRIC,
        TARGET_TAG: pre.target,
        EVAL_URI_TAG: _eval_uri(pre, seed),
        BASELINE_URI_TAG: _eval_uri(pre, seed),
        MODALITY_TAG: "text",
    }


def adapt(
    ws: Workspace, request: AdaptationRequest, pre: PreprocessResult, studies: dict[str, str], *, dag_run_id: str
) -> dict[str, Any]:
    """Register the base model as the family's root (once), retrain the search's best
    configuration on train+validation, check its ONNX export, register it as a child of the base."""
    from automl_tasks.adaptation.estimator import TextAdapterEstimator
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.search import open_study
    from automl_tasks.search.deployment import chosen_trial, trial_score

    context = RunContext(pre.family, pre.experiment_id, pre.parent_run_id)
    base = request.base_model_path()
    digest = base_model_digest(base)
    base_version = register_base(ws, context, base, digest)
    study, plan = open_study(ws, studies["search"])
    best = chosen_trial(study, plan)
    default_study, _ = open_study(ws, studies["default"])
    workdir = _workdir(ws, studies["search"])
    shutil.rmtree(workdir, ignore_errors=True)  # a retried task starts clean
    estimator = TextAdapterEstimator(
        run_epochs=plan.run_epochs,
        data=plan.data,
        is_trainer=True,
        model_args=best.params,
        metric=Metric(METRIC),
        output_dir=workdir / "adapted",
    )
    result = estimator.run()
    onnx_path = estimator.export_onnx(workdir / "adapted.onnx")
    _, test_rows = estimator.rows()
    parity = _onnx_parity(estimator, onnx_path, test_rows)
    majority = _majority_accuracy(estimator.target_[test_rows])
    labels = load_label_spec(pre.parent_run_id)
    spec = ServingSpec(estimator.classes_.tolist(), estimator.max_length, labels.to_json() if labels else "")
    bundle = write_bundle(workdir / SERVING_ARTIFACT, estimator.tokenizer_, spec)
    tags = {
        **_lineage(pre, study, dag_run_id, request.seed),
        BASE_DIGEST_TAG: digest,
        EVAL_SCORE_TAG: f"{result.score:.8g}",
        BASELINE_SCORE_TAG: f"{majority:.8g}",
        SEARCH_SCORE_TAG: f"{trial_score(best):.8g}",
        IS_DEFAULT_CONFIG_TAG: str(best.params.get("method") == "head").lower(),
    }
    if default_study.best_trials:
        tags[DEFAULT_CONFIG_SCORE_TAG] = f"{default_study.best_value:.8g}"
    metrics = {
        **{k: v for k, v in result.metrics.items() if k != METRIC},
        "test_accuracy": result.score,
        "artifact_size_kb": _folder_kb(workdir / "adapted"),
        "onnx_size_kb": _folder_kb(onnx_path),
        **parity,
    }
    extras = {SERVING_ARTIFACT: bundle}
    trust = _trust_report(request, estimator, workdir / "trust")
    if trust is not None:
        metrics |= trust.metrics()
        tags |= trust.tags()
        extras["trust"] = workdir / "trust"
    else:
        tags[TRUST_SKIPPED_TAG] = "not asked for"
    adapted = register_version(
        ws,
        context,
        source=workdir / "adapted",
        derivation=estimator.method,
        parent_version=base_version,
        onnx=onnx_path,
        metrics=metrics,
        tags=tags,
        params=best.params,
        extras=extras,
        label_spec=spec.label_spec,
    )
    log.info(
        "adapted with %s: test accuracy %.4f, %d trainable parameters (%.3f%%), artifact %.0f kB",
        estimator.method,
        result.score,
        metrics["trainable_parameters"],
        100 * metrics["trainable_share"],
        metrics["artifact_size_kb"],
    )
    return {"base_version": base_version, "adapted": adapted.to_dict()}


def _trust_report(request: AdaptationRequest, estimator: Any, folder: Path) -> Any:
    """The adapted model's trust report (token noise, PGD on token embeddings, membership inference),
    written to `folder` as JSON and a plot; None when the form turned it off. Measured for
    the adapted version; its miniaturised students are not measured."""
    if not request.trust_report:
        return None
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.trust.report import PLOT_FILE, REPORT_FILE, measure_trust
    from automl_tasks.trust.subject import text_subject

    report = measure_trust(text_subject(estimator, Metric(METRIC)), seed=request.seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).write_text(report.to_json())
    report.plot(folder / PLOT_FILE)
    return report


# --- miniaturise --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registrar:
    """Registers the derived versions of one teacher with the same lineage, serving bundle and
    label spec; each version's evaluation score is its test accuracy."""

    ws: Workspace
    context: RunContext
    lineage: dict[str, str]
    majority: float  # the trivial baseline's accuracy on the test split
    extras: dict[str, Path]
    label_spec: str

    def register(
        self, *, source: Path, derivation: str, parent: str, onnx: Path, metrics: dict[str, float]
    ) -> FamilyVersion:
        tags = {
            **self.lineage,
            EVAL_SCORE_TAG: f"{metrics['test_accuracy']:.8g}",
            BASELINE_SCORE_TAG: f"{self.majority:.8g}",
        }
        return register_version(
            self.ws,
            self.context,
            source=source,
            derivation=derivation,
            parent_version=parent,
            onnx=onnx,
            metrics=metrics,
            extras=self.extras,
            label_spec=self.label_spec,
            tags=tags,
        )


def miniaturise(
    ws: Workspace,
    request: AdaptationRequest,
    pre: PreprocessResult,
    studies: dict[str, str],
    adapted: dict[str, Any],
    *,
    dag_run_id: str,
) -> list[dict[str, Any]]:
    """Derive smaller models from the adapted teacher (each a new version naming its parent):
    a distilled student, a pruned one, and an int8 version of the teacher and of each student."""
    from automl_tasks.adaptation.artifacts import load_adapted
    from automl_tasks.adaptation.estimator import TextAdapterEstimator
    from automl_tasks.adaptation.methods import deployable
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.search import open_study

    steps = request.step_list()
    if not steps:
        log.info("miniaturise: no step chosen")
        return []
    study, plan = open_study(ws, studies["search"])
    teacher_version = FamilyVersion(**adapted)
    workdir = _workdir(ws, studies["search"]) / "miniaturise"
    shutil.rmtree(workdir, ignore_errors=True)
    trained, meta = load_adapted(download_model(ws, teacher_version.run_id, workdir / "teacher"))
    data = TextAdapterEstimator(
        run_epochs=None, data=plan.data, is_trainer=True, model_args=meta.config, metric=Metric(METRIC)
    )
    data.load_data()
    _, test_rows = data.rows()
    labels = load_label_spec(pre.parent_run_id)
    registrar = _Registrar(
        ws,
        RunContext(pre.family, pre.experiment_id, pre.parent_run_id),
        _lineage(pre, study, dag_run_id, request.seed),
        _majority_accuracy(data.target_[test_rows]),
        {SERVING_ARTIFACT: download_artifact(ws, teacher_version.run_id, SERVING_ARTIFACT, workdir / "teacher")},
        labels.to_json() if labels else "",
    )
    students = _students(
        deployable(trained, meta.method), meta, data, steps, teacher_version, registrar, workdir, request.seed
    )
    made = [version for version, _ in students]
    if "quantise" in steps:
        fp32 = [(teacher_version, None), *students]
        made += _quantised(fp32, data, registrar, workdir)
    for version in made:
        log.info(
            "miniaturise: v%s %s of v%s: test accuracy %.4f (teacher %.4f)",
            version.version,
            version.derivation,
            version.parent_version,
            version.metrics["test_accuracy"],
            teacher_version.metrics.get("test_accuracy", float("nan")),
        )
    return [v.to_dict() for v in made]


def _students(
    teacher: Any,
    meta: Any,
    data: Any,
    steps: tuple[str, ...],
    teacher_version: FamilyVersion,
    registrar: _Registrar,
    workdir: Path,
    seed: int,
) -> list[tuple[FamilyVersion, Path]]:
    """The distilled and pruned students, trained from the teacher's outputs and registered;
    with their ONNX exports."""
    from automl_tasks.adaptation.artifacts import AdaptedMeta, save_student
    from automl_tasks.adaptation.inference import export_classifier
    from automl_tasks.adaptation.miniaturise import (
        StudentTraining,
        distil,
        fewer_layers,
        layer_stack,
        logits,
        pruned_ffn,
        without_prompt,
    )

    fit_rows, test_rows = data.rows()
    teacher_logits = logits(teacher, data.ids_, np.arange(len(data.ids_)), data.pad_id_)
    teacher_accuracy = teacher_version.metrics.get("test_accuracy", float("nan"))
    training = StudentTraining(epochs=max(2, int(meta.config.get("epochs", 3))), seed=seed)
    origin = without_prompt(teacher)  # students start from the teacher's weights, are taught by its outputs
    plans = []
    if "distill" in steps:
        holder, name = layer_stack(origin.encoder)
        keep = max(1, round(len(getattr(holder, name)) * DISTILL_LAYER_SHARE))
        plans.append(("distill", fewer_layers(origin, keep), {"student_layers": keep}))
    if "prune" in steps:
        plans.append(("prune", pruned_ffn(origin, PRUNE_KEEP_SHARE), {"ffn_keep_share": PRUNE_KEEP_SHARE}))
    made = []
    for derivation, student, settings in plans:
        seconds = distil(student, data.ids_, data.target_, teacher_logits, fit_rows, data.pad_id_, training)
        test_logits = logits(student, data.ids_, test_rows, data.pad_id_)
        accuracy = float(np.mean(test_logits.argmax(1) == data.target_[test_rows]))
        student_meta = AdaptedMeta(
            derivation, {**meta.config, **settings}, meta.classes, meta.max_length, "", meta.base_digest
        )
        folder = save_student(student, student_meta, workdir / derivation, data.tokenizer_)
        onnx_path = export_classifier(student, workdir / f"{derivation}.onnx")
        metrics = {
            "test_accuracy": accuracy,
            "accuracy_retention": accuracy / teacher_accuracy if teacher_accuracy else float("nan"),
            "teacher_agreement": float(np.mean(test_logits.argmax(1) == teacher_logits[test_rows].argmax(1))),
            "parameters": float(sum(p.numel() for p in student.parameters())),
            "train_seconds": seconds,
            "artifact_size_kb": _folder_kb(folder),
            "onnx_size_kb": _folder_kb(onnx_path),
            **{k: float(v) for k, v in settings.items()},
        }
        version = registrar.register(
            source=folder, derivation=derivation, parent=teacher_version.version, onnx=onnx_path, metrics=metrics
        )
        made.append((version, onnx_path))
    return made


def _quantised(
    fp32: list[tuple[FamilyVersion, Path | None]], data: Any, registrar: _Registrar, workdir: Path
) -> list[FamilyVersion]:
    """An int8 version of each fp32 candidate (its ONNX file, or fetched from its run), scored on the test split."""
    from automl_tasks.adaptation.quantise import quantise_dynamic
    from automl_tasks.deploy.text_model import onnx_probabilities

    _, test_rows = data.rows()
    test_ids = [data.ids_[i] for i in test_rows]
    made = []
    for parent, local in fp32:
        source = local or download_uri(registrar.ws, parent.onnx_uri, workdir / f"v{parent.version}")
        int8 = quantise_dynamic(source, workdir / f"v{parent.version}.int8.onnx")
        proba = onnx_probabilities(int8, test_ids, data.pad_id_)
        accuracy = float(np.mean(proba.argmax(1) == data.target_[test_rows]))
        parent_accuracy = parent.metrics.get("test_accuracy", float("nan"))
        metrics = {
            "test_accuracy": accuracy,
            "accuracy_retention": accuracy / parent_accuracy if parent_accuracy else float("nan"),
            "onnx_size_kb": _folder_kb(int8),
            "artifact_size_kb": _folder_kb(int8),
        }
        made.append(
            registrar.register(source=int8, derivation="quantise", parent=parent.version, onnx=int8, metrics=metrics)
        )
    return made


# --- compile ------------------------------------------------------------------------------


def _timing_feed(pre: PreprocessResult, base: Path, max_length: int, count: int = 8) -> dict[str, np.ndarray]:
    """Feed for parity and timing: `count` texts of the median token length (so batch-1
    latency is that of a typical request), padded to their longest."""
    from automl_tasks.adaptation.inference import onnx_feed

    frame = pd.read_parquet(pre.dataset_path, columns=[TEXT_COLUMN])
    tokenizer = load_tokenizer(base)
    ids = tokenise(tokenizer, frame[TEXT_COLUMN].tolist(), max_length)
    lengths = np.array([len(i) for i in ids])
    nearest = np.argsort(np.abs(lengths - np.median(lengths)), kind="stable")[:count]
    return onnx_feed([ids[i] for i in nearest], int(tokenizer.pad_token_id or 0))


def compile_candidates(
    ws: Workspace, request: AdaptationRequest, pre: PreprocessResult, versions: list[dict[str, Any]], study_name: str
) -> list[dict[str, Any]]:
    """Compile every candidate on every engine available here through the deployment seam,
    with the target's options: parity-checked against ONNX Runtime and timed at batch 1 and
    32. The target's engine (for an `auto` target, the fastest deployable one) decides the
    candidate's latency; every engine's figures are logged (`compile/engines.json`)."""
    from automl_tasks.deploy.backends import evaluate
    from automl_tasks.deploy.targets import AUTO_ENGINE, candidate_engines, fastest_deployable, get_target
    from automl_tasks.search import open_study
    from automl_tasks.search.deployment import chosen_trial

    study, plan = open_study(ws, study_name)
    max_length = int(chosen_trial(study, plan).params.get("max_seq_len", 128))
    target = get_target(request.deploy_target, ws.home)
    engines = candidate_engines(target.options)
    if target.engine != AUTO_ENGINE and target.engine not in engines:
        engines.append(target.engine)  # measured, so its verdict says why it cannot serve
    folder = _workdir(ws, study_name) / "compile"
    feed = _timing_feed(pre, request.base_model_path(), max_length)
    results, table = [], []
    for payload in versions:
        version = FamilyVersion(**payload)
        onnx_path = download_uri(ws, version.onnx_uri, folder / f"v{version.version}")
        by_engine = {
            engine: evaluate(engine, onnx_path, feed, options=target.options, measure=True, warmup=3, repeats=20)
            for engine in engines
        }
        chosen = (
            fastest_deployable(list(by_engine.values())) if target.engine == AUTO_ENGINE else by_engine[target.engine]
        )
        latency = _record_compile(ws, pre.family, version, target, chosen, by_engine)
        table += [_engine_row(version, engine, result) for engine, result in by_engine.items()]
        results.append(
            Candidate(
                version=version.version,
                derivation=version.derivation,
                parent_version=version.parent_version,
                accuracy=version.metrics.get("test_accuracy", float("nan")),
                latency_ms=latency,
                size_kb=version.metrics["onnx_size_kb"],  # every candidate's registration measured it
                deployable=chosen.verdict.deployable,
                verdict=str(chosen.verdict),
            ).to_dict()
        )
    mlflow_client(ws).log_dict(pre.parent_run_id, {"target": target.name, "engines": table}, "compile/engines.json")
    return results


def _record_compile(
    ws: Workspace, family: str, version: FamilyVersion, target: Any, chosen: Any, by_engine: dict
) -> float:
    """Log a candidate's measurements on its run and version; return its p50 batch-1 ms on the target."""
    from automl_tasks.deploy.targets import target_metrics

    client = mlflow_client(ws)
    metrics, tags = target_metrics(target, chosen)
    for engine, result in by_engine.items():
        if result.measurement is not None:
            metrics |= {f"engine_{engine}_{k}": v for k, v in result.measurement.as_metrics().items()}
    for key, value in metrics.items():
        client.log_metric(version.run_id, key, value)
    for key, value in tags.items():
        client.set_model_version_tag(family, version.version, key, value)
    latency = metrics.get("deploy_latency_p50_ms_b1", float("inf"))
    if math.isfinite(latency):
        client.set_model_version_tag(family, version.version, "latency_single_ms", f"{latency:.6g}")
    log.info(
        "compile: v%s (%s): %s; on %s %.3g ms at batch 1",
        version.version,
        version.derivation,
        "; ".join(str(r.verdict) for r in by_engine.values()),
        target.name,
        latency,
    )
    return latency


def _engine_row(version: FamilyVersion, engine: str, result: Any) -> dict[str, Any]:
    latency = result.measurement.latency if result.measurement is not None else {}
    return {
        "version": version.version,
        "derivation": version.derivation,
        "engine": engine,
        "verdict": str(result.verdict),
        "compile_seconds": result.compile_seconds,
        **{f"p50_ms_b{batch}": stats.p50_ms for batch, stats in latency.items()},
    }


# --- pareto_gate --------------------------------------------------------------------------


def pareto_gate(
    ws: Workspace,
    request: AdaptationRequest,
    pre: PreprocessResult,
    candidates: list[dict[str, Any]],
    study_name: str,
    *,
    dag_run_id: str,
) -> dict[str, Any]:
    """Table and plot of accuracy x latency x size; the champion through the family's promotion gate."""
    from automl_tasks.families.promotion import promote

    rows = [Candidate(**c) for c in candidates]
    front = pareto_front(rows)
    champion, why = choose_champion(rows, request.latency_budget_ms)
    folder = _workdir(ws, study_name) / "pareto"
    plot = pareto_plot(rows, front, champion, folder / "pareto.html")
    table = table_markdown(rows, front, champion)
    (folder / "pareto.md").write_text(f"# Candidates on {request.deploy_target}\n\n{table}\n{why}\n")
    client = mlflow_client(ws)
    client.log_artifact(pre.parent_run_id, str(plot), "pareto")
    client.log_artifact(pre.parent_run_id, str(folder / "pareto.md"), "pareto")
    client.log_dict(
        pre.parent_run_id, {"candidates": candidates, "front": [c.version for c in front]}, "pareto/candidates.json"
    )
    decision: dict[str, Any] = {"promoted": False, "reason": why, "champion": None}
    if champion is None:
        log.warning("pareto_gate: nothing promoted: %s", why)
    else:
        decision = promote(
            ws, pre.family, champion.version, mode="auto", triggered_by=f"large_model_adaptation run {dag_run_id}"
        )
        log.info("pareto_gate: %s; promotion gate: %s", why, decision["reason"])
    return {
        "chosen": champion.to_dict() if champion else None,
        "why": why,
        "front": [c.version for c in front],
        "promotion": decision,
    }


# --- advisor ------------------------------------------------------------------------------


def advise_adaptation(
    ws: Workspace,
    pre: PreprocessResult,
    studies: dict[str, str],
    candidates: list[dict[str, Any]],
    gate: dict[str, Any],
) -> dict[str, Any]:
    """Which method won and by how much (best validated score per method), what each
    miniaturisation step cost in accuracy and gained in latency, and what to try next."""
    from optuna.trial import TrialState

    from automl_tasks.pipelines.advisor import advise
    from automl_tasks.search import open_study

    study, _ = open_study(ws, studies["search"])
    per_method: dict[str, float] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        method = trial.params.get("method", "?")
        per_method[method] = max(per_method.get(method, -math.inf), float(trial.values[0]))
    default_study, _ = open_study(ws, studies["default"])
    baseline = default_study.best_value if default_study.best_trials else None
    by_version = {c["version"]: c for c in candidates}
    steps = []
    for c in candidates:
        parent = by_version.get(c["parent_version"])
        if parent is None:
            continue
        speedup = parent["latency_ms"] / c["latency_ms"] if c["latency_ms"] and math.isfinite(c["latency_ms"]) else None
        steps.append(
            {
                "version": c["version"],
                "derivation": c["derivation"],
                "parent_version": c["parent_version"],
                "accuracy_cost": parent["accuracy"] - c["accuracy"],
                "speedup": speedup,
                "size_ratio": c["size_kb"] / parent["size_kb"] if parent["size_kb"] else None,
            }
        )
    suggestions = []
    winner = max(per_method, key=per_method.get) if per_method else None
    if winner and baseline is not None and per_method[winner] <= baseline:
        suggestions.append(
            f"no adaptation method beat the frozen-encoder baseline ({baseline:.4f}) on the validation split; "
            "more epochs or a larger trial budget may help, or the base model already fits the task"
        )
    for step in steps:
        if step["speedup"] is not None and step["speedup"] < MIN_SPEEDUP:
            cost = step["accuracy_cost"]
            suggestions.append(
                f"{step['derivation']} (v{step['version']}) is not faster than its parent v{step['parent_version']} "
                f"on the target (x{step['speedup']:.2f})"
                + (f" and costs {cost:.4f} accuracy: drop this step for this target" if cost > 0 else "")
            )
    dropped = mlflow_client(ws).get_run(pre.parent_run_id).data.tags.get(METHODS_DROPPED_TAG)
    if dropped:
        suggestions.append(f"{dropped}: raise time_budget_s to compare it with the parameter-efficient methods")
    if gate.get("chosen") is None:
        suggestions.append(
            f"nothing was promoted: {gate['why']}; relax the latency budget or add miniaturisation steps"
        )
    report = {
        "best_validated_score_per_method": per_method,
        "winning_method": winner,
        "baseline_head_score": baseline,
        "miniaturisation": steps,
        "champion": gate.get("chosen"),
        "suggestions": suggestions,
    }
    try:
        report["search_advice"] = advise(ws, studies["search"], pre.profile())
    except Exception as exc:  # importance needs enough trials; the adaptation report stands alone
        log.warning("search advice unavailable: %s", exc)
    mlflow_client(ws).log_dict(pre.parent_run_id, report, "advisor/adaptation.json")
    for line in suggestions:
        log.info("advisor: %s", line)
    return report


# --- the whole pipeline in one process ----------------------------------------------------


def run_inline(ws: Workspace, request: AdaptationRequest, *, dag_run_id: str) -> dict[str, Any]:
    """Every step of the DAG in this process, in the DAG's order, the search workers one after
    another: for tests, benchmarks and notebooks that want an adapted family without Airflow."""
    from automl_tasks.pipelines.hpo import study_names
    from automl_tasks.pipelines.intake import finish_parent_run
    from automl_tasks.search import run_worker
    from automl_tasks.search.trial_runs import record_trials

    pre = prepare_adaptation(ws, request, dag_run_id=dag_run_id)
    studies = study_names(f"{pre.family}-{dag_run_id}")
    for branch in ("smoke", "default", "search"):
        smoke = studies["smoke"] if branch == "search" else None
        for worker in range(plan_branch(ws, request, pre, branch, studies[branch], smoke_study=smoke)):
            run_worker(ws, studies[branch], worker)
        record_trials(ws, studies[branch])  # what the job estimator does in the DAG
        if branch == "smoke":
            smoke_verdict(ws, request, pre, studies["smoke"])
    adapted = adapt(ws, request, pre, studies, dag_run_id=dag_run_id)
    derived = miniaturise(ws, request, pre, studies, adapted["adapted"], dag_run_id=dag_run_id)
    candidates = compile_candidates(ws, request, pre, [adapted["adapted"], *derived], studies["search"])
    gate = pareto_gate(ws, request, pre, candidates, studies["search"], dag_run_id=dag_run_id)
    advice = advise_adaptation(ws, pre, studies, candidates, gate)
    finish_parent_run(ws, pre.parent_run_id)
    return {"family": pre.family, "adapted": adapted, "derived": derived, "gate": gate, "advice": advice}
