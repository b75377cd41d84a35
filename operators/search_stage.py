"""The search stage every pipeline runs: plan -> (job_estimator || workers), as one TaskGroup.

`plan` creates the study and returns the worker slots; `job_estimator` watches the study
(budget, straggler time-outs, dead workers) while `workers` (mapped over the slots)
evaluate its trials. What follows the stage (the task estimator, an advisor) waits for
the group, that is for the job estimator and every worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import TaskGroup

from automl_tasks.core.profile import DeploymentProfile


def worker_slots(study_name: str, n_workers: int) -> list[Any]:
    """What the plan task returns for the workers to map over: worker indexes, or under the
    kubernetes profile one pod's arguments and resources per worker (`trial_pods.pod_slots`)."""
    if not DeploymentProfile.from_env().trials_as_pods:
        return list(range(n_workers))
    from automl_tasks.search.storage import load_study
    from operators._runtime import workspace
    from operators.trial_pods import pod_slots

    _, plan = load_study(workspace().optuna_uri, study_name)
    return pod_slots(study_name, n_workers, plan.resources)


def search_stage(
    plan: Any,
    job_estimator: Any,
    workers: Any,
    *,
    plan_args: Sequence[Any],
    study_args: Mapping[str, Any],
    group_id: str = "search_stage",
    prefix_group_id: bool = True,
) -> TaskGroup:
    """The stage's three tasks, wired, in a TaskGroup; put `stage >> next_task` after it.

    `plan`, `job_estimator` and `workers` are `@task`s: `plan(*plan_args)` returns the
    worker slots, `job_estimator(**study_args)` and `workers(**study_args, worker_index=i)`
    find the study from `study_args`. Under the kubernetes profile (LOOPML_EXECUTOR) the
    workers are pods (`trial_pods.worker_pods`) and `plan` returns `worker_slots`. With
    `prefix_group_id=False` the task ids stay unprefixed (`plan_search`, `job_estimator`,
    `workers`): the pipelines that run one search keep the ids the CLI, tests and logs refer
    to; a DAG with several stages (HPO) prefixes each with its group id (`search.workers`).
    """
    with TaskGroup(
        group_id=group_id,
        prefix_group_id=prefix_group_id,
        tooltip="plan the study, then the job estimator watches while the workers evaluate trials",
    ) as stage:
        slots = plan(*plan_args)
        watcher = job_estimator(**study_args)
        profile = DeploymentProfile.from_env()
        if profile.trials_as_pods:
            from operators.trial_pods import worker_pods

            worker_pods(workers.kwargs["task_id"], profile, dict(os.environ)).expand_kwargs(slots)
        else:
            workers.partial(**study_args).expand(worker_index=slots)  # downstream of `slots` through its data
        slots >> watcher
    return stage
