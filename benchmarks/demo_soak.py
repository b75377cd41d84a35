"""Soak check of the first run: `loopml demo` N times on fresh workspaces, M times on one.

Not a test (each demo takes ~2 min): a reliability measurement of the command every new
user runs first. Each run is the real CLI in its own process, exactly as `make demo`
runs it; a run fails when it exits non-zero or prints a Python traceback. Prints each
run, the failures with the end of their output, the median time per kind, and how many
API calls the client had to repeat after a transient metadata-DB error.

    python benchmarks/demo_soak.py --fresh 20 --same 10

The workspaces live in a temporary folder and are deleted at the end; the output of a
failed run is kept in --keep (default /tmp/loopml-soak-failures) for a post-mortem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_demo(home: Path, extra_args: list[str], timeout_s: float) -> tuple[bool, float, str]:
    """One `loopml demo` on workspace `home`: (ok, seconds, output)."""
    env = dict(
        os.environ, LOOPML_HOME=str(home), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    env.pop("LOOPML_MLFLOW_URI", None)
    env.pop("LOOPML_OPTUNA_URI", None)
    started = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "loopml.cli", "demo", *extra_args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        output, code = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\n(timed out after {timeout_s:.0f}s)", -1
    seconds = time.perf_counter() - started
    ok = code == 0 and "Traceback (most recent call last)" not in output
    return ok, seconds, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", type=int, default=20, help="runs, each on a new workspace")
    parser.add_argument("--same", type=int, default=10, help="runs on one workspace, one after the other")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per run")
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "loopml-soak-failures")
    parser.add_argument("demo_args", nargs="*", help="extra arguments for `loopml demo` (after --)")
    args = parser.parse_args()

    results: dict[str, list[dict]] = {"fresh": [], "same": []}
    root = Path(tempfile.mkdtemp(prefix="loopml-soak-"))
    try:
        plan = [("fresh", root / f"fresh-{i}") for i in range(args.fresh)]
        plan += [("same", root / "same") for _ in range(args.same)]
        for index, (kind, home) in enumerate(plan, 1):
            ok, seconds, output = run_demo(home, args.demo_args, args.timeout)
            # calls the client repeated after a transient metadata-DB error (loopml/transient_db.py)
            retried = output.count("Airflow metadata DB busy")
            results[kind].append({"ok": ok, "seconds": round(seconds, 1), "retried": retried})
            print(
                f"[{index}/{len(plan)}] {kind:5s} {'ok  ' if ok else 'FAIL'} {seconds:6.1f}s retried calls {retried}",
                flush=True,
            )
            if not ok:
                args.keep.mkdir(parents=True, exist_ok=True)
                saved = args.keep / f"{kind}-{index}.txt"
                saved.write_text(output)
                tail = "\n".join(output.strip().splitlines()[-15:])
                print(f"  output kept in {saved}; last lines:\n{tail}", flush=True)
            if kind == "fresh":
                shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    summary = {}
    for kind, runs in results.items():
        if runs:
            summary[kind] = {
                "runs": len(runs),
                "failures": sum(not r["ok"] for r in runs),
                "median_s": round(statistics.median(r["seconds"] for r in runs), 1),
                "retried_calls": sum(r["retried"] for r in runs),
            }
    print(json.dumps(summary))
    return 0 if all(s["failures"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
