"""DAG parse time per file: what the dag-processor pays on every parse.

Each measurement runs in a fresh interpreter with `airflow.sdk` already imported (it is
always loaded in the dag-processor), then times executing the DAG file. Prints the median
and max of REPEATS runs per file, plus which heavy ML modules the parse pulled in.

    python benchmarks/dag_parse_time.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEATS = 7
GOAL_S = 0.5

sys.path.insert(0, str(REPO))
from tests.test_dag_integrity import HEAVY, PROBE  # noqa: E402  (one probe for test and benchmark)


def measure(path: Path) -> tuple[list[float], list[str]]:
    times, heavy = [], []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(repo=str(REPO), path=str(path), heavy=HEAVY)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(result["seconds"])
        heavy = result["heavy"]
    return times, heavy


def main() -> None:
    print(f"{'DAG file':<28} {'median s':>9} {'max s':>7}  heavy imports   (goal < {GOAL_S}s, {REPEATS} runs)")
    for path in sorted((REPO / "dags").glob("*.py")):
        times, heavy = measure(path)
        print(f"{path.name:<28} {statistics.median(times):>9.3f} {max(times):>7.3f}  {heavy or 'none'}")


if __name__ == "__main__":
    main()
