"""The formatter: turns the trigger form and the dataset profile into a search plan.

It picks the trial budget when the form leaves it on 'auto', creates the study, and
enqueues the space's default configuration plus the best configurations of earlier
studies of the same family and search space (the knowledge base), so a new search
starts from what already worked.
"""

from __future__ import annotations

import logging
from typing import Any

from automl_tasks.core.errors import ConfigurationError
from automl_tasks.core.tags import FAMILY_TAG, ORIGIN_TAG, PORTFOLIO_SOURCE_ATTR, SPACE_HASH_TAG, TRAITS_ATTR
from automl_tasks.search.plan import SearchPlan
from automl_tasks.search.storage import create_study, open_storage
from automl_tasks.search_space import SearchSpace

log = logging.getLogger(__name__)

WARM_START_TOP_K = 3
#: a flat space of at most `GP_MAX_PARAMS` parameters is searched by Gaussian-process BO up to
#: this many trials: on NAS-Bench-201 (80 evaluations, 6 categorical parameters, 10 seeds)
#: GP scored 91.51 +- 0.03 against TPE's 91.30 +- 0.08 on CIFAR-10 and was level or ahead on
#: CIFAR-100 and ImageNet-16-120 (docs/BENCHMARKS.md); its sampler costs 0.1-0.4 s a trial there
GP_MAX_TRIALS = 80
GP_MAX_PARAMS = 10


def choose_trial_budget(requested: int, profile: dict[str, Any]) -> int:
    """The requested budget, or for 0 ('auto') one that scales down with the table's size."""
    if requested > 0:
        return requested
    cells = profile["rows"] * max(1, profile["columns"])
    budget = 40 if cells < 200_000 else 25 if cells < 5_000_000 else 12
    log.info("formatter: auto trial budget %d for %d rows x %d columns", budget, profile["rows"], profile["columns"])
    return budget


def choose_strategy(
    requested: str,
    space: SearchSpace,
    n_trials: int,
    profile: dict[str, Any] | None = None,
    *,
    fidelity: bool = False,
    trade_off: bool = False,
) -> tuple[str, str]:
    """(strategy name, why): the form's choice if any, else one picked from the space's
    size and shape, the budget, the dataset's size and whether the algorithm has a fidelity.

    With `trade_off` (score vs latency on the deployment target: two objectives) only a
    strategy that handles several objectives will do; 'auto' falls back to multi-objective
    TPE when its first pick cannot."""
    from automl_tasks.search.strategies import STRATEGIES

    name, why = _choose_strategy(requested, space, n_trials, profile, fidelity=fidelity)
    if trade_off and not STRATEGIES[name].several_objectives:
        if requested and requested != "auto":
            raise ConfigurationError(
                f"The 'strategy' parameter {requested!r} optimises one objective; 'trade_off_latency' makes the "
                f"search two-objective (score, latency). Choose one of {several_objective_strategies()}"
            )
        return "tpe", f"multi-objective TPE: the search trades latency off against the score ({name} cannot)"
    return name, why


def several_objective_strategies() -> list[str]:
    """Names of the strategies a two-objective (score, latency) search may use."""
    from automl_tasks.search.strategies import STRATEGIES

    return sorted(n for n, s in STRATEGIES.items() if s.several_objectives)


def _choose_strategy(
    requested: str, space: SearchSpace, n_trials: int, profile: dict[str, Any] | None = None, *, fidelity: bool = False
) -> tuple[str, str]:
    from automl_tasks.core.errors import SearchSpaceError
    from automl_tasks.search.strategies import make_strategy

    if requested and requested != "auto":
        strategy = make_strategy(requested, space=space)  # refuses unknown names and too-large grids
        if strategy.needs_fidelity and not fidelity:
            raise ConfigurationError(
                f"strategy {requested!r} needs intermediate rewards (epochs, boosting rounds) and this algorithm "
                "reports none; choose another strategy"
            )
        return requested, "chosen in the trigger form"
    try:
        points = len(space.grid(5, limit=n_trials))
        return (
            "grid",
            f"the space has only {points} points (5 per numeric range), no more than the {n_trials}-trial budget: try them all",
        )
    except SearchSpaceError:
        pass
    conditional = bool(space.conditions) or any(p.children for p in space.params)
    numeric = [name for name in space.names() if (param := space.find(name)) is not None and param.is_numeric]
    all_numeric = len(numeric) == len(space.names())
    cells = (profile or {}).get("rows", 0) * max(1, (profile or {}).get("columns", 1))
    if fidelity and n_trials >= 30:
        return (
            "hyperband",
            f"the algorithm reports intermediate rewards and the budget is {n_trials} trials: stop poor trials early",
        )
    if all_numeric and not conditional and n_trials >= 100 and len(numeric) >= 3:
        return "cmaes", f"{len(numeric)} numeric parameters, no conditions and a {n_trials}-trial budget suit CMA-ES"
    if not conditional and len(space.names()) <= GP_MAX_PARAMS and (n_trials <= GP_MAX_TRIALS or cells > 5_000_000):
        size = (
            f"a {n_trials}-trial budget" if n_trials <= GP_MAX_TRIALS else f"expensive trials ({cells:,} cells of data)"
        )
        return (
            "gp",
            f"a flat space of {len(space.names())} parameters and {size}: Gaussian-process BO uses each trial best",
        )
    why = "a conditional space" if conditional else f"{len(space.names())} parameters"
    return "tpe", f"{why}: multivariate TPE, grouped by branch, with constant liar for parallel workers"


def cross_validates(profile: dict[str, Any], time_budget_s: float) -> bool:
    """Whether the search scores its trials by k-fold CV, from the table's size, its rarest
    class and the time budget (`estimators.tabular.cross_validate_within`); the plan records it."""
    from automl_tasks.estimators.tabular import cross_validate_within

    features = max(int(profile["columns"]) - 1, 1)  # the profile counts the target column
    return cross_validate_within(int(profile["rows"]), features, time_budget_s, rarest_class_rows(profile))


def rarest_class_rows(profile: dict[str, Any]) -> int | None:
    """The rows of the profiled table's rarest class; None for regression."""
    classes = profile.get("class_balance") or {}
    return min(classes.values()) if classes else None


def fit_space_to_budget(space_text: str, profile: dict[str, Any], time_budget_s: float):
    """The space to search: slow model choices left out when the time budget is small for
    the table (`automl_tasks.search_space.budget`); says what it left out, and why, in the log.
    Returns a `BudgetFit` (its `reason` goes into the plan)."""
    from automl_tasks.estimators.tabular import CV_FOLDS
    from automl_tasks.search_space.budget import fit_space_to_budget as fit

    rows = int(profile["rows"])
    evaluations = CV_FOLDS if cross_validates(profile, time_budget_s) else 1
    result = fit(space_text, rows=rows, time_budget_s=time_budget_s, evaluations=evaluations)
    if result.dropped:
        log.info("formatter: %s", result.reason)
    return result


def add_feature_params(space_text: str, feature_pipeline_path: str, task_type: str) -> str:
    """The space with the search parameters of the run's feature pipeline groups added
    (`FeaturePipeline.search_params`: datetime cycles, text components, interactions,
    high-cardinality encoding), unless the space already has a parameter of that name.
    Unchanged when the run has no feature pipeline or it has no such group."""
    import yaml

    from automl_tasks.features.store import read_feature_pipeline

    if not feature_pipeline_path:
        return space_text
    params = read_feature_pipeline(feature_pipeline_path).search_params(task_type)
    document = yaml.safe_load(space_text)
    present = {p.get("name") for p in document.get("params", [])}
    added = [p for p in params if p["name"] not in present]
    if not added:
        return space_text
    document["params"] = [*document.get("params", []), *added]
    log.info("formatter: feature groups searched: %s", ", ".join(p["name"] for p in added))
    return yaml.safe_dump(document, sort_keys=False)


def warm_start_configs(
    optuna_uri: str,
    family: str,
    space_hash: str,
    *,
    exclude: str,
    top_k: int = WARM_START_TOP_K,
    only_study: str | None = None,
    space: SearchSpace | None = None,
) -> list[dict[str, Any]]:
    """Best configurations of earlier studies of `family` over the same search space
    (of `only_study` alone when given: a retrain starts from its parent's search). With
    `space` and `only_study`, that study may have searched another version of the space:
    its configurations are projected into `space` (`SearchSpace.project`), misfits left out."""
    import optuna
    from optuna.trial import TrialState

    from automl_tasks.search.deployment import feasible

    storage = open_storage(optuna_uri)
    configs: list[tuple[float, dict[str, Any], str]] = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if summary.study_name == exclude or attrs.get(FAMILY_TAG) != family:
            continue
        if only_study is not None and summary.study_name != only_study:
            continue
        projecting = space is not None and only_study is not None
        if attrs.get(SPACE_HASH_TAG) != space_hash and not projecting:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        # the score is the first objective (a study trading latency off has a second one);
        # a configuration that missed its latency budget is no place to start from
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            params = space.project(t.params) if projecting else dict(t.params)
            if feasible(t) and params is not None:
                configs.append((sign * t.values[0], params, summary.study_name))
    configs.sort(key=lambda c: c[0])
    seen: list[dict[str, Any]] = []
    for _, params, _ in configs:
        if params not in seen:
            seen.append(params)
        if len(seen) == top_k:
            break
    return seen


def check_warm_start_study(optuna_uri: str, study_name: str, family: str) -> None:
    """Refuse a warm start from a study that does not exist or searched another family."""
    storage = open_storage(optuna_uri)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise ConfigurationError(
            f"The 'warm_start_study' parameter names study {study_name!r}, which does not exist in this workspace"
        ) from None
    searched = storage.get_study_user_attrs(study_id).get(FAMILY_TAG)
    if searched != family:
        raise ConfigurationError(
            f"The 'warm_start_study' parameter names study {study_name!r} of family {searched!r}; "
            f"this run registers family {family!r}: warm starts stay within a family"
        )


def start_search(
    optuna_uri: str, plan: SearchPlan, space: SearchSpace, *, warm_start_study: str | None = None
) -> dict[str, Any]:
    """Create the study, enqueue the default and warm-start configurations; return a summary.

    With `warm_start_study` (a retrain), that study's best configurations are enqueued
    first and the default after them; otherwise the default comes first.
    """
    from automl_tasks.search.strategies import make_strategy

    study = create_study(optuna_uri, plan)
    if study.trials:
        log.info(
            "study %s already has %d trials (task retried); not enqueuing again", plan.study_name, len(study.trials)
        )
        return {"study_name": plan.study_name, "enqueued": 0, "warm_start": 0}
    default = space.default_config()
    found = warm_start_configs(
        optuna_uri, plan.family, plan.space_hash, exclude=plan.study_name, only_study=warm_start_study, space=space
    )
    warm = [c for c in found if c != default]
    if warm_start_study is None:
        study.enqueue_trial(default, user_attrs={ORIGIN_TAG: "default"})
    for config in warm:
        study.enqueue_trial(config, user_attrs={ORIGIN_TAG: "warm_start"}, skip_if_exists=True)
    if warm_start_study is not None:
        study.enqueue_trial(default, user_attrs={ORIGIN_TAG: "default"}, skip_if_exists=True)
    # a retrain starts from its parent's search, not from other tables' (its traits still count)
    portfolio = _portfolio(optuna_uri, study, plan, space, [default, *warm], lookup=warm_start_study is None)
    for config, source in portfolio:
        study.enqueue_trial(config, user_attrs={ORIGIN_TAG: "portfolio", PORTFOLIO_SOURCE_ATTR: source})
    make_strategy(plan.strategy, seed=plan.seed, space=space).prepare(study)  # a grid enqueues its points
    log.info(
        "formatter: study %s, strategy %s, %d trials, %d workers, time budget %.0fs, metric %s (%s); "
        "enqueued the default configuration, %d warm-start configurations from %s and %d from the "
        "portfolio%s%s",
        plan.study_name,
        plan.strategy,
        plan.n_trials,
        plan.n_workers,
        plan.time_budget_s,
        plan.metric,
        plan.direction,
        len(warm),
        f"study {warm_start_study}" if warm_start_study else f"earlier {plan.family} studies",
        len(portfolio),
        f" ({', '.join(dict.fromkeys(source for _, source in portfolio))})" if portfolio else "",
        "; a cross-validated trial that loses to its family's best on its first folds stops there (fold race)"
        if plan.race_folds
        else "",
    )
    return {
        "study_name": plan.study_name,
        "enqueued": 1 + len(warm) + len(portfolio),
        "warm_start": len(warm),
        "portfolio": len(portfolio),
    }


def _portfolio(
    optuna_uri: str, study: Any, plan: SearchPlan, space: SearchSpace, exclude: list[dict[str, Any]], *, lookup: bool
) -> list[tuple[dict[str, Any], str]]:
    """Record this table's traits on the study and (with `lookup`) find the portfolio
    configurations for it (search/portfolio); none, with the reason logged, when the table
    cannot be read as one."""
    from automl_tasks.search.portfolio import portfolio_configs, portfolio_size, table_traits

    try:
        traits = table_traits(plan.data)
    except Exception as exc:  # an algorithm's own data format: no traits, no portfolio
        log.info("formatter: no portfolio warm start (the data is not a table: %s)", exc)
        return []
    study.set_user_attr(TRAITS_ATTR, traits.to_dict())
    if not lookup:
        return []
    try:
        storage = open_storage(optuna_uri)
        size = portfolio_size(plan.n_trials)
        return portfolio_configs(storage, plan.family, traits, space, exclude=exclude, size=size)
    except Exception as exc:  # a head start is not worth failing the search's start for
        log.warning("formatter: no portfolio warm start: %s: %s", type(exc).__name__, exc)
        return []
