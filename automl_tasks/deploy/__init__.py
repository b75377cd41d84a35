"""Model export (ONNX) and deployment measurement."""
