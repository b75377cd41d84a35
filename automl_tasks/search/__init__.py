"""The search engine: plan, storage (middleware), workers and the job estimator.

The names below load their submodule on first use (PEP 562), so importing one light
submodule (`automl_tasks.search.strategies`, read by the trigger forms at DAG-parse time)
does not import the estimators and their ML libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULE = {
    "choose_strategy": "formatter",
    "choose_trial_budget": "formatter",
    "start_search": "formatter",
    "warm_start_configs": "formatter",
    "SearchOutcome": "job_estimator",
    "adaptive_timeout": "job_estimator",
    "watch_search": "job_estimator",
    "SearchPlan": "plan",
    "build_plan": "plan",
    "best_of": "storage",
    "create_study": "storage",
    "load_study": "storage",
    "open_study": "storage",
    "open_storage": "storage",
    "WorkerSummary": "worker",
    "run_worker": "worker",
}

__all__ = [
    "SearchOutcome",
    "SearchPlan",
    "WorkerSummary",
    "adaptive_timeout",
    "best_of",
    "build_plan",
    "choose_strategy",
    "choose_trial_budget",
    "create_study",
    "load_study",
    "open_study",
    "open_storage",
    "run_worker",
    "start_search",
    "warm_start_configs",
    "watch_search",
]


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from automl_tasks.search.formatter import choose_strategy, choose_trial_budget, start_search, warm_start_configs
    from automl_tasks.search.job_estimator import SearchOutcome, adaptive_timeout, watch_search
    from automl_tasks.search.plan import SearchPlan, build_plan
    from automl_tasks.search.storage import best_of, create_study, load_study, open_storage, open_study
    from automl_tasks.search.worker import WorkerSummary, run_worker
