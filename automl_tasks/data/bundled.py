"""Tables that ship with scikit-learn, written to CSV so they flow like user data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl_tasks.core.errors import DatasetNotFoundError

#: bundled name -> (scikit-learn loader name, target column written to the CSV)
BUNDLED = {
    "breast_cancer": ("load_breast_cancer", "target"),
    "wine": ("load_wine", "target"),
    "diabetes": ("load_diabetes", "target"),
    "digits": ("load_digits", "target"),
    "iris": ("load_iris", "target"),
}


def bundled_frame(name: str) -> pd.DataFrame:
    """The bundled table `name` as a DataFrame with a `target` column."""
    if name not in BUNDLED:
        raise DatasetNotFoundError(f"unknown bundled dataset {name!r}; expected one of {sorted(BUNDLED)}")
    import sklearn.datasets

    loader = getattr(sklearn.datasets, BUNDLED[name][0])
    frame = loader(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


def write_bundled_csv(name: str, folder: Path) -> Path:
    """Write the bundled table to `folder/<name>.csv` (once) and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    if not path.exists():
        tmp = path.with_suffix(".csv.tmp")
        bundled_frame(name).to_csv(tmp, index=False)
        tmp.replace(path)
    return path
