"""The pipelines' trigger forms as typed requests, validated once at the edge.

Each request class checks every field by the rules of its DAG's form
(`automl_tasks.pipelines.forms`: type, limits, choices), the same rules Airflow applies
to the form; the checks a form cannot express (a dataset that exists, a family name,
a search space) follow. A default is the form's default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from automl_tasks.core.errors import ConfigurationError, UserError
from automl_tasks.data.bundled import BUNDLED
from automl_tasks.data.versioning import DATASET_URI_PREFIX, parse_dataset_uri
from automl_tasks.families.aliases import check_family_name
from automl_tasks.pipelines.forms import (
    ADAPTATION_FORM,
    ADAPTATION_METHODS,
    HPO_FORM,
    MINIATURISE_STEPS,
    NOCODE_FORM,
    RETRAIN_FORM,
    Form,
)
from automl_tasks.search_space import DEFAULT_TABULAR_SPACE, SearchSpace, load_search_space

if TYPE_CHECKING:
    from automl_tasks.algorithms import AlgorithmSpec
    from automl_tasks.families.promotion import GateConfig

T = TypeVar("T")


def _bad(name: str, expected: str, got: Any) -> ConfigurationError:
    return ConfigurationError(f"The {name!r} parameter must be {expected}. Got {got!r} instead.")


def request_from_conf(cls: type[T], form: Form, conf: dict[str, Any]) -> T:
    """A request from a DAG run's conf: unknown keys refused, None = default, 5.0 -> 5 for integers."""
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(conf) - known
    if unknown:
        raise ConfigurationError(f"unknown parameters {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**form.coerce({k: v for k, v in conf.items() if v is not None}))


def _default(form: Form, name: str) -> Any:
    return form[name].default


def check_deployment_goal(target: str, budget_ms: float, trade_off: bool, strategy: str) -> None:
    """Refuse a deployment goal that cannot be searched, before any trial runs, naming the field.

    A budget or a trade-off needs a target; the target must be a built-in one or one of the
    workspace's `deploy_targets.yaml` (read from `LOOPML_HOME`, as every task does), and its
    engine must run on this machine (TensorRT on a machine without an NVIDIA GPU says so);
    trading latency off needs a strategy that handles two objectives."""
    if not target:
        for name, given in (("latency_budget_ms", budget_ms), ("trade_off_latency", trade_off)):
            if given:
                raise ConfigurationError(
                    f"The {name!r} parameter needs a 'deploy_target' to measure latency on; got {name}={given!r} "
                    "with no target. Choose a target (e.g. edge-cpu) or leave it empty."
                )
        return
    from automl_tasks.core.settings import Workspace
    from automl_tasks.deploy.targets import TARGETS_FILE, load_targets

    home = Workspace.from_env().home
    try:
        targets = load_targets(home)
    except ConfigurationError as exc:
        raise ConfigurationError(f"The 'deploy_target' parameter cannot be checked: {exc}") from exc
    if target not in targets:
        raise ConfigurationError(
            f"The 'deploy_target' parameter must be a known deployment target: one of {sorted(targets)} "
            f"(built-in, or defined in {home / TARGETS_FILE}). Got {target!r} instead."
        )
    chosen = targets[target]
    reason = chosen.unavailable_reason()
    if reason:
        raise ConfigurationError(
            f"The 'deploy_target' parameter {target!r} runs on engine {chosen.engine!r}, which is unavailable on "
            f"this machine: {reason}. Choose another target."
        )
    if trade_off and strategy != "auto":
        from automl_tasks.search.strategies import STRATEGIES

        if strategy in STRATEGIES and not STRATEGIES[strategy].several_objectives:
            capable = sorted(n for n, s in STRATEGIES.items() if s.several_objectives)
            raise ConfigurationError(
                f"The 'strategy' parameter {strategy!r} optimises one objective and cannot be combined with "
                f"'trade_off_latency' (score and latency: two objectives). Choose 'auto' or one of {capable}."
            )


def check_dataset(dataset: Any) -> None:
    """A bundled name, an existing file, or a well-formed stored version URI (whether that
    version exists is checked where the workspace is known: intake)."""
    expected = f"a bundled name {sorted(BUNDLED)}, an existing CSV/Parquet file or dataset://NAME@VERSION"
    if not isinstance(dataset, str) or not dataset.strip():
        raise _bad("dataset", expected, dataset)
    if dataset.startswith(DATASET_URI_PREFIX):
        try:
            parse_dataset_uri(dataset)
        except UserError:
            raise _bad("dataset", expected, dataset) from None
    elif dataset not in BUNDLED and not Path(dataset).exists():
        raise _bad("dataset", expected, dataset)


def sql_steps_of(text: str) -> tuple[Any, ...]:
    """The form's `sql_features` YAML as SQL feature steps; a clear error for bad YAML."""
    import yaml

    from automl_tasks.features.sql_steps import parse_sql_steps

    if not text.strip():
        return ()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"The 'sql_features' parameter is not valid YAML: {exc}") from None
    return parse_sql_steps(value)


def dataset_name(dataset: str) -> str:
    """Name under which versions are stored: the bundled name, a stored version's name or the file's stem."""
    if dataset in BUNDLED:
        return dataset
    if dataset.startswith(DATASET_URI_PREFIX):
        return parse_dataset_uri(dataset)[0]
    stem = Path(dataset).stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).lstrip(".") or "dataset"


@dataclass(frozen=True)
class NoCodeRequest:
    """What a person asks for: a table, its target, and how much search to spend."""

    dataset: str
    target: str = _default(NOCODE_FORM, "target")
    task_type: str = _default(NOCODE_FORM, "task_type")
    metric: str = _default(NOCODE_FORM, "metric")
    n_trials: int = _default(NOCODE_FORM, "n_trials")
    n_workers: int = _default(NOCODE_FORM, "n_workers")
    time_budget_s: int = _default(NOCODE_FORM, "time_budget_s")
    search_space: str = _default(NOCODE_FORM, "search_space")  # YAML text or a path; empty = the tabular space
    family: str = _default(NOCODE_FORM, "family")  # registered model name; empty = derived from the dataset name
    seed: int = _default(NOCODE_FORM, "seed")
    strategy: str = _default(NOCODE_FORM, "strategy")  # a strategy name, or auto (the formatter picks one, says why)
    deploy_target: str = _default(NOCODE_FORM, "deploy_target")  # "" = none; else measured on it (issue #12)
    latency_budget_ms: float = _default(NOCODE_FORM, "latency_budget_ms")  # 0 = none
    trade_off_latency: bool = _default(NOCODE_FORM, "trade_off_latency")  # score and latency: two objectives
    ensemble: bool = _default(NOCODE_FORM, "ensemble")  # may register an ensemble of the best trials
    warm_start_study: str = _default(NOCODE_FORM, "warm_start_study")  # "" = none; else its fitting configs go first
    auto_features: bool = _default(NOCODE_FORM, "auto_features")  # automatic feature steps (issue #15)
    text_embeddings: bool = _default(NOCODE_FORM, "text_embeddings")  # MiniLM sentence vectors of text columns
    sql_features: str = _default(NOCODE_FORM, "sql_features")  # YAML list of {name, sql}
    keep_columns: str = _default(NOCODE_FORM, "keep_columns")  # comma-separated flagged columns to keep
    feature_pipeline: str = _default(NOCODE_FORM, "feature_pipeline")  # "" = fit one; else a version to reuse
    trust_report: bool = _default(NOCODE_FORM, "trust_report")  # measure robustness and privacy (issue #17)
    dp_epsilon: float = _default(NOCODE_FORM, "dp_epsilon")  # > 0: DP-SGD torch MLP only, at this epsilon

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        NOCODE_FORM.check(self)
        self.sql_steps()  # a malformed list names the step and the fault
        if self.family:
            check_family_name(self.family)
        check_deployment_goal(self.deploy_target, self.latency_budget_ms, self.trade_off_latency, self.strategy)
        self.space()  # raises SearchSpaceError with the YAML path of the fault
        if self.dp_epsilon:
            self.searched_space_text()  # a space without the DP-capable model is refused, with why

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> NoCodeRequest:
        return request_from_conf(cls, NOCODE_FORM, conf)

    @property
    def dataset_name(self) -> str:
        return dataset_name(self.dataset)

    @property
    def family_name(self) -> str:
        return self.family or self.dataset_name

    def space_text(self) -> str:
        return self.search_space or DEFAULT_TABULAR_SPACE.read_text()

    def searched_space_text(self) -> str:
        """The space the search runs: the requested one, restricted to DP-SGD models when
        `dp_epsilon` asks for differential privacy (search_space/privacy)."""
        from automl_tasks.search_space.privacy import searched_space

        return searched_space(self.space_text(), self.dp_epsilon)

    def sql_steps(self) -> tuple[Any, ...]:
        """The SQL feature steps of the form (`features.sql_steps.SqlStep`)."""
        return sql_steps_of(self.sql_features)

    @property
    def kept_columns(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.keep_columns.split(",") if c.strip())

    def space(self) -> SearchSpace:
        return load_search_space(self.space_text())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HpoRequest:
    """The HPO form: an algorithm searched on a dataset, compared with its defaults."""

    algorithm: str = _default(HPO_FORM, "algorithm")  # a built-in or registered name, or a folder with algorithm.yaml
    dataset: str = _default(HPO_FORM, "dataset")
    target: str = _default(HPO_FORM, "target")
    task_type: str = _default(HPO_FORM, "task_type")
    metric: str = _default(HPO_FORM, "metric")  # its direction follows from the metric
    strategy: str = _default(HPO_FORM, "strategy")
    n_trials: int = _default(HPO_FORM, "n_trials")  # 0 = the formatter picks it from the data size (or grid size)
    time_budget_s: int = _default(HPO_FORM, "time_budget_s")
    max_epochs: int = _default(HPO_FORM, "max_epochs")  # fidelity budget per trial; 0 = each configuration's own
    n_workers: int = _default(HPO_FORM, "n_workers")
    repeats: int = _default(HPO_FORM, "repeats")  # split seeds for the default-vs-search comparison
    family: str = _default(HPO_FORM, "family")
    seed: int = _default(HPO_FORM, "seed")
    deploy_target: str = _default(HPO_FORM, "deploy_target")  # the search branch only; "" = none
    latency_budget_ms: float = _default(HPO_FORM, "latency_budget_ms")
    trade_off_latency: bool = _default(HPO_FORM, "trade_off_latency")
    ensemble: bool = _default(HPO_FORM, "ensemble")  # the built-in tabular algorithm only
    trust_report: bool = _default(HPO_FORM, "trust_report")  # measure robustness and privacy (issue #17)
    dp_epsilon: float = _default(HPO_FORM, "dp_epsilon")  # > 0: every branch trains with DP-SGD

    def __post_init__(self) -> None:
        HPO_FORM.check(self)
        self.nocode()  # dataset, family checked by the same rules as NoCode
        if self.dp_epsilon:
            self.space_yaml()  # an algorithm without a DP trainer is refused, with why
        check_deployment_goal(self.deploy_target, self.latency_budget_ms, self.trade_off_latency, self.strategy)

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> HpoRequest:
        return request_from_conf(cls, HPO_FORM, conf)

    def nocode(self) -> NoCodeRequest:
        return NoCodeRequest(
            dataset=self.dataset,
            target=self.target,
            task_type=self.task_type,
            metric=self.metric,
            n_trials=self.n_trials,
            n_workers=self.n_workers,
            time_budget_s=self.time_budget_s,
            family=self.family,
            seed=self.seed,
        )

    def spec(self) -> AlgorithmSpec:
        from automl_tasks.algorithms import resolve

        return resolve(None, self.algorithm)

    def space_yaml(self) -> str:
        """The algorithm's space, restricted to DP-SGD training when `dp_epsilon` asks for it."""
        from automl_tasks.search_space.privacy import searched_space

        return searched_space(self.spec().space_yaml, self.dp_epsilon)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _choices(name: str, value: str, known: tuple[str, ...], *, none_allowed: bool = False) -> tuple[str, ...]:
    """A comma-separated list of known choices, in the order given, without repeats."""
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if none_allowed and items == ("none",):
        return ()
    unknown = [v for v in items if v not in known]
    if not items or unknown:
        allowed = f"a comma-separated list from {list(known)}" + (" or 'none'" if none_allowed else "")
        raise _bad(name, allowed, value)
    return items


@dataclass(frozen=True)
class AdaptationRequest:
    """The large_model_adaptation form: texts with labels, a base model, methods and a target."""

    dataset: str = _default(ADAPTATION_FORM, "dataset")
    text_column: str = _default(ADAPTATION_FORM, "text_column")
    target: str = _default(ADAPTATION_FORM, "target")
    base_model: str = _default(ADAPTATION_FORM, "base_model")
    methods: str = _default(ADAPTATION_FORM, "methods")
    miniaturise: str = _default(ADAPTATION_FORM, "miniaturise")
    deploy_target: str = _default(ADAPTATION_FORM, "deploy_target")
    latency_budget_ms: float = _default(ADAPTATION_FORM, "latency_budget_ms")
    strategy: str = _default(ADAPTATION_FORM, "strategy")
    n_trials: int = _default(ADAPTATION_FORM, "n_trials")
    time_budget_s: int = _default(ADAPTATION_FORM, "time_budget_s")
    max_epochs: int = _default(ADAPTATION_FORM, "max_epochs")
    n_workers: int = _default(ADAPTATION_FORM, "n_workers")
    family: str = _default(ADAPTATION_FORM, "family")
    seed: int = _default(ADAPTATION_FORM, "seed")
    trust_report: bool = _default(ADAPTATION_FORM, "trust_report")  # token noise and membership inference

    def __post_init__(self) -> None:
        ADAPTATION_FORM.check(self)
        if self.dataset not in BUNDLED and not Path(self.dataset).exists():
            raise _bad("dataset", "the bundled fine_foods or an existing CSV/Parquet file", self.dataset)
        if self.family:
            check_family_name(self.family)
        self.method_list()
        self.step_list()
        check_deployment_goal(self.deploy_target, self.latency_budget_ms, False, self.strategy)
        self.base_model_path()

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> AdaptationRequest:
        return request_from_conf(cls, ADAPTATION_FORM, conf)

    def method_list(self) -> tuple[str, ...]:
        return _choices("methods", self.methods, ADAPTATION_METHODS)

    def step_list(self) -> tuple[str, ...]:
        return _choices("miniaturise", self.miniaturise, MINIATURISE_STEPS, none_allowed=True)

    def base_model_path(self) -> Path:
        from automl_tasks.core.base_model import resolve_base_model

        try:
            return resolve_base_model(self.base_model)
        except ConfigurationError as exc:
            raise ConfigurationError(f"The 'base_model' parameter: {exc}") from None

    @property
    def dataset_name(self) -> str:
        return dataset_name(self.dataset)

    @property
    def family_name(self) -> str:
        return self.family or f"{self.dataset_name}-text"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetrainRequest:
    """The drift_retrain form (filled by drift_check when it triggers a retrain)."""

    family: str
    window_uri: str = _default(RETRAIN_FORM, "window_uri")  # dataset://<family>.window@... stored by drift_check
    data_path: str = _default(RETRAIN_FORM, "data_path")  # or a labelled file with the champion's columns and target
    combine: str = _default(RETRAIN_FORM, "combine")
    eval_fraction: float = _default(RETRAIN_FORM, "eval_fraction")  # recent labelled rows held out for evaluation
    n_trials: int = _default(RETRAIN_FORM, "n_trials")
    n_workers: int = _default(RETRAIN_FORM, "n_workers")
    time_budget_s: int = _default(RETRAIN_FORM, "time_budget_s")
    search_space: str = _default(RETRAIN_FORM, "search_space")  # empty = the parent study's space
    margin: float = _default(RETRAIN_FORM, "margin")  # the promotion gate's required improvement
    max_latency_ratio: float = _default(RETRAIN_FORM, "max_latency_ratio")  # the gate's guard ratios
    max_size_ratio: float = _default(RETRAIN_FORM, "max_size_ratio")
    max_attack_auc: float = _default(RETRAIN_FORM, "max_attack_auc")  # trust thresholds (0 = the family's own)
    min_robust_accuracy: float = _default(RETRAIN_FORM, "min_robust_accuracy")
    max_dp_epsilon: float = _default(RETRAIN_FORM, "max_dp_epsilon")
    seed: int = _default(RETRAIN_FORM, "seed")
    reason: str = _default(RETRAIN_FORM, "reason")  # why the retrain runs (drift_check's verdict)
    feature_pipeline: str = _default(RETRAIN_FORM, "feature_pipeline")  # "" = the champion's; "new"; a version

    def __post_init__(self) -> None:
        RETRAIN_FORM.check(self)
        check_family_name(self.family)
        if bool(self.window_uri) == bool(self.data_path):
            raise ConfigurationError("give exactly one of 'window_uri' (from drift_check) and 'data_path'")
        if self.data_path and not Path(self.data_path).exists():
            raise ConfigurationError(f"The 'data_path' parameter must name an existing file. Got {self.data_path!r}.")
        self.gate()
        if self.search_space:
            load_search_space(self.search_space)

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> RetrainRequest:
        return request_from_conf(cls, RETRAIN_FORM, conf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gate(self) -> GateConfig:
        from automl_tasks.families.promotion import GateConfig

        return GateConfig(
            self.margin,
            self.max_latency_ratio,
            self.max_size_ratio,
            self.max_attack_auc,
            self.min_robust_accuracy,
            self.max_dp_epsilon,
        )
