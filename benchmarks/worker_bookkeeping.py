"""What a search worker spends on each trial beside the trial itself (issue #16's 10 ms goal).

One real `run_worker` in this process, on the embedded mode's stores (SQLite Optuna storage,
SQLite MLflow), evaluating zero-length trials (the sleepy test estimator with 0 s), so every
CPU second it uses is bookkeeping: reserving and sampling the trial, budget and stop checks,
the heartbeat, telling Optuna, the MLflow child run, the progress line.

    .venv/bin/python benchmarks/worker_bookkeeping.py [--trials 200] [--profile]

Prints CPU ms and wall ms per trial; `--profile` adds the functions that cost the most.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.core.settings import Workspace  # noqa: E402
from automl_tasks.data import bundled_frame  # noqa: E402
from automl_tasks.search import start_search  # noqa: E402
from automl_tasks.search.worker import run_worker  # noqa: E402
from tests.unit.test_search_engine import sleepy_plan  # noqa: E402

SPACE = """
params:
  - {name: x, type: float, range: [0, 1]}
  - {name: sleep_s, type: float_cat, range: [0.0]}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.at(Path(tmp) / "ws").ensure()
        plan, space = sleepy_plan(
            ws,
            bundled_frame("breast_cancer"),
            space=SPACE,
            n_trials=args.trials,
            name="bookkeeping",
            time_budget_s=3600,
        )
        start_search(ws.optuna_uri, plan, space)
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        summary = run_worker(ws, plan.study_name, 0)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = summary.evaluated
    print(f"{n} zero-length trials: {cpu / n * 1000:.1f} ms CPU and {wall / n * 1000:.1f} ms wall per trial")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())


if __name__ == "__main__":
    main()
