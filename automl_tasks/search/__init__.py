"""The search engine: plan, storage (middleware), workers and the job estimator."""

from automl_tasks.search.formatter import choose_strategy, choose_trial_budget, start_search, warm_start_configs
from automl_tasks.search.job_estimator import SearchOutcome, adaptive_timeout, watch_search
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.storage import best_of, create_study, load_study, open_storage
from automl_tasks.search.worker import WorkerSummary, run_worker

__all__ = [
    "SearchOutcome",
    "SearchPlan",
    "WorkerSummary",
    "adaptive_timeout",
    "best_of",
    "choose_strategy",
    "choose_trial_budget",
    "create_study",
    "load_study",
    "open_storage",
    "run_worker",
    "start_search",
    "warm_start_configs",
    "watch_search",
]
