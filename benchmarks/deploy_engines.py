"""Deployment engines side by side (issue #12): every engine x model x batch {1, 32}.

Models: a tabular torch MLP (breast_cancer, 30 -> 64 -> 64 -> 2), the same MLP as loopml
registers it (imputer + scaler + network in one graph), LightGBM on the same
table (ONNX through onnxmltools: `ai.onnx.ml` tree operators, which only some engines
run), and a digits CNN (8x8 images, two 3x3 convolutions). Torch eager is the reference
row for the torch models. Every engine goes through `automl_tasks.deploy.backends.evaluate`
(compile, parity against ONNX Runtime, then p50/p99 latency after warm-up), so an engine
that fails parity or cannot compile a model shows its verdict instead of numbers.
All engines and torch run with 1 thread (the machine's 2 cores are shared).

Each model also goes through the automatic choice (a target with engine `auto`: every
available engine compiled, checked and measured, the fastest deployable one chosen); its
chosen engine's p50 in the side-by-side table is compared with the fastest single engine's
(goal: within 10%); auto's own p50, a second measurement of the same engine, is printed
beside it as a gauge of timing noise.
TVM is built untuned and, for the MLP, MetaSchedule-tuned with `--tune-seconds`.
TensorRT needs an NVIDIA GPU: on a machine without one its row says so; it has not been
measured until this script runs on a GPU machine.

Run: PYTHONPATH=. .venv/bin/python benchmarks/deploy_engines.py [--tune-seconds 20] [--repeats 200]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from automl_tasks.deploy.backends import BackendOptions, backend_names, evaluate
from automl_tasks.deploy.backends.verdict import reference_outputs
from automl_tasks.deploy.measure import BATCH_SIZES, batch_feed, latency_stats
from automl_tasks.deploy.targets import AUTO_ENGINE, DeploymentTarget, evaluate_on_target

#: the automatic engine choice, with every engine's settings of this benchmark
THREADS = 1
AUTO_TARGET = DeploymentTarget("bench-auto", AUTO_ENGINE, BackendOptions(threads=THREADS))


def mlp_model(tmp: Path):
    import torch
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    )
    _train(net, torch.from_numpy(x), torch.from_numpy(y).long())
    return _export(net, torch.from_numpy(x[:1]), tmp / "mlp.onnx"), {"x": x[:32]}, net


def cnn_model(tmp: Path):
    import torch
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )
    _train(net, torch.from_numpy(x), torch.from_numpy(y).long())
    return _export(net, torch.from_numpy(x[:1]), tmp / "cnn.onnx"), {"x": x[:32]}, net


def lightgbm_model(tmp: Path):
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    model = lightgbm.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1).fit(x, y)
    onnx_model = onnxmltools.convert_lightgbm(
        model, initial_types=[("x", FloatTensorType([None, 30]))], zipmap=False, target_opset=15
    )
    path = tmp / "lightgbm.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    return path, {"x": x[:32]}, None


def loopml_mlp_model(tmp: Path):
    """The MLP as loopml registers it: imputer, scaler and network in one ONNX graph
    (skl2onnx's `ai.onnx.ml` operators, lowered for OpenVINO and TVM)."""
    from automl_tasks.data import bundled_frame
    from automl_tasks.estimators import DataSpec
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.estimators.tabular import TabularEstimator

    frame = bundled_frame("breast_cancer")
    frame.to_parquet(tmp / "breast_cancer.parquet")
    config = {"imputation": "median", "scaling": "zscore", "model": "mlp", "hidden_units": 64, "n_layers": 2}
    estimator = TabularEstimator(
        run_epochs=None,
        data=DataSpec(str(tmp / "breast_cancer.parquet"), "target", "binary"),
        is_trainer=False,
        model_args={**config, "learning_rate": 0.003, "weight_decay": 1e-4, "epochs": 30},
        metric=Metric("roc_auc"),
    )
    estimator.run()
    path = estimator.export_onnx(tmp / "loopml_mlp.onnx")
    return path, estimator.onnx_feed(frame.head(32)), None


def _train(net, x, y, epochs: int = 30) -> None:
    import torch

    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    net.eval()


def _export(net, example, path: Path) -> Path:
    import torch

    torch.onnx.export(
        net, (example,), str(path), input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path


def torch_row(net, feed, repeats: int) -> dict[int, float]:
    import torch

    torch.set_num_threads(THREADS)
    out = {}
    with torch.inference_mode():
        for batch in BATCH_SIZES:
            x = torch.from_numpy(batch_feed(feed, batch)["x"])
            out[batch] = latency_stats(lambda x=x: net(x), batch, warmup=20, repeats=repeats).p50_ms
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--tune-seconds", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = (
            ("MLP", mlp_model),
            ("loopml tabular MLP", loopml_mlp_model),
            ("LightGBM", lightgbm_model),
            ("digits CNN", cnn_model),
        )
        for model_name, build in models:
            path, feed, net = build(tmp)
            one = {k: v[:1] for k, v in feed.items()}
            reference = reference_outputs(path, one)
            if net is not None:
                eager = torch_row(net, feed, args.repeats)
                rows.append((model_name, "torch eager (reference)", "-", eager[1], eager[32], None, None))
            engines = [(name, {"threads": THREADS}) for name in backend_names()]
            if model_name == "MLP":
                engines.insert(3, ("tvm", {"threads": THREADS, "tune_seconds": args.tune_seconds, "work_dir": tmp}))
            for name, options in engines:
                label = f"{name} (tuned {args.tune_seconds:g}s)" if options.get("tune_seconds") else name
                result = evaluate(
                    name, path, one, reference=reference, options=options, measure=True, repeats=args.repeats
                )
                m = result.measurement
                rows.append(
                    (
                        model_name,
                        label,
                        str(result.verdict).split(": ", 1)[1],
                        m.latency[1].p50_ms if m else None,
                        m.latency[32].p50_ms if m else None,
                        m.latency[1].p99_ms if m else None,
                        m.peak_memory_mb if m else None,
                    )
                )
                print(f"  {model_name:10s} {label:24s} {rows[-1][2][:100]}", flush=True)
            singles = [r[3] for r in rows if r[0] == model_name and r[3] is not None and "torch" not in r[1]]
            auto = evaluate_on_target(AUTO_TARGET, path, one, reference=reference, repeats=args.repeats)
            m = auto.measurement
            label = f"auto (chose {auto.verdict.engine})"
            rows.append((model_name, label, str(auto.verdict).split(": ", 1)[1], m.latency[1].p50_ms,
                         m.latency[32].p50_ms, m.latency[1].p99_ms, m.peak_memory_mb))  # fmt: skip
            # the choice judged in the side-by-side table (same pass, same load) and auto's own
            # re-measurement (a second run of the same engine: it shows the timing noise)
            chosen = next(r[3] for r in rows if r[0] == model_name and r[1] == auto.verdict.engine)
            ratios.append((model_name, auto.verdict.engine, chosen / min(singles), m.latency[1].p50_ms / min(singles)))
            print(f"  {model_name:10s} {label:24s} {ratios[-1][2]:.2f}x the best single engine", flush=True)

    def ms(value):
        return "-" if value is None else f"{value * 1000:.0f} µs"

    print("\n| model | engine | verdict | p50 batch 1 | p50 batch 32 | p99 batch 1 | peak memory MB |")
    print("|---|---|---|---|---|---|---|")
    for model_name, label, verdict, b1, b32, p99, peak in rows:
        verdict = verdict if len(verdict) < 90 else verdict[:87] + "..."
        peak_text = "-" if peak is None else f"{peak:.0f}"
        print(f"| {model_name} | {label} | {verdict} | {ms(b1)} | {ms(b32)} | {ms(p99)} | {peak_text} |")
    print("\nAutomatic choice (engine `auto`) vs the fastest single engine at batch 1:")
    for model_name, engine, ratio, again in ratios:
        print(
            f"- {model_name}: chose {engine}, {ratio:.2f}x the fastest engine's p50 in the table (goal <= 1.10); "
            f"auto's own re-measurement {again:.2f}x"
        )
    print("\nTensorRT: not measured on this machine (no NVIDIA GPU); see its verdict above.")


if __name__ == "__main__":
    main()
