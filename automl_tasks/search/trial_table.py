"""A study's trials as rows a person filters: number, state, score, model, duration, where the
configuration came from, latency on the target, why it did not complete, and the parameters.
For the Study page.

Only a completed trial has a score. Optuna gives a pruned trial the value it last reported, which
for a trial the fold race stopped is one fold's score: not comparable with the cross-validated
scores of completed trials, so it is neither shown as a score nor can it be the best trial.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState

from automl_tasks.core.tags import ERROR_TAG, ORIGIN_TAG, TARGET_LATENCY_ATTR
from automl_tasks.search.storage import load_study


def trial_rows(optuna_uri: str, study_name: str) -> dict[str, Any]:
    """{metric, direction, best, trials: [...]} of study `study_name`, trials in order; the best is
    the best completed trial."""
    study, plan = load_study(optuna_uri, study_name)
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "score": t.values[0] if t.state == TrialState.COMPLETE and t.values else None,
                "model": str(t.params.get("model", t.params.get("method", ""))),
                "duration_s": duration,
                "origin": t.user_attrs.get(ORIGIN_TAG, "sampled"),
                "latency_ms": t.user_attrs.get(TARGET_LATENCY_ATTR),
                "note": str(t.user_attrs.get(ERROR_TAG, "")),
                "params": {k: v for k, v in t.params.items() if k not in ("model", "method")},
            }
        )
    complete = [r for r in rows if r["score"] is not None]
    maximise = plan.direction == "maximize"
    best = (max if maximise else min)(complete, key=lambda r: r["score"])["number"] if complete else None
    return {"study": study_name, "metric": plan.metric, "direction": plan.direction, "best": best, "trials": rows}
