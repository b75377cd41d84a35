"""The advisor: hyperparameter importance (fANOVA), plots and suggestions for people.

Everything is logged to the pipeline's parent MLflow run: `advisor/importance.json`,
`advisor/suggestions.md` (+ `.json`) and HTML plots (optimisation history, parallel
coordinates, importance) that open in the MLflow UI without network access.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tags import (
    PROMOTION_DECISION_TAG,
    PROMOTION_REASON_TAG,
    STOP_ATTR,
    STUDY_TAG,
)
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.search.storage import open_study
from automl_tasks.search_space import SearchSpace, load_search_space

log = logging.getLogger(__name__)

EDGE_SHARE = 0.05  # a best value within 5% of a range end suggests widening it
LOW_IMPORTANCE = 0.02
IMBALANCE_SHARE = 0.2
MISSING_SHARE = 0.3
DROP_MIN_TRIALS = 3  # a model family is judged on at least this many completed trials
DROP_BELOW_SHARE = 0.75  # ... and dropped when this share of the other families' trials beat its best
STILL_IMPROVING_SHARE = 0.75  # a best found after this share of the trials: the search was still improving


def importances(study, *, params: list[str] | None = None, trials=None) -> dict[str, float]:
    """fANOVA importances over `params` (default: those present in every completed trial)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    if trials is not None:
        view = optuna.create_study(directions=study.directions)
        view.add_trials(trials)
        study = view
    # the score's importance: a study that trades latency off has latency as a second objective
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    return dict(
        optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), params=params, target=target
        )
    )


def _position_in_range(space: SearchSpace, name: str, value: Any) -> float | None:
    param = space.find(name)
    if param is None or not param.is_numeric or param.bounded:
        return None
    low, high = param.range
    if param.type.endswith("_log"):
        low, high, value = math.log(low), math.log(high), math.log(value)
    return (value - low) / (high - low)


def suggest(
    space: SearchSpace,
    best_params: dict[str, Any],
    importance: dict[str, float],
    profile: dict[str, Any],
    model_importance: dict[str, dict[str, float]],
) -> list[dict[str, str]]:
    """Actionable suggestions: widen a range, fix a parameter, collect data, check a column."""
    out: list[dict[str, str]] = []
    for name, value in best_params.items():
        position = _position_in_range(space, name, value)
        if position is None:
            continue
        if position <= EDGE_SHARE or position >= 1 - EDGE_SHARE:
            edge = "lower" if position <= EDGE_SHARE else "upper"
            out.append(
                {
                    "kind": "widen_range",
                    "param": name,
                    "text": f"best {name}={value:.4g} sits at the {edge} end of its range "
                    f"{list(space.find(name).range)}: widen the range past it",
                    "edit": {"kind": "widen_range", "param": name, "value": edge},
                }
            )
    for name, share in {**importance, **{k: v for m in model_importance.values() for k, v in m.items()}}.items():
        param = space.find(name)
        fixed_already = param is not None and not param.is_numeric and len(param.range) == 1
        if share < LOW_IMPORTANCE and name in best_params and not fixed_already:
            out.append(
                {
                    "kind": "fix_param",
                    "param": name,
                    "text": f"{name} explains {share:.1%} of the score variance: fix it to "
                    f"{best_params[name]!r} and search the rest",
                    "edit": {"kind": "fix_param", "param": name, "value": best_params[name]},
                }
            )
    if profile.get("class_balance") and profile.get("minority_share", 1) < IMBALANCE_SHARE:
        balance = profile["class_balance"]
        minority = min(balance, key=balance.get)
        out.append(
            {
                "kind": "collect_data",
                "param": profile["target"],
                "text": f"class {minority} has {balance[minority]} of {sum(balance.values())} rows "
                f"({profile['minority_share']:.1%}): collect more samples of class {minority}",
            }
        )
    excluded = {
        role["column"]: role
        for role in profile.get("column_roles", [])
        if role["column"] in set(profile.get("excluded_columns", []))
    }
    for column, role in excluded.items():
        out.append(
            {
                "kind": "excluded_column",
                "param": column,
                "text": f"column {column} was left out of training: {role['role']} ({role['why']}); if it will "
                "be known when the model serves and is not the target in disguise, name it in the form's "
                "keep_columns and re-run",
            }
        )
    for found in profile.get("single_column_predictors", []):
        if found["column"] in excluded:
            continue  # said above
        out.append(
            {
                "kind": "check_column",
                "param": found["column"],
                "text": f"warning: column {found['column']} alone predicts {profile['target']} almost perfectly "
                f"(held-out score {found['score']:.3f}): if it is a row index, an identifier or a copy of the "
                "target, it will not be known when the model serves; drop it and re-run",
            }
        )
    for column, stats in profile.get("column_stats", {}).items():
        if stats.get("missing_share", 0) > MISSING_SHARE:
            out.append(
                {
                    "kind": "check_column",
                    "param": column,
                    "text": f"column {column} is {stats['missing_share']:.0%} missing: "
                    "check the source or drop the column",
                }
            )
    return out


def search_suggestions(study: Any, plan: Any) -> list[dict[str, Any]]:
    """Suggestions from the trials themselves: drop a model family that lost everywhere, and
    raise the time budget when the search was stopped by it while still improving."""
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not complete:
        return []
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    out: list[dict[str, Any]] = []
    families: dict[str, list[float]] = {}  # losses: smaller is better
    for t in complete:
        if "model" in t.params:
            families.setdefault(t.params["model"], []).append(sign * t.values[0])
    for family, losses in families.items():
        others = [x for name, xs in families.items() if name != family for x in xs]
        beaten = sum(x < min(losses) for x in others) / max(len(others), 1)
        if others and len(losses) >= DROP_MIN_TRIALS and beaten >= DROP_BELOW_SHARE:
            out.append(
                {
                    "kind": "drop_choice",
                    "param": "model",
                    "text": f"model {family}: its best of {len(losses)} trials ({sign * min(losses):.4g} "
                    f"{plan.metric}) is beaten by {beaten:.0%} of the other models' trials: drop it and spend its trials "
                    "on the others",
                    "edit": {"kind": "drop_choice", "param": "model", "value": family},
                }
            )
    best = min(complete, key=lambda t: sign * t.values[0])
    position = sorted(t.number for t in complete).index(best.number) / max(len(complete) - 1, 1)
    stop = str(study.user_attrs.get(STOP_ATTR) or "")
    if stop.startswith("time budget") and len(complete) >= 4 and position >= STILL_IMPROVING_SHARE:
        budget = int(plan.time_budget_s * 2)
        out.append(
            {
                "kind": "raise_budget",
                "param": "time_budget_s",
                "text": f"the time budget stopped the search while it was still improving (the best trial, "
                f"#{best.number}, came {position:.0%} of the way through {len(complete)} trials): "
                f"re-run with time_budget_s={budget}",
                "edit": {"kind": "set_budget", "param": "time_budget_s", "value": budget},
            }
        )
    return out


def _write_plots(study, folder: Path, importance: dict[str, float], metric: str = "score") -> list[Path]:
    import optuna.visualization as vis

    several = len(study.directions) > 1  # score and latency on the target: plot the score
    target = {"target": lambda t: t.values[0], "target_name": metric} if several else {}
    figures = {
        "optimization_history.html": lambda: vis.plot_optimization_history(study, **target),
        "parallel_coordinate.html": lambda: vis.plot_parallel_coordinate(
            study, params=list(importance) or None, **target
        ),
        "param_importances.html": lambda: _importance_figure(importance),
    }
    written = []
    for name, build in figures.items():
        try:
            path = folder / name
            build().write_html(str(path), include_plotlyjs=True, full_html=True)
            written.append(path)
        except Exception as exc:  # a plot that cannot be drawn must not hide the others
            log.warning("advisor could not draw %s: %s", name, exc)
    return written


def _chosen_params(study, plan) -> dict[str, Any]:
    from automl_tasks.core.errors import UserError
    from automl_tasks.search.deployment import chosen_trial

    try:
        return chosen_trial(study, plan).params
    except UserError:  # nothing feasible: no best configuration to comment on
        return {}


def write_pareto_front(study, plan, folder: Path) -> list[int]:
    """Score against latency on the deployment target, for people: every completed trial
    with its latency, feasibility, Pareto membership and the chosen one, as
    `pareto_front.csv` / `.json`, and a plot `pareto_front.html` (Optuna's
    `plot_pareto_front` when latency was traded off, else a scatter with the budget line).
    Returns the numbers of the trials on the feasible front (empty without a trade-off)."""
    import pandas as pd

    from automl_tasks.search.deployment import LATENCY_METRIC, pareto_rows

    rows = pareto_rows(study, plan)
    (folder / "pareto_front.json").write_text(json.dumps(rows, indent=2, default=str))
    pd.DataFrame(rows).to_csv(folder / "pareto_front.csv", index=False)
    try:
        figure = _pareto_figure(study, plan, rows, LATENCY_METRIC)
        figure.write_html(str(folder / "pareto_front.html"), include_plotlyjs=True, full_html=True)
    except Exception as exc:  # the table stays even if the plot cannot be drawn
        log.warning("advisor could not draw the Pareto front: %s", exc)
    return [row["trial"] for row in rows if row["pareto"]]


def _pareto_figure(study, plan, rows: list[dict[str, Any]], latency_name: str):
    import optuna.visualization as vis
    import plotly.graph_objects as go

    title = f"{plan.metric} vs latency on {plan.deploy_target} (ms, batch 1)"
    if len(study.directions) > 1:
        figure = vis.plot_pareto_front(study, target_names=[plan.metric, latency_name], include_dominated_trials=True)
        figure.update_layout(title=title)
        return figure
    measured = [r for r in rows if r[latency_name] is not None]
    figure = go.Figure()
    for feasible, name in ((True, "feasible"), (False, "infeasible")):
        points = [r for r in measured if r["feasible"] is feasible]
        figure.add_trace(
            go.Scatter(
                x=[r[plan.metric] for r in points],
                y=[r[latency_name] for r in points],
                mode="markers",
                name=name,
                text=[f"trial {r['trial']}" + (" (chosen)" if r["chosen"] else "") for r in points],
            )
        )
    if plan.latency_budget_ms:
        figure.add_hline(y=plan.latency_budget_ms, line_dash="dash", annotation_text="latency budget")
    figure.update_layout(title=title, xaxis_title=plan.metric, yaxis_title=latency_name)
    return figure


def _importance_figure(importance: dict[str, float]):
    import plotly.graph_objects as go

    names = list(importance)[::-1]
    fig = go.Figure(go.Bar(x=[importance[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title="Hyperparameter importance (fANOVA)", xaxis_title="share of variance")
    return fig


def _per_model_importance(study, min_trials: int = 6) -> dict[str, dict[str, float]]:
    from optuna.trial import TrialState

    groups: dict[str, list] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        groups.setdefault(str(t.params.get("model")), []).append(t)
    out = {}
    for model, trials in groups.items():
        names = sorted({k for t in trials for k in t.params if k.startswith(f"model.{model}.")})
        common = [n for n in names if all(n in t.params for t in trials)]
        if len(trials) >= min_trials and common:
            try:
                out[model] = importances(study, params=common, trials=trials)
            except Exception as exc:
                log.info("no per-model importance for %s: %s", model, exc)
    return out


def registration_findings(client: Any, family: str, study_name: str) -> dict[str, Any] | None:
    """What happened to the model registered from `study_name`: the refit integrity check
    and the promotion decision with their numbers (None if no version came from it)."""
    from mlflow.exceptions import MlflowException

    from automl_tasks.core.tags import (
        BASELINE_SCORE_TAG,
        DEFAULT_CONFIG_SCORE_TAG,
        ENSEMBLE_TAG,
        REFIT_CHECK_MODEL_TAG,
        REFIT_CHECK_REASON_TAG,
        REFIT_CHECK_TAG,
        SEARCH_SCORE_TAG,
    )

    try:
        versions = client.search_model_versions(f"name='{family}'")
    except MlflowException:
        return None
    mine = [v for v in versions if v.tags.get(STUDY_TAG) == study_name]
    if not mine:
        return None
    version = max(mine, key=lambda v: int(v.version))
    tags = version.tags
    return {
        "version": str(version.version),
        "refit_check": tags.get(REFIT_CHECK_TAG, ""),
        "refit_check_reason": tags.get(REFIT_CHECK_REASON_TAG, ""),
        "model_source": tags.get(REFIT_CHECK_MODEL_TAG, ""),
        "search_score": tags.get(SEARCH_SCORE_TAG, ""),
        "default_config_score": tags.get(DEFAULT_CONFIG_SCORE_TAG, ""),
        "baseline_score": tags.get(BASELINE_SCORE_TAG, ""),
        "promotion": tags.get(PROMOTION_DECISION_TAG, "pending"),
        "promotion_reason": tags.get(PROMOTION_REASON_TAG, ""),
        "ensemble": tags.get(ENSEMBLE_TAG, ""),
    }


def registration_suggestions(found: dict[str, Any] | None) -> list[dict[str, str]]:
    """Suggestions when the registered model is not the one the search validated, or was refused."""
    if not found:
        return []
    out = []
    if found["refit_check"] and found["refit_check"] != "passed":
        out.append(
            {
                "kind": "refit_check",
                "param": f"v{found['version']}",
                "text": f"refit integrity check: {found['refit_check']} ({found['refit_check_reason']}); "
                "the final fit did not reproduce the validated quality: re-run with another seed or "
                "narrow the space (e.g. a smaller learning rate)",
            }
        )
    if found.get("ensemble"):
        out.append(
            {
                "kind": "ensemble",
                "param": f"v{found['version']}",
                "text": f"v{found['version']} is a weighted ensemble of the best trials ({found['ensemble']}): it "
                "scored better than the best trial alone on the search's rows; every member runs on each "
                "request, so its latency is the members' together",
            }
        )
    if found["promotion"] == "rejected":
        out.append(
            {
                "kind": "not_promoted",
                "param": f"v{found['version']}",
                "text": f"v{found['version']} was not promoted: {found['promotion_reason']}",
            }
        )
    return out


def export_notes(ws: Workspace, family: str, study_name: str) -> list[dict[str, Any]]:
    """A note for each version of this study that is served natively because its ONNX export failed."""
    from automl_tasks.core.tags import (
        EXPORT_FALLBACK_TAG,
    )

    notes = []
    for version in mlflow_client(ws).search_model_versions(f"name='{family}'"):
        reason = version.tags.get(EXPORT_FALLBACK_TAG)
        if reason and version.tags.get(STUDY_TAG) == study_name:
            text = f"v{version.version} is served by the native model, not ONNX Runtime: {reason}"
            notes.append({"kind": "export", "param": "model", "text": text})
    return notes


def advise(ws: Workspace, study_name: str, profile: dict[str, Any]) -> dict[str, Any]:
    """Compute importance, plots and suggestions; log them to the parent run."""
    from optuna.trial import TrialState

    study, plan = open_study(ws, study_name)
    space = load_search_space(plan.space_yaml)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    folder = ws.runs / study_name / "advisor"
    folder.mkdir(parents=True, exist_ok=True)
    importance: dict[str, float] = {}
    if len(complete) >= 2:
        try:
            importance = importances(study)
        except Exception as exc:
            log.warning("fANOVA importance failed: %s", exc)
    per_model = _per_model_importance(study)
    best_params = _chosen_params(study, plan) if complete else {}
    suggestions = suggest(space, best_params, importance, profile, per_model) + export_notes(
        ws, plan.family, study_name
    )
    client = mlflow_client(ws)
    registered = registration_findings(client, plan.family, study_name)
    suggestions += search_suggestions(study, plan) + registration_suggestions(registered)
    from automl_tasks.trust.trade_off import family_trade_off_note

    trade_off = family_trade_off_note(client, plan.family)
    suggestions += [trade_off] if trade_off else []
    (folder / "importance.json").write_text(json.dumps({"overall": importance, "per_model": per_model}, indent=2))
    (folder / "suggestions.json").write_text(json.dumps(suggestions, indent=2))
    lines = [f"# Suggestions for study {study_name}", ""]
    lines += [f"- **{s['kind']}** ({s['param']}): {s['text']}" for s in suggestions] or [
        "- none: the search looks healthy"
    ]
    if registered:
        (folder / "registration.json").write_text(json.dumps(registered, indent=2))
        lines += ["", f"## Registered version v{registered['version']}", ""]
        lines += [f"- {key}: {value}" for key, value in registered.items() if key != "version" and value != ""]
    (folder / "suggestions.md").write_text("\n".join(lines) + "\n")
    plots = _write_plots(study, folder, importance, plan.metric) if complete else []
    front = write_pareto_front(study, plan, folder) if plan.deploy_target and complete else []
    client.log_artifacts(plan.parent_run_id, str(folder), artifact_path="advisor")
    for name, share in importance.items():
        client.log_metric(plan.parent_run_id, f"importance.{name}", share)
    for suggestion in suggestions:
        log.info("advisor suggestion: %s", suggestion["text"])
    return {
        "suggestions": len(suggestions),
        "plots": [p.name for p in plots],
        "pareto_front": front,
        "top_params": list(importance)[:3],
        "refit_check": (registered or {}).get("refit_check", ""),
    }
