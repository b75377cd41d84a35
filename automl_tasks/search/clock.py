"""The search's time budget counts from the first trial, not from the plan.

The formatter writes the plan (and a provisional `deadline`) before Airflow has started
any worker; starting the workers' task processes takes seconds to tens of seconds on a
busy machine, which used to come out of the search's budget. The first worker to start
records the moment on the study (`SEARCH_STARTED_ATTR`); from then on the deadline is
that moment plus `time_budget_s`, for the workers and the job estimator alike. If no
worker has started `WORKER_START_GRACE_S` after the provisional deadline, the search's
deadline is that (the job estimator stops a search whose workers never came).
"""

from __future__ import annotations

import time
from typing import Any

from automl_tasks.core.tags import SEARCH_STARTED_ATTR

#: how long after the plan's provisional deadline a search may still wait for its first worker
WORKER_START_GRACE_S = 120.0


def _attrs(study: Any) -> dict[str, Any]:
    """The study's user attributes read fresh from the storage (other processes write them)."""
    return study._storage.get_study_user_attrs(study._study_id)


def start_clock(study: Any, now: float | None = None) -> float:
    """Record that the search started now unless a worker already did; return the start."""
    started = _attrs(study).get(SEARCH_STARTED_ATTR)
    if started is None:
        started = time.time() if now is None else now
        study.set_user_attr(SEARCH_STARTED_ATTR, started)
    return float(started)


def search_deadline(study: Any, plan: Any) -> float:
    """Epoch seconds after which no new trial starts: first worker's start + the budget."""
    started = _attrs(study).get(SEARCH_STARTED_ATTR)
    if started is None:
        return plan.deadline + WORKER_START_GRACE_S
    return float(started) + plan.time_budget_s
