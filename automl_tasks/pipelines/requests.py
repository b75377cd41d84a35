"""The NoCode trigger form as a typed request, validated once at the edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.data.bundled import BUNDLED
from automl_tasks.families.aliases import check_family_name
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, SearchSpace, load_search_space

T = TypeVar("T")
TASK_CHOICES = ("auto", "binary", "multiclass", "regression")
METRIC_CHOICES = ("auto", "roc_auc", "accuracy", "f1_macro", "log_loss", "r2", "rmse", "mae")


def _bad(name: str, expected: str, got: Any) -> ConfigurationError:
    return ConfigurationError(f"The {name!r} parameter must be {expected}. Got {got!r} instead.")


def check_integer_ranges(request: Any, ranges: tuple[tuple[str, int, int], ...]) -> None:
    """Refuse any named field of `request` that is not an integer in its [low, high]."""
    for name, low, high in ranges:
        value = getattr(request, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _bad(name, f"an integer in [{low}, {high}]", value)


def request_from_conf(cls: type[T], conf: dict[str, Any]) -> T:
    """A form dataclass from a DAG run's conf: unknown keys refused, None = default, 5.0 -> 5."""
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(conf) - known
    if unknown:
        raise ConfigurationError(f"unknown parameters {sorted(unknown)}; expected some of {sorted(known)}")
    values = {k: v for k, v in conf.items() if v is not None}
    for name in ("n_trials", "n_workers", "time_budget_s", "seed"):
        if isinstance(values.get(name), float) and values[name].is_integer():
            values[name] = int(values[name])
    return cls(**values)


@dataclass(frozen=True)
class NoCodeRequest:
    """What a person asks for: a table, its target, and how much search to spend."""

    dataset: str
    target: str = "target"
    task_type: str = "auto"
    metric: str = "auto"
    n_trials: int = 20
    n_workers: int = 2
    time_budget_s: int = 600
    search_space: str = ""  # YAML text or a path; empty = the default tabular space
    family: str = ""  # registered model name; empty = derived from the dataset name
    seed: int = 0
    strategy: str = "auto"  # a search strategy name, or auto (the formatter picks one and says why)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise _bad("dataset", f"a bundled name {sorted(BUNDLED)} or a path to a CSV/Parquet file", self.dataset)
        if self.dataset not in BUNDLED and not Path(self.dataset).exists():
            raise _bad("dataset", f"a bundled name {sorted(BUNDLED)} or an existing CSV/Parquet file", self.dataset)
        if not isinstance(self.target, str) or not self.target:
            raise _bad("target", "the name of the target column", self.target)
        if self.task_type not in TASK_CHOICES:
            raise _bad("task_type", f"one of {list(TASK_CHOICES)}", self.task_type)
        if self.metric not in METRIC_CHOICES:
            raise _bad("metric", f"one of {list(METRIC_CHOICES)}", self.metric)
        check_integer_ranges(self, (("n_trials", 0, 10_000), ("n_workers", 1, 64), ("time_budget_s", 10, 7 * 86_400)))
        if self.family:
            check_family_name(self.family)
        self.space()  # raises SearchSpaceError with the YAML path of the fault
        from automl_tasks.search.strategies import STRATEGIES

        if self.strategy != "auto" and self.strategy not in STRATEGIES:
            raise _bad("strategy", f"'auto' or one of {sorted(STRATEGIES)}", self.strategy)

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> NoCodeRequest:
        return request_from_conf(cls, conf)

    @property
    def dataset_name(self) -> str:
        """Name under which versions are stored: the bundled name or the file's stem."""
        if self.dataset in BUNDLED:
            return self.dataset
        stem = Path(self.dataset).stem
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).lstrip(".") or "dataset"

    @property
    def family_name(self) -> str:
        return self.family or self.dataset_name

    def space_text(self) -> str:
        return self.search_space or DEFAULT_TABULAR_SPACE.read_text()

    def space(self) -> SearchSpace:
        return load_search_space(self.space_text())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
