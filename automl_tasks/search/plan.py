"""The search plan: everything workers and the job estimator need, stored on the study.

XCom carries only the study name; the plan itself lives in the Optuna storage (the
middleware), so any worker process, local or in a pod, can read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from automl_tasks.core.settings import Workspace
from automl_tasks.estimators import TABULAR_ESTIMATOR
from automl_tasks.estimators.base import DataSpec
from automl_tasks.search_space import SearchSpace


class IntakeResult(Protocol):
    """What a plan needs from an intake step's result (`pipelines.intake.PreprocessResult`
    satisfies it; a Protocol because the search layer sits below the pipelines)."""

    family: str
    dataset_path: str
    dataset_uri: str
    target: str
    task_type: str
    experiment_id: str
    parent_run_id: str
    feature_pipeline_path: str  # "" when the model reads the raw columns


@dataclass(frozen=True)
class SearchPlan:
    """Budget, data and tracking coordinates of one search (JSON-able)."""

    study_name: str
    family: str
    data: DataSpec
    dataset_uri: str
    metric: str
    direction: str
    space_yaml: str
    space_hash: str
    n_trials: int
    time_budget_s: float
    deadline: float  # epoch seconds after which no new trial starts
    n_workers: int
    experiment_id: str
    parent_run_id: str
    seed: int = 0
    algorithm: str = TABULAR_ESTIMATOR  # a resolved `package.module:Class` reference, never a name
    strategy: str = "tpe"  # a name in automl_tasks.search.strategies.STRATEGIES
    run_epochs: int | None = None  # fidelity given to every trial (None: the configuration's own)
    straggler_k: float = 3.0  # a running trial is timed out after mean + k*std of completed ones
    min_trial_timeout_s: float = 30.0
    budget_note: str = ""  # what the formatter left out of the space for the time budget, and why
    # deployment goal (issue #12): the target the model is measured on (a name in
    # deploy.targets; "" = none, trials are not measured), a latency budget on it in ms
    # (0 = none; a trial over it is infeasible), and whether latency is a second objective
    deploy_target: str = ""
    latency_budget_ms: float = 0.0
    trade_off_latency: bool = False
    # whether the task estimator may register an ensemble of the best trials (issue #11)
    ensemble: bool = True
    # whether the task estimator measures the version's trust report (issue #17)
    trust_report: bool = True
    # what one worker needs (the algorithm's `resources`: cpu, memory, gpu; empty: the
    # defaults); a worker pod requests them under the Kubernetes profile (issue #16)
    resources: dict[str, Any] = field(default_factory=dict)
    # whether a cross-validated trial is stopped once its folds so far lose to its family's
    # best trial (search/fold_race; issue #11): the tabular estimator reports fold scores
    race_folds: bool = False

    def __post_init__(self) -> None:
        if ":" not in self.algorithm:
            raise ValueError(f"SearchPlan.algorithm must be a 'package.module:Class' reference; got {self.algorithm!r}")

    def on_host(self, ws: Workspace) -> SearchPlan:
        """This plan with its data files on this machine: the paths the planning task wrote
        are its own host's; elsewhere the dataset version comes from the DVC remote (by its
        URI) and the feature pipeline from MLflow (by its version), into `ws`."""
        data = self.data
        if not Path(data.path).exists():
            from automl_tasks.data.versioning import DatasetStore, parse_dataset_uri

            data = replace(
                data, path=str(DatasetStore(ws.datasets, ws.dvc_remote).path(*parse_dataset_uri(self.dataset_uri)))
            )
        if data.feature_pipeline and not Path(data.feature_pipeline).exists():
            from automl_tasks.features.store import load_feature_pipeline, write_local

            pipeline = load_feature_pipeline(ws, Path(data.feature_pipeline).stem)  # the file is named by its version
            data = replace(data, feature_pipeline=str(write_local(ws, pipeline)))
        return self if data is self.data else replace(self, data=data)

    def to_json(self) -> str:
        payload = asdict(self)
        payload["data"] = self.data.to_dict()
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str) -> SearchPlan:
        payload: dict[str, Any] = json.loads(text)
        payload["data"] = DataSpec(**payload["data"])
        if payload.get("algorithm") == "tabular":  # plans stored before plans held references
            payload["algorithm"] = TABULAR_ESTIMATOR
        return cls(**payload)


def build_plan(
    study_name: str,
    intake: IntakeResult,
    *,
    metric: str,
    space: SearchSpace,
    space_yaml: str,
    n_trials: int,
    n_workers: int,
    time_budget_s: float,
    seed: int,
    strategy: str,
    algorithm: str = TABULAR_ESTIMATOR,
    run_epochs: int | None = None,
    budget_note: str = "",
    deploy_target: str = "",
    latency_budget_ms: float = 0.0,
    trade_off_latency: bool = False,
    ensemble: bool = True,
    cross_validate: bool | None = None,
    trust_report: bool = True,
    resources: dict[str, Any] | None = None,
    race_folds: bool | None = None,
) -> SearchPlan:
    """The plan of one search over the table an intake step stored (the one way plans are made).

    `intake` is the intake step's result (a `PreprocessResult` or its extension): the
    stored dataset version, target, task type, family and the pipeline's MLflow run.
    The split seed is the search seed; the direction follows from the metric. The deadline
    is provisional (`time_budget_s` after now): the search's clock starts with its first
    worker (`search.clock`). `algorithm` is stored as given. `race_folds` (None: decided
    here) is on for the tabular estimator's fold scores in a search with one objective and
    no fidelity (Optuna records intermediate values of one objective only).
    """
    from automl_tasks.estimators.metrics import Metric

    return SearchPlan(
        study_name=study_name,
        family=intake.family,
        data=DataSpec(
            intake.dataset_path,
            intake.target,
            intake.task_type,
            split_seed=seed,
            cross_validate=cross_validate,
            feature_pipeline=intake.feature_pipeline_path or None,
        ),
        dataset_uri=intake.dataset_uri,
        metric=metric,
        direction=Metric(metric).direction,
        space_yaml=space_yaml,
        space_hash=space.hash,
        n_trials=n_trials,
        time_budget_s=time_budget_s,
        deadline=time.time() + time_budget_s,
        n_workers=n_workers,
        experiment_id=intake.experiment_id,
        parent_run_id=intake.parent_run_id,
        seed=seed,
        algorithm=algorithm,
        budget_note=budget_note,
        strategy=strategy,
        run_epochs=run_epochs,
        deploy_target=deploy_target,
        latency_budget_ms=latency_budget_ms,
        trade_off_latency=trade_off_latency,
        ensemble=ensemble,
        trust_report=trust_report,
        resources=dict(resources or {}),
        race_folds=(algorithm == TABULAR_ESTIMATOR and run_epochs is None and not trade_off_latency)
        if race_folds is None
        else race_folds,
    )
