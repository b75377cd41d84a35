"""Search workers as Kubernetes pods (the kubernetes profile): one pod per worker slot.

Airflow's own KubernetesPodOperator runs them, mapped over the slots the plan task returns,
each slot with the algorithm's `resources` (cpu, memory, gpu -> `nvidia.com/gpu`) from the
study's plan: resources known only at run time, which `executor_config` pod overrides
(fixed when the DAG is parsed) cannot express. The pod runs `loopml worker`, which writes
its summary where the operator's XCom sidecar reads it.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

#: the workspace variables a trial pod gets from the profile (stores, never local paths)
POD_ENV = (
    "LOOPML_MLFLOW_URI",
    "LOOPML_OPTUNA_URI",
    "LOOPML_DVC_REMOTE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "LOOPML_HEARTBEAT_S",
    "LOOPML_HEARTBEAT_GRACE_S",
)
POD_HOME = "/tmp/loopml"  # the pod's own scratch workspace (no volume: nothing is shared but the network)


class TrialPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator whose `trial_resources` (the plan's requests/limits mapping,
    mapped from XCom) becomes the container's V1ResourceRequirements."""

    def __init__(self, *, trial_resources: dict[str, dict[str, str]] | None = None, **kwargs: Any) -> None:
        from kubernetes.client import models as k8s

        if trial_resources:
            kwargs["container_resources"] = k8s.V1ResourceRequirements(**trial_resources)
        super().__init__(**kwargs)


def worker_command(study_name: str, worker_index: int) -> list[str]:
    """The pod's arguments to `bash -c` (the official image's convention): one worker of the study."""
    return [f"exec loopml worker --study {study_name} --index {worker_index} --xcom"]


def pod_slots(study_name: str, n_workers: int, resources: dict[str, Any]) -> list[dict[str, Any]]:
    """One mapped pod per worker: its arguments and the algorithm's resources (JSON for XCom)."""
    from automl_tasks.algorithms.spec import Resources

    wanted = Resources.parse(resources or None, f"study {study_name}").requirements()
    return [{"arguments": worker_command(study_name, i), "trial_resources": wanted} for i in range(n_workers)]


def worker_pods(task_id: str, profile: Any, environ: dict[str, str]) -> Any:
    """The mapped operator's fixed part (image, namespace, command, the stores' settings):
    `.expand_kwargs(slots)` with `pod_slots` gives every worker its own arguments and resources."""
    from kubernetes.client import models as k8s

    env = [k8s.V1EnvVar(name=k, value=environ[k]) for k in POD_ENV if environ.get(k)]
    env.append(k8s.V1EnvVar(name="LOOPML_HOME", value=POD_HOME))
    return TrialPodOperator.partial(
        task_id=task_id,
        name="loopml-trial",
        image=profile.image,
        namespace=profile.namespace,
        cmds=["bash", "-c"],
        env_vars=env,
        labels={"app.kubernetes.io/part-of": "loopml", "loopml/role": "search-worker"},
        security_context={"runAsUser": 50000, "runAsGroup": 0, "runAsNonRoot": True},
        do_xcom_push=True,
        on_finish_action="delete_succeeded_pod",
        get_logs=True,
        retries=1,
    )
