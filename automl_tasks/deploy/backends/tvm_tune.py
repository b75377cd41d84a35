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

#: trials per task in one round: small, so the budget is overshot by one round at most (a
#: round of 8 trials on each of an MLP's 3 tasks took 147 s on a 2-core machine, about 60 s
#: of it the tuner's one-off import of TVM's tensor intrinsics)
TRIALS_PER_ROUND = 8


def cost_model() -> str:
    """MetaSchedule's XGBoost cost model when xgboost is installed (TVM's `meta-schedule`
    extra; loopml's lock has it for the `xgboost` model a search space can name), else its
    random model: the candidates are still measured on the CPU and the fastest kept, the
    search is only less guided."""
    import importlib.util

    return "xgb" if importlib.util.find_spec("xgboost") else "random"


def build_candidate(mod, target, _params=None):
    """MetaSchedule's default candidate build without its first line, `import
    tvm.s_tir.tensor_intrin`: that import registers every tensor intrinsic of every target
    and took 57 s here, in each fresh builder process, so every candidate build hit the
    builder's 30 s timeout and tuning measured nothing. loopml's float32 CPU kernels use no
    tensor intrinsics (the tuner's own process still imports them for the schedule rules)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def measured_candidates(folder: Path) -> int:
    """How many candidates in the tuning database were built and timed (failed builds and
    runs are recorded with MetaSchedule's 1e10 s sentinel, or with no run time)."""
    from tvm.s_tir import meta_schedule as ms

    records = ms.database.JSONDatabase(work_dir=str(folder)).get_all_tuning_records()
    return sum(1 for r in records if r.run_secs and all(float(t) < 1e9 for t in r.run_secs))


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
            builder=ms.builder.LocalBuilder(f_build=build_candidate),
            seed=rounds,
        )
    measured = measured_candidates(folder)
    if not measured:  # a "tuned" build from an empty database would be the untuned one, renamed
        raise RuntimeError(f"MetaSchedule measured no candidate in {rounds} round(s): see {folder / 'logs'}")
    report = {
        "tune_seconds": round(time.monotonic() - started, 2),
        "rounds": rounds,
        "tasks": len(tasks),
        "measured": measured,
        "cost_model": cost_model(),
    }
    (folder / TUNED_MARKER).write_text(json.dumps(report))
    return report


if __name__ == "__main__":
    folder, spec, seconds, threads = sys.argv[1:5]
    shapes = {k: tuple(v) for k, v in json.loads(spec)["shapes"].items()}
    print(json.dumps(tune(Path(folder), shapes, float(seconds), int(threads))))
