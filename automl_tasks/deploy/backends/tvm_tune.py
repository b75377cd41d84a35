"""Child process of a tuned TVM build: MetaSchedule-tune a model under a time budget.

`python -m automl_tasks.deploy.backends.tvm_tune FOLDER SPEC_JSON SECONDS THREADS`
reads FOLDER/model.onnx, tunes its kernels for the shapes in SPEC_JSON in rounds until
SECONDS have passed (MetaSchedule counts trials, not seconds: each round asks for a
few more trials, and the JSON database in FOLDER keeps every measured record, so a
round starts where the last stopped), then writes FOLDER/tuned.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

#: trials per task in one round: small, so the budget is overshot by one short round at most
TRIALS_PER_ROUND = 8


def cost_model() -> str:
    """MetaSchedule's XGBoost cost model when xgboost is installed (TVM's `meta-schedule`
    extra), else its random model: the candidates are still measured on the CPU and the
    fastest kept, the search is only less guided (xgboost is not in loopml's lock)."""
    import importlib.util

    return "xgb" if importlib.util.find_spec("xgboost") else "random"


def tune(folder: Path, shapes: dict[str, tuple[int, ...]], seconds: float, threads: int) -> dict:
    from tvm.s_tir import meta_schedule as ms

    from automl_tasks.deploy.backends.tvm_relax import TUNED_MARKER, for_tuning, host_target, import_onnx

    model = (folder / "model.onnx").read_bytes()
    target = host_target(threads or None)
    module = for_tuning(import_onnx(model, shapes), target)
    tasks = ms.relax_integration.extract_tasks(module, target)
    started, rounds = time.monotonic(), 0
    while rounds == 0 or time.monotonic() - started < seconds:
        rounds += 1
        ms.relax_integration.tune_relax(
            module,
            params=None,
            target=target,
            work_dir=str(folder),
            max_trials_global=TRIALS_PER_ROUND * len(tasks),
            max_trials_per_task=TRIALS_PER_ROUND,
            num_trials_per_iter=TRIALS_PER_ROUND,
            cost_model=cost_model(),
            seed=rounds,
        )
    report = {
        "tune_seconds": round(time.monotonic() - started, 2),
        "rounds": rounds,
        "tasks": len(tasks),
        "cost_model": cost_model(),
    }
    (folder / TUNED_MARKER).write_text(json.dumps(report))
    return report


if __name__ == "__main__":
    folder, spec, seconds, threads = sys.argv[1:5]
    shapes = {k: tuple(v) for k, v in json.loads(spec)["shapes"].items()}
    print(json.dumps(tune(Path(folder), shapes, float(seconds), int(threads))))
