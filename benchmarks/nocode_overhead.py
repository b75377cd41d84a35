"""Orchestration overhead of the NoCode pipeline on the embedded stack.

Runs `nocode_pipeline` once through the real Airflow stack on a fresh workspace and
compares the run's wall time with the compute time of its tasks, read from Airflow's
task instances:
- sum: every task's duration added up (workers and job estimator overlap, so this
  counts the search stage more than once);
- critical path: the sequential stages, taking the longest task of the parallel
  search stage (job estimator || workers);
- overhead ratio = wall / critical path (goal <= 1.3).

    python benchmarks/nocode_overhead.py [--trials 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime

from automl_tasks.core.settings import Workspace
from loopml.airflow_client import AirflowClient
from loopml.embedded import ensure_stack

STAGES = [
    ["start"],
    ["data_preprocess"],
    ["plan_search"],
    ["job_estimator", "workers"],
    ["task_estimator"],
    ["advisor"],
    ["end"],
]


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.at(home).ensure()
        started = time.time()
        stack = ensure_stack(ws, port=18180)
        print(f"stack start: {time.time() - started:.1f}s")
        try:
            client = AirflowClient(stack.url)
            client.wait_for_dag("nocode_pipeline")
            client.unpause("nocode_pipeline")
            conf = {"dataset": "breast_cancer", "n_trials": args.trials, "n_workers": args.workers}
            run_id = client.trigger("nocode_pipeline", conf)
            state = client.wait_for_run("nocode_pipeline", run_id)
            run = client._call("GET", f"/api/v2/dags/nocode_pipeline/dagRuns/{run_id}")
            tis = client.task_instances("nocode_pipeline", run_id)
        finally:
            stack.stop()
    assert state == "success", f"run ended {state}"
    wall = _ts(run["end_date"]) - _ts(run["start_date"])
    durations: dict[str, list[float]] = {}
    for ti in tis:
        durations.setdefault(ti["task_id"], []).append(_ts(ti["end_date"]) - _ts(ti["start_date"]))
    total = sum(sum(v) for v in durations.values())
    critical = sum(max(max(durations[t]) for t in stage) for stage in STAGES)
    print(f"trials={args.trials} workers={args.workers}")
    for task_id, values in durations.items():
        print(f"  {task_id:<16} {' + '.join(f'{v:.1f}s' for v in values)}")
    print(f"run wall time (queued->done): {wall:.1f}s")
    print(f"sum of task durations:        {total:.1f}s")
    print(f"critical path of tasks:       {critical:.1f}s")
    print(f"overhead ratio wall/critical: {wall / critical:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
