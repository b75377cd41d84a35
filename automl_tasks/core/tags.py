"""Every `loopml.*` key in one place, like `mlflow.utils.mlflow_tags`.

Runs, model versions and Optuna trials/studies are tagged with these keys; people query
MLflow by them, so a key never changes once released.
"""

from __future__ import annotations

# MLflow run tags
KIND_TAG = "loopml.kind"  #: what an MLflow run is: pipeline, trial, final_model, drift_check, ...
DAG_RUN_TAG = "loopml.dag_run_id"  #: the Airflow DAG run behind an MLflow run
ERROR_TAG = "loopml.error"  #: why a run (or a trial, as a user attribute) failed
DATASET_URI_TAG = "loopml.dataset_uri"  #: the DVC-versioned table a run used
DATASET_VERSION_TAG = "loopml.dataset_version"  #: the dataset version id
TARGET_TAG = "loopml.target"  #: the target column
METRIC_TAG = "loopml.metric"  #: the metric the search optimises
SOURCE_TAG = "loopml.source"  #: where a table or algorithm came from
CURRENT_SOURCE_TAG = "loopml.current_source"  #: where a drift check's current window came from
STUDY_TAG = "loopml.study"  #: the Optuna study of a search
PARENT_STUDY_TAG = "loopml.parent_study"  #: the study a retrain search was warm-started from
SPACE_HASH_TAG = "loopml.space_hash"  #: hash of the search space
#: the feature pipeline version (content hash) a pipeline run fitted or reused, and a model version uses
FEATURE_PIPELINE_TAG = "loopml.feature_pipeline"
SPACE_VERSION_TAG = "loopml.space_version"  #: the search-space version a pipeline run was asked to search (its hash)
SPACE_PARENT_TAG = "loopml.space_parent"  #: the version a search-space version was derived from
SPACE_CHANGE_TAG = "loopml.space_change"  #: what changed from the parent search-space version, in words
ACCEPTED_BY_TAG = "loopml.accepted_by"  #: who accepted the suggestion (or made the edit) behind a space version
SOURCE_RUN_TAG = "loopml.source_run"  #: the pipeline run whose advice a space version came from
ADVICE_STATUS_PREFIX = "loopml.advice."  #: + "<index>": accepted or dismissed, by whom (pipeline run tags)
STRATEGY_TAG = "loopml.strategy"  #: the search strategy used
STRATEGY_REASON_TAG = "loopml.strategy_reason"  #: why the formatter chose that strategy
SEARCH_WORTH_IT_TAG = "loopml.search_worth_it"  #: whether the search beat the default configuration
BEST_TRIAL_TAG = "loopml.best_trial"  #: the best trial's number
TRIAL_NUMBER_TAG = "loopml.trial_number"  #: a trial run's trial number
TRIAL_STATE_TAG = "loopml.trial_state"  #: a trial run's final state
WORKER_TAG = "loopml.worker"  #: the worker that ran a trial
TIMED_OUT_AFTER_TAG = "loopml.timed_out_after_s"  #: a trial stopped by its time limit
ALGORITHM_TAG = "loopml.algorithm"  #: the algorithm of a registration or search
REFERENCE_URI_TAG = "loopml.reference_uri"  #: a drift check's reference window
WINDOW_URI_TAG = "loopml.window_uri"  #: a retrain's feedback window
RETRAIN_REASON_TAG = "loopml.retrain_reason"  #: why a retrain was triggered
INPUT_DATASET_URI_TAG = "loopml.input_dataset_uri"  #: batch inference input
OUTPUT_DATASET_URI_TAG = "loopml.output_dataset_uri"  #: batch inference output
MODEL_VERSION_TAG = "loopml.model_version"  #: the model version a run used
CHAMPION_VERSION_TAG = "loopml.champion_version"  #: the champion a drift check compared with
DRIFT_STATUS_TAG = "loopml.drift.status"  #: a drift check's verdict

# model version / registered model tags
DRIFT_SETTING_PREFIX = "loopml.drift."  #: prefix of the per-family drift settings on a registered model
LAST_CHECK_TAG = (
    "loopml.drift.last_check"  #: when the family's last drift check ran (epoch seconds; state, not a setting)
)
LAST_RESULT_TAG = (
    "loopml.drift.last_result"  #: the family's last drift verdict and its MLflow run (state, not a setting)
)
RUN_ID_TAG = "loopml.run_id"  #: the MLflow run that built the version
FAMILY_TAG = "loopml.family"  #: the model family
ORIGIN_TAG = (
    "loopml.origin"  #: where a version or an enqueued trial came from (default, grid, warm_start, portfolio, ...)
)
PARENT_VERSION_TAG = "loopml.parent_version"  #: the version a retrain started from
LABELLED_URI_TAG = "loopml.labelled_uri"  #: a labelling batch's labelled dataset version (absent until labelled)
LABELLED_BY_TAG = "loopml.labelled_by"  #: who labelled a labelling batch
LABELLING_STRATEGY_TAG = "loopml.labelling.strategy"  #: how a labelling batch was chosen (strategy, pool)
METHODS_DROPPED_TAG = "loopml.methods_dropped"  #: why an adaptation run left a method out of its search
DERIVATION_TAG = "loopml.derivation"  #: how a version was made from its parent: base, head, full, lora, prompt, adapter, distill, prune, quantise
BASE_DIGEST_TAG = "loopml.base_digest"  #: content hash of the base model a text version adapts
MODALITY_TAG = "loopml.modality"  #: what a version reads: absent for tables, "text" for text families
ONNX_URI_TAG = "loopml.onnx_uri"  #: the artifact URI of a version's ONNX model, when its source is not ONNX
CODE_VERSION_TAG = "loopml.code_version"  #: the loopml commit that built a version
RUNTIME_TAG = "loopml.runtime"  #: the runtime that serves the version: onnxruntime or native
NATIVE_PACKAGES_TAG = "loopml.native_packages"  #: what a tabular model predicts with natively (distributions)
#: what computing a tabular version's features needs, whatever its runtime (absent: nothing beyond the base)
FEATURE_PACKAGES_TAG = "loopml.feature_packages"
EXPORT_FALLBACK_TAG = "loopml.export_fallback_reason"  #: why a version is served natively (absent when ONNX serves it)
LABEL_KIND_TAG = "loopml.label_kind"  #: how labels are encoded (see core.labels)
HISTORY_TAG = "loopml.champion_history"  #: the family's champion history (registered model tag)
EVAL_SCORE_TAG = "loopml.eval_score"  #: score on the family's evaluation set
EVAL_URI_TAG = "loopml.eval_dataset_uri"  #: the evaluation set
EVAL_HISTORY_TAG = "loopml.eval_history"  #: scores of earlier evaluations
EVAL_CANDIDATE_URI_TAG = "loopml.eval_candidate_uri"  #: the candidate's evaluation set in a retrain
PREVIOUS_EVAL_SCORE_TAG = "loopml.previous_eval_score"  #: the champion's score before a retrain
BASELINE_SCORE_TAG = "loopml.baseline_score"  #: the baseline's score
BASELINE_URI_TAG = "loopml.baseline_eval_uri"  #: the baseline's evaluation set
SEARCH_SCORE_TAG = "loopml.search_score"  #: the validation score the search reported
DEFAULT_CONFIG_SCORE_TAG = "loopml.default_config_score"  #: the default configuration's score
IS_DEFAULT_CONFIG_TAG = "loopml.is_default_config"  #: whether the winner is the default configuration
ROLLED_BACK_TAG = "loopml.rolled_back"  #: set on a version that was rolled back
PROMOTION_PREFIX = "loopml.promotion."  #: prefix of the promotion gate's tags (decision, reason, ...)
PROMOTION_REASON_TAG = "loopml.promotion.reason"  #: why the promotion gate decided
PROMOTION_DECISION_TAG = "loopml.promotion.decision"  #: the promotion gate's decision
REFIT_CHECK_TAG = "loopml.refit_check"  #: passed | fallback | failed
REFIT_CHECK_REASON_TAG = "loopml.refit_check.reason"  #: why the refit check fell back or failed
REFIT_CHECK_MODEL_TAG = "loopml.refit_check.model"  #: refit | trial_model
FIT_ROWS_TAG = "loopml.fit_rows"  #: rows the registered model was fitted on: all | train+valid | train
ENSEMBLE_TAG = "loopml.ensemble"  #: an ensemble version's members: "trial N: weight, ..." (absent: one model)

DEPLOY_ENGINE_TAG = "loopml.deploy.engine"  #: the deployment engine a version was checked on
DEPLOY_TARGET_TAG = "loopml.deploy.target"  #: the deployment target (workspace YAML name)
DEPLOY_VERDICT_TAG = "loopml.deploy.verdict"  #: ok / parity failed: ... / failed: ... / unavailable: ...

# Optuna trial user attributes (ERROR_TAG, ORIGIN_TAG, WORKER_TAG and DEPLOY_ENGINE_TAG are trial attributes too)
OVER_BUDGET_ATTR = "loopml.over_budget"  #: a trial reserved after the budget filled, given back unevaluated
FORBIDDEN_ATTR = "loopml.forbidden"  #: a draw the space forbids: pruned before it ran, not counted against the budget
TARGET_LATENCY_ATTR = "loopml.target_latency_ms"  #: a trial's p50 batch-1 latency on the deployment target
DEPLOY_VERDICT_ATTR = "loopml.deploy.verdict"  #: a trial's engine verdict on the target (ok / parity failed / ...)
INFEASIBLE_ATTR = "loopml.infeasible"  #: why a trial cannot be chosen (over the latency budget, export failed)
DEPLOY_FEASIBLE_TAG = "loopml.deploy.feasible"  #: a trial child run: true/false against the target and budget
PORTFOLIO_SOURCE_ATTR = "loopml.portfolio.source"  #: the study a portfolio trial's configuration came from

# Optuna study user attributes
PLAN_ATTR = "loopml.plan"  #: the search plan (study user attribute)
STOP_ATTR = "loopml.stop"  #: asks workers to stop (study user attribute)
TRAITS_ATTR = "loopml.table_traits"  #: the searched table's traits, for the portfolio of similar tables
DEAD_TRIALS_ATTR = "loopml.dead_worker_trials"  #: trials of dead workers, re-queued
HEARTBEAT_ATTR = "loopml.heartbeat"  #: epoch seconds of a trial's last heartbeat (journal storage's system attr)
SEARCH_STARTED_ATTR = "loopml.search_started_at"  #: epoch seconds the first worker began (study user attribute)
WORKER_STOPPED_ATTR = "loopml.worker_stopped"  #: prefix: `<prefix>.<index>` is why worker <index> stopped

# entry points
ALGORITHMS_ENTRY_POINT_GROUP = "loopml.algorithms"  #: entry-point group of contributed algorithms
STRATEGIES_ENTRY_POINT_GROUP = "loopml.strategies"  #: entry-point group of contributed search strategies
DRIFT_CHECKS_ENTRY_POINT_GROUP = "loopml.drift_checks"  #: entry-point group of contributed drift checks
DEPLOY_BACKENDS_ENTRY_POINT_GROUP = "loopml.deploy_backends"  #: entry-point group of contributed deployment engines


def tag_number(value: str | None) -> float | None:
    """A numeric tag's value (tags are strings), None when absent, empty or not a number."""
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


# trust reports (issue #17): version tags the promotion gate and the Families page read
TRUST_MIA_AUC_TAG = "loopml.trust.mia_auc"  #: membership-inference attack AUC on the version (0.5 = no leak)
TRUST_ADV_ACCURACY_TAG = "loopml.trust.adv_accuracy"  #: accuracy under the adversarial attack at its epsilon
TRUST_NOISE_RETAINED_TAG = "loopml.trust.noise_retained"  #: share of the clean score kept under Gaussian noise
TRUST_DP_EPSILON_TAG = "loopml.trust.dp_epsilon"  #: the DP-SGD accountant's final epsilon (absent: no DP)
TRUST_SKIPPED_TAG = "loopml.trust.skipped"  #: which parts of the trust report were not measured, and why
TRUST_RUN_TAG = "loopml.trust.run_id"  #: the MLflow run holding the version's trust report
TRIGGERED_BY_TAG = "loopml.triggered_by"  #: who or what started a run (a DAG run), on runs made outside a pipeline
GATE_SETTING_PREFIX = "loopml.gate."  #: prefix of a family's stored promotion-gate settings (registered model tags)
