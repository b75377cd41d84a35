"""Where a /predict request's time goes inside loopml's code, stage by stage, in-process.

One family (breast_cancer LightGBM, 30 numeric columns), a single-row request body.
Median microseconds per call over many calls, for the request path before this change
(BentoML parses the JSON into Python objects, `instances_to_frame` validates and builds a
DataFrame, ONNX inputs come from the frame, one log transaction per request) and after it
(the generated request model parses and validates the bytes in one pass, rows go to a
numpy array, ONNX inputs come from the array, one log transaction per group of requests).
The framework's share (HTTP, BentoML, metrics) is measured by serving_throughput.py.

    python benchmarks/serving_request_path.py [--repeat 2000] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from automl_tasks.families.loading import load_predictor  # noqa: E402
from automl_tasks.monitoring import InferenceLog, InferenceRecord  # noqa: E402
from benchmarks.serving_throughput import FAMILY, bench_workspace  # noqa: E402
from serving.loader import instances_to_frame, sample_instances  # noqa: E402
from serving.request_model import RequestModel, features_runner, served_schema  # noqa: E402


def _median_us(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--workspace", help="reuse a workspace that already has the family 'bench'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        ws = bench_workspace(args.workspace or home, built=bool(args.workspace))
        predictor = load_predictor(ws, FAMILY)
        instances = sample_instances(ws, FAMILY, 8)
        body = json.dumps({"instances": instances[:1]}).encode()
        request_model = RequestModel(served_schema(predictor))
        run_features = features_runner(
            predictor.predict_fn, served_schema(predictor), predictor.onnx_model, predictor.labels
        )
        log = InferenceLog(Path(home) / "log.sqlite", FAMILY)
        record = InferenceRecord("r", "1", "champion", instances[0], 0, time.time())
        parsed = json.loads(body)["instances"]
        frame = instances_to_frame(parsed, predictor.schema)
        rows, features = request_model.parse(body)
        feeds = _feeds(predictor, features)
        session = predictor.onnx_model.session  # the ONNX Runtime session behind predict_fn
        stages = {
            "before: JSON parse (json.loads; BentoML's pydantic parse is similar)": lambda: json.loads(body),
            "before: validate + feature frame (instances_to_frame)": lambda: instances_to_frame(
                parsed, predictor.schema
            ),
            "before: model call from the frame (ONNX inputs + run)": lambda: predictor.predict_fn(frame),
            "before: inference log, 1 request per transaction": lambda: log.append([record]),
            "after: parse + validate + numpy rows (RequestModel.parse)": lambda: request_model.parse(body),
            "after: model call from the arrays": lambda: run_features(features),
            "after: inference log, 8 requests per transaction (per request)": lambda: log.append([record] * 8),
            "model alone: ONNX Runtime session.run, 1 row": lambda: session.run(None, feeds),
        }
        print(f"{'stage':<66} {'median us':>10}")
        for name, fn in stages.items():
            us = _median_us(fn, args.repeat)
            if "8 requests" in name:
                us /= 8
            print(f"{name:<66} {us:>10.1f}")


def _feeds(predictor, features):
    import numpy as np

    columns = np.ascontiguousarray(features.numeric.T, dtype=np.float32)
    return {name: columns[i].reshape(-1, 1) for i, name in enumerate(predictor.schema.model_numeric)}


if __name__ == "__main__":
    main()
