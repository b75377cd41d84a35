"""Data management: bundled tables, ingest, validation, versions, profiles, splits."""

from automl_tasks.data.bundled import BUNDLED, bundled_frame, write_bundled_csv
from automl_tasks.data.ingest import infer_task_type, read_table, resolve_task_type
from automl_tasks.data.profile import profile_table
from automl_tasks.data.splits import Splits, make_splits
from automl_tasks.data.validation import validate_table
from automl_tasks.data.versioning import DatasetStore, DatasetVersion, dataset_uri, parse_dataset_uri

__all__ = [
    "BUNDLED",
    "DatasetStore",
    "DatasetVersion",
    "Splits",
    "bundled_frame",
    "dataset_uri",
    "infer_task_type",
    "make_splits",
    "parse_dataset_uri",
    "profile_table",
    "read_table",
    "resolve_task_type",
    "validate_table",
    "write_bundled_csv",
]
