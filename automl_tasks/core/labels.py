"""Target labels: one canonical form for training, the user's own type for answers.

Why this exists (issue #18): a classification target could reach training in several
dtypes. A table read by pandas gives int64; the same labels coming back through
POST /feedback are JSON values, and the inference log's `_label` column becomes float64
as soon as one row of the window has no label (pandas turns [1, 0, None] into
[1.0, 0.0, NaN]). Concatenated with the int64 reference rows, the retraining target was
float64, so the torch MLP learned `classes_ = [0.0, 1.0]`. skl2onnx declares an int64
label output for any numeric classes, while loopml's MLP converter gathered the classes
as strings ("0.0", "1.0"); ONNX Runtime then refused the file with "Type (tensor(int64))
of output arg (label) of node (Ga_Gather) does not match expected type
(tensor(string))". Tree models hid the problem because skl2onnx's own converters cast
numeric classes to int64.

So labels are normalised once, where they enter (data_preprocess, and the feedback
window in drift_check / drift_retrain), with a `LabelSpec`:

- canonical form (what models are trained on and what ONNX outputs): int64 for integer,
  bool and integral-float labels; text for everything else (strings, categoricals,
  non-integral floats);
- the spec (kind + class list in the user's type) is stored with every registered
  version (`LABEL_SPEC_FILE` artifact and `LABEL_KIND_TAG`), and export, serving and
  retrain read it from there; the service answers in the user's type.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl_tasks.core.errors import InvalidValueError, UserError
from automl_tasks.core.tags import RUN_ID_TAG

#: run artifact of a registered version (and of a pipeline's parent run) holding its LabelSpec
LABEL_SPEC_FILE = "label_spec.json"

KINDS = ("int", "float", "bool", "str", "number")


class LabelError(UserError):
    """A label that does not fit the family's label type; the message names values and type."""


def _is_integral(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value) == int(value)


def _kind_of(values: Sequence[Any], dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype) or (values and all(isinstance(v, (bool, np.bool_)) for v in values)):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    numbers_only = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))]
    if values and len(numbers_only) == len(values):
        return "int" if all(isinstance(v, numbers.Integral) for v in values) else "float"
    return "str"


@dataclass(frozen=True)
class LabelSpec:
    """The kind of a family's target and, for classification, its classes in the user's type."""

    kind: str
    classes: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidValueError(f"label kind must be one of {KINDS}; got {self.kind!r}")

    @property
    def is_classification(self) -> bool:
        return self.kind != "number"

    @property
    def integer_canonical(self) -> bool:
        """Canonical labels are int64 (else text)."""
        return self.kind in ("int", "bool") or (self.kind == "float" and all(_is_integral(c) for c in self.classes))

    @classmethod
    def infer(cls, target: pd.Series | Sequence[Any], task_type: str) -> LabelSpec:
        """The spec of a target column as the user gave it (missing values ignored)."""
        series = target if isinstance(target, pd.Series) else pd.Series(list(target), dtype=object)
        if task_type == "regression":
            return cls("number")
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(series.cat.categories.dtype)
        present = series.dropna()
        values = present.tolist()
        kind = _kind_of(values, present.dtype if len(present) else series.dtype)
        spec = cls(kind)
        integer = kind in ("int", "bool") or (kind == "float" and all(_is_integral(v) for v in values))
        canonical = spec._encode_values(values, integer)
        return cls(kind, tuple(spec._decode_values(sorted(set(canonical)))))

    def with_classes(self, labels: Iterable[Any]) -> LabelSpec:
        """This spec with the classes of `labels` (already in the user's type) added."""
        if not self.is_classification:
            return self
        canonical = set(self.encode(list(self.classes))) | set(self.encode(list(labels)))
        return LabelSpec(self.kind, tuple(self._decode_values(sorted(canonical))))

    # --- user type -> canonical ------------------------------------------------------------

    def _encode_one(self, value: Any, integer: bool) -> Any:
        if isinstance(value, (bool, np.bool_)):
            value = bool(value)
            if integer:
                return int(value)
        if integer:
            if isinstance(value, str):
                text = value.strip().lower()
                if self.kind == "bool" and text in ("true", "false"):
                    return int(text == "true")
                try:
                    value = float(text)
                except ValueError:
                    raise LabelError(f"label {value!r} is not a {self.kind} label") from None
            if not _is_integral(value):
                raise LabelError(f"label {value!r} is not a {self.kind} label (whole numbers expected)")
            number = int(value)
            if self.kind == "bool" and number not in (0, 1):
                raise LabelError(f"label {value!r} is not a bool label (true/false or 0/1 expected)")
            return number
        if self.kind == "float" and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise LabelError(f"label {value!r} is not a float label") from None
        if isinstance(value, float) and self.kind != "float" and _is_integral(value):
            return str(int(value))  # a JSON 1.0 for the text class "1"
        return repr(float(value)) if self.kind == "float" else str(value)

    def _encode_values(self, values: Sequence[Any], integer: bool) -> list[Any]:
        return [self._encode_one(v, integer) for v in values]

    def encode(self, labels: Any) -> np.ndarray:
        """Canonical labels (int64 or text) of labels in the user's type; regression: float64.

        Raises LabelError naming the first label that does not fit the spec's kind."""
        values = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        if not self.is_classification:
            try:
                return np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise LabelError(f"regression targets must be numbers; got e.g. {values[:3]}") from None
        missing = [v for v in values if v is None or (isinstance(v, float) and math.isnan(v))]
        if missing:
            raise LabelError("labels must not be missing; drop unlabelled rows first")
        encoded = self._encode_values(values, self.integer_canonical)
        if self.integer_canonical:
            return np.asarray(encoded, dtype=np.int64)
        return np.asarray(encoded, dtype=object)

    def fits(self, label: Any) -> bool:
        """Whether `label` can be read as a label of this spec's kind."""
        try:
            self.encode([label])
        except LabelError:
            return False
        return True

    def encode_column(self, frame: pd.DataFrame, target: str) -> pd.DataFrame:
        """`frame` with its target in canonical form; every row must be labelled."""
        out = frame.copy()
        out[target] = self.encode(out[target])
        return out

    # --- canonical -> user type ------------------------------------------------------------

    def _decode_values(self, canonical: Sequence[Any]) -> list[Any]:
        if self.kind == "bool":
            return [bool(int(v)) for v in canonical]
        if self.kind == "int":
            return [int(v) for v in canonical]
        if self.kind == "float":
            return [float(v) for v in canonical]
        return [str(v) for v in canonical]

    def decode(self, predictions: Any) -> np.ndarray:
        """Model outputs (canonical labels, or regression values) in the user's type."""
        values = np.asarray(predictions).ravel()
        if not self.is_classification:
            return values.astype(np.float64)
        dtype = {"bool": np.bool_, "int": np.int64, "float": np.float64}.get(self.kind, np.str_)
        return np.asarray(self._decode_values(values.tolist()), dtype=dtype)

    # --- storage -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpec:
        return cls(data["kind"], tuple(data.get("classes") or ()))

    @classmethod
    def from_json(cls, text: str) -> LabelSpec:
        return cls.from_dict(json.loads(text))


def load_label_spec(run_id: str) -> LabelSpec | None:
    """The LabelSpec logged with an MLflow run (a version's run or a pipeline's parent run),
    through the process's MLflow store (`tracking.mlflow_client` sets it); None when the run
    logged none (versions registered before label specs existed) or no longer exists.

    A store that cannot be read raises: answering None would serve, monitor and retrain the
    version in its label codes instead of the user's labels, and nothing would say so."""
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    # listed before it is fetched: a failed download does not tell "never logged" (None) from
    # "the store cannot be read" (raise); the listing's answer does
    try:
        logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if LABEL_SPEC_FILE not in logged:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, LABEL_SPEC_FILE, folder)
        with open(path) as handle:
            return LabelSpec.from_json(handle.read())


def normalise_target(
    frame: pd.DataFrame, target: str, task_type: str, *, source: str
) -> tuple[pd.DataFrame, LabelSpec]:
    """The table as it is stored and trained on: labelled rows only, target in canonical form.

    Called once where a table enters (data_preprocess). Rows without a target cannot be
    learned from and are dropped (and counted in the log)."""
    import logging

    from automl_tasks.core.errors import DataValidationError

    labelled = frame[frame[target].notna()]
    if len(labelled) < len(frame):
        logging.getLogger(__name__).warning(
            "%s: %d rows have no %r value and are not used", source, len(frame) - len(labelled), target
        )
    spec = LabelSpec.infer(labelled[target], task_type)
    try:
        return spec.encode_column(labelled.reset_index(drop=True), target), spec
    except LabelError as exc:
        raise DataValidationError(source, [f"column {target!r}: rule label_type: {exc}"]) from None


def normalise_feedback_labels(frame: pd.DataFrame, target: str, spec: LabelSpec, *, source: str) -> pd.DataFrame:
    """Labelled rows of a feedback window (JSON labels) with the target in the family's canonical form."""
    from automl_tasks.core.errors import DataValidationError

    labelled = frame[frame[target].notna()]
    try:
        return spec.encode_column(labelled, target)
    except LabelError as exc:
        raise DataValidationError(
            source, [f"column {target!r}: rule label_type: {exc}; the family's labels are {spec.kind}"]
        ) from None


def version_label_spec(tags: dict[str, str]) -> LabelSpec | None:
    """The LabelSpec of a registered version, from its tags (`loopml.run_id` names its run)."""
    run_id = tags.get(RUN_ID_TAG)
    return load_label_spec(run_id) if run_id else None
