"""Does early stopping on the rows a trial is scored on mislead the search's choice? (#11)

A boosted-trees trial grows trees until the loss on a fold's held-out rows stops improving,
and its score is then taken on those same rows: the tree count is tuned on the rows that
judge it, so the search score is optimistic, more so for slow learners whose validation
curve wanders. This replays the best completed trials of the studies of a quality-benchmark
workspace (`automl_vs_flaml.py` leaves it in /tmp/avf-*) two ways, early stopping on the scoring rows (the
search's way; its fold scores must match the study's) and on an inner 10% of each fold's
fit rows, and scores each trial's refit (train+valid, the mean best iteration of its
folds) on the dataset's test split, which no search fold contains. Per table it prints
how the search score ranks the trials against their test scores (Spearman), the test score
of the trial each way would choose, and the mean optimism (search score - test score).

Run: PYTHONPATH=$PWD:$PWD/.bench-packages .venv/bin/python benchmarks/early_stopping_bias.py /tmp/avf-XXXX --top 20
"""

from __future__ import annotations

import argparse
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

INNER_STOP_SHARE = 0.1
MODES = ("scoring rows", "inner split")


@dataclass(frozen=True)
class Replay:
    study: str
    number: int
    search_score: float  # the study's
    mode: str
    cv: float
    test: float
    leaves: float | None  # num_leaves x mean best iteration (boosted trees), else None


def _inner_stop_estimator():
    from automl_tasks.estimators.tabular import TabularEstimator, fit_early_stopped

    class InnerStop(TabularEstimator):
        """Early stopping on an inner split of the fold's fit rows, never its scoring rows."""

        def _fit_fold(self, fit_rows, score_rows):
            if not self.early_stopping:
                return super()._fit_fold(fit_rows, score_rows)
            from sklearn.model_selection import train_test_split

            classify = self.data.task_type in ("binary", "multiclass")
            fit, stop = train_test_split(
                fit_rows,
                test_size=INNER_STOP_SHARE,
                random_state=self.data.split_seed,
                stratify=self.target_[fit_rows] if classify else None,
            )
            pipeline = self._new_pipeline()
            x, y = self.features_, self.target_
            best = fit_early_stopped(pipeline, x.iloc[fit], y[fit], x.iloc[stop], y[stop])
            return pipeline, best

    return InnerStop


def _replay(workspace: str, study_name: str, number: int) -> list[Replay]:
    warnings.filterwarnings("ignore")
    from automl_tasks.core.settings import Workspace
    from automl_tasks.estimators.metrics import Metric
    from automl_tasks.estimators.tabular import TabularEstimator
    from automl_tasks.search.storage import open_study

    study, plan = open_study(Workspace.at(workspace), study_name)
    trial = study.trials[number]
    out = []
    for mode, cls in zip(MODES, (TabularEstimator, _inner_stop_estimator()), strict=True):
        kwargs = {"run_epochs": plan.run_epochs, "data": plan.data, "model_args": trial.params}
        search = cls(**kwargs, is_trainer=False, metric=Metric(plan.metric))
        search.train()
        bests = search.fold_best_iterations_
        trainer = cls(**kwargs, is_trainer=True, metric=Metric(plan.metric))
        trainer.known_fold_best_iterations = bests if all(b is not None for b in bests) else None
        trainer.train()
        leaves = None
        if trainer.best_iteration_ is not None:
            leaves = float(trial.params.get("model.lightgbm.num_leaves", 31)) * trainer.best_iteration_
        cv = float(np.mean(search.fold_scores_))
        out.append(Replay(study_name, number, float(trial.value), mode, cv, trainer.score_on_test(), leaves))
    return out


def _studies(workspace: str, top: int) -> dict[str, tuple[str, list[int]]]:
    """Study -> (metric direction, the numbers of its `top` best distinct completed trials)."""
    import optuna
    from optuna.trial import TrialState

    from automl_tasks.core.settings import Workspace
    from automl_tasks.search.storage import open_storage, open_study

    ws = Workspace.at(workspace)
    out = {}
    for summary in optuna.get_all_study_summaries(open_storage(ws.optuna_uri)):
        study, plan = open_study(ws, summary.study_name)
        maximize = study.direction.name == "MAXIMIZE"
        trials = sorted(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
            key=lambda t: -t.value if maximize else t.value,
        )
        seen, chosen = [], []
        for t in trials:
            if t.params not in seen:
                seen.append(t.params)
                chosen.append(t.number)
        out[summary.study_name] = ("maximize" if maximize else "minimize", chosen[:top])
    return out


def _summary(name: str, direction: str, rows: list[Replay]) -> str:
    from scipy.stats import spearmanr

    sign = 1.0 if direction == "maximize" else -1.0
    parts = [f"{name[:28]:28s} n={len(rows) // 2:2d}"]
    for mode in MODES:
        mine = [r for r in rows if r.mode == mode]
        cv, test = np.array([r.cv for r in mine]), np.array([r.test for r in mine])
        chosen = int(np.argmax(sign * cv))
        top3 = np.argsort(-sign * cv)[:3]
        rho = spearmanr(cv, test).statistic if len(mine) > 2 else float("nan")
        parts.append(
            f"{mode}: rho {rho:+.2f} chosen {test[chosen]:.4f} top3 {test[top3].mean():.4f} "
            f"optimism {np.mean(sign * (cv - test)):+.4f}"
        )
    scoring = [r for r in rows if r.mode == MODES[0]]
    drift = max(abs(r.cv - r.search_score) for r in scoring)
    best_test = max(sign * r.test for r in scoring) * sign
    parts.append(f"oracle {best_test:.4f} replay-vs-study {drift:.1e}")
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", help="a workspace kept by automl_vs_flaml.py (/tmp/avf-...)")
    parser.add_argument("--top", type=int, default=20, help="best completed trials replayed per study")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="replay only the studies whose name starts with one of these")
    args = parser.parse_args()
    studies = _studies(args.workspace, args.top)
    if args.only:
        studies = {name: v for name, v in studies.items() if name.startswith(tuple(args.only))}
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {
            name: [pool.submit(_replay, args.workspace, name, n) for n in numbers]
            for name, (_, numbers) in studies.items()
        }
        for name, jobs in futures.items():
            rows = [r for job in jobs for r in job.result()]
            print(_summary(name, studies[name][0], rows), flush=True)


if __name__ == "__main__":
    main()
