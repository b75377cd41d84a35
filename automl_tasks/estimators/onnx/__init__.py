"""ONNX conversion of the estimators' pipelines, beside the steps it converts."""
