"""torch work sharing the cores, with and without OpenMP's passive waiting
(`automl_tasks/core/shared_cores.py`, which every process loopml starts gets).

Each job runs in fresh processes (the policy is read when the OpenMP runtime loads): two at
once, as two search workers' trials do (each with torch's default of a thread per core), beside
`--busy` processes that keep cores busy (the other xdist worker of `make test`, another DAG
run); then alone on an idle machine. The median of `--repeats` runs is reported (the
contended runs vary a lot: the worst of them is what a user meets). Jobs:
- mlp: loopml's MLP classifier (the NoCode space's `mlp` branch) fitted on 4,000 rows x 20;
- distil: two epochs of distillation of a 4-layer tiny BERT into 2 layers on 240 texts (the
  adaptation DAG's miniaturise step, as in its end-to-end test).

Run: PYTHONPATH=. .venv/bin/python benchmarks/shared_cores.py [--busy 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from automl_tasks.core.shared_cores import OMP_WAIT_POLICY, PASSIVE

REPO = Path(__file__).resolve().parent.parent

JOBS = {
    "mlp": """
import time, numpy as np
from automl_tasks.estimators.torch_mlp import TorchMLPClassifier
rng = np.random.default_rng(0)
x = rng.normal(size=(4000, 20)).astype(np.float32)
y = (x[:, :3].sum(axis=1) + rng.normal(size=4000) > 0).astype(int)
started = time.perf_counter()
TorchMLPClassifier(epochs=20, patience=100).fit(x, y)
print(time.perf_counter() - started)
""",
    "distil": """
import sys, time, numpy as np
from pathlib import Path
from tests.text_models import tiny_bert, toy_reviews
from automl_tasks.adaptation.estimator import TextAdapterEstimator
from automl_tasks.adaptation.miniaturise import StudentTraining, distil, fewer_layers, logits
from automl_tasks.estimators.base import DataSpec
from automl_tasks.estimators.metrics import Metric
folder = Path(sys.argv[1])
toy_reviews(240).to_parquet(folder / "reviews.parquet")
args = {"method": "head", "base_model": str(tiny_bert(folder / "bert", layers=4)), "epochs": 1, "max_seq_len": 32}
teacher = TextAdapterEstimator(run_epochs=None, data=DataSpec(str(folder / "reviews.parquet"), "label", "binary"),
                               is_trainer=False, model_args=args, metric=Metric("accuracy"))
teacher.train()
rows = np.arange(len(teacher.ids_))
taught = logits(teacher.plain(), teacher.ids_, rows, teacher.pad_id_)
fit_rows, _ = teacher.rows()
print(distil(fewer_layers(teacher.plain(), 2), teacher.ids_, teacher.target_, taught, fit_rows,
             teacher.pad_id_, StudentTraining(epochs=2)))
""",
}


def run_jobs(job: str, passive: bool, at_once: int) -> list[float]:
    """Seconds each of `at_once` copies of `job`, started together, took for its timed part."""
    env = {k: v for k, v in os.environ.items() if k != OMP_WAIT_POLICY}
    env["PYTHONPATH"] = str(REPO)
    if passive:
        env[OMP_WAIT_POLICY] = PASSIVE
    with tempfile.TemporaryDirectory() as folder:
        running = []
        for copy in range(at_once):
            (Path(folder) / str(copy)).mkdir()
            running.append(
                subprocess.Popen(
                    [sys.executable, "-c", JOBS[job], str(Path(folder) / str(copy))],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    cwd=REPO,
                )
            )
        outputs = [process.communicate()[0] for process in running]
    if any(process.returncode for process in running):
        raise SystemExit(f"{job} failed (exit codes {[p.returncode for p in running]})")
    return [float(out.strip().splitlines()[-1]) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the two jobs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; median of {args.repeats} runs")
    scenarios = ((f"2 at once + {args.busy} busy", 2, args.busy), ("alone, idle", 1, 0))
    rows = []
    for label, at_once, busy in scenarios:
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for job in JOBS:
                medians = {}
                for passive in (False, True):
                    seconds = [s for _ in range(args.repeats) for s in run_jobs(job, passive, at_once)]
                    medians[passive] = statistics.median(seconds)
                    print(
                        json.dumps({"job": job, "scenario": label, "passive": passive, "seconds": seconds}), flush=True
                    )
                rows.append((job, label, medians[False], medians[True]))
        finally:
            for spinner in spinners:
                spinner.kill()
    print(f"\n{'job':7s} {'scenario':22s} {'default s':>10s} {'passive s':>10s} {'ratio':>7s}")
    for job, label, default, passive in rows:
        print(f"{job:7s} {label:22s} {default:10.3f} {passive:10.3f} {default / passive:6.1f}x")


if __name__ == "__main__":
    main()
