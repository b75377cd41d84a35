"""Model monitoring: the serving inference log (read by drift checks)."""

from automl_tasks.monitoring.inference_log import InferenceLog, InferenceRecord, open_inference_log

__all__ = ["InferenceLog", "InferenceRecord", "open_inference_log"]
