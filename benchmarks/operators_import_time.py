"""Import time of the `operators` package (what every DAG parse and task start pays).

Measures, in fresh interpreters, `import airflow.sdk` alone and then `import operators.nocode`
on top of it, median of REPEATS runs.

    python benchmarks/operators_import_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEATS = 7

PROBE = """
import sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
import operators.nocode
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main() -> None:
    sdk, ops = [], []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(repo=str(REPO))], capture_output=True, text=True, check=True
        )
        a, b = map(float, out.stdout.split())
        sdk.append(a)
        ops.append(b)
    print(f"import airflow.sdk:               median {statistics.median(sdk):.3f}s")
    print(f"import operators.nocode (on top): median {statistics.median(ops):.3f}s   ({REPEATS} runs)")


if __name__ == "__main__":
    main()
