"""The search plan: everything workers and the job estimator need, stored on the study.

XCom carries only the study name; the plan itself lives in the Optuna storage (the
middleware), so any worker process, local or in a pod, can read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from automl_tasks.estimators.base import DataSpec


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
    algorithm: str = "tabular"
    strategy: str = "tpe"  # a name in automl_tasks.search.strategies.STRATEGIES
    run_epochs: int | None = None  # fidelity given to every trial (None: the configuration's own)
    straggler_k: float = 3.0  # a running trial is timed out after mean + k*std of completed ones
    min_trial_timeout_s: float = 30.0
    budget_note: str = ""  # what the formatter left out of the space for the time budget, and why

    def to_json(self) -> str:
        payload = asdict(self)
        payload["data"] = self.data.to_dict()
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str) -> SearchPlan:
        payload: dict[str, Any] = json.loads(text)
        payload["data"] = DataSpec(**payload["data"])
        return cls(**payload)
