"""Read a user's table (CSV or Parquet) and infer the learning task from its target."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from automl_tasks.core.errors import DatasetNotFoundError, DataValidationError, InvalidValueError

log = logging.getLogger(__name__)

TASK_TYPES = ("binary", "multiclass", "regression")
_MAX_CLASSES = 50
# byte-order marks, longest first (a UTF-32 LE mark starts with the UTF-16 LE one)
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 20


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV or Parquet by suffix; unreadable files raise with the file named.

    A CSV's encoding (a UTF-8 or UTF-16 byte-order mark) and delimiter (`,` `;` tab `|`)
    are detected from its first bytes and logged. Duplicate column names are refused,
    naming both positions: pandas would silently rename the second one (`x1.1`).
    """
    source = Path(path)
    if not source.exists():
        raise DatasetNotFoundError(f"dataset file {str(source)!r} does not exist")
    suffix = source.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            encoding, delimiter = sniff_csv(source)
            _refuse_duplicate_names(source, _csv_header(source, encoding, delimiter))
            return pd.read_csv(source, encoding=encoding, sep=delimiter)
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(source)
            _refuse_duplicate_names(source, [str(c) for c in frame.columns])
            return frame
    except DataValidationError:
        raise
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            str(source), ["table: rule table_not_empty: the file is empty (no header, no rows)"]
        ) from None
    except Exception as exc:  # pandas/pyarrow raise many types for broken files
        raise DataValidationError(
            str(source), [f"table: rule readable: could not parse the file as {suffix[1:]}: {exc}"]
        ) from exc
    raise DatasetNotFoundError(f"dataset file {str(source)!r} has suffix {suffix!r}; expected .csv or .parquet")


def sniff_csv(source: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV file, from its byte-order mark and its first lines."""
    with source.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    try:
        text = head.decode(encoding, errors="ignore" if encoding != "utf-8" else "strict")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut by the byte limit
            encoding = "latin-1"  # not UTF-8 and no byte-order mark: every byte is a latin-1 character
        text = head[: exc.start].decode("utf-8") if encoding == "utf-8" else head.decode(encoding)
    lines = text.lstrip("\ufeff").splitlines()[:_SNIFF_LINES]
    if len(lines) > 1 and len(lines) == _SNIFF_LINES:
        lines = lines[:-1]  # the last line may be cut by the byte limit
    delimiter = ","
    if lines:
        try:
            delimiter = csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
        except csv.Error:
            delimiter = ","  # one column, or no consistent delimiter: pandas' default
    if encoding != "utf-8" or delimiter != ",":
        log.info("%s: read as %s with delimiter %r (detected)", source, encoding, delimiter)
    return encoding, delimiter


def _csv_header(source: Path, encoding: str, delimiter: str) -> list[str]:
    with source.open(encoding=encoding, newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


def _refuse_duplicate_names(source: Path, names: list[str]) -> None:
    """DataValidationError naming each duplicated column and its 1-based positions."""
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(names, 1):
        positions.setdefault(name.strip(), []).append(index)
    failures = [
        f"column {name!r}: rule unique_column_names: the header names it at positions "
        f"{' and '.join(map(str, where))}; rename one of them"
        for name, where in positions.items()
        if len(where) > 1
    ]
    if failures:
        raise DataValidationError(str(source), failures)


def infer_task_type(target: pd.Series) -> str:
    """binary / multiclass for few distinct labels or non-numeric targets, else regression."""
    values = target.dropna()
    n_unique = values.nunique()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "binary" if n_unique <= 2 else "multiclass"
    is_integral = bool((values == values.round()).all())
    if n_unique <= 2:
        return "binary"
    if is_integral and n_unique <= _MAX_CLASSES:
        return "multiclass"
    return "regression"


def resolve_task_type(requested: str, target: pd.Series) -> str:
    """The requested task type, or the inferred one for 'auto'."""
    if requested == "auto":
        return infer_task_type(target)
    if requested not in TASK_TYPES:
        raise InvalidValueError(f"task_type must be 'auto' or one of {TASK_TYPES}; got {requested!r}")
    return requested
